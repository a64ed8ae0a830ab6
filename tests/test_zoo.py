import pandas as pd
import pytest

import baselines
from benchmarks.run import main as run_main
from benchmarks.table1.zoo import load_published_models


def test_published_reference_covers_every_registry_model():
    assert sorted(load_published_models()["model"]) == sorted(baselines.available())


def test_zoo_measures_selected_models_against_their_references(tmp_path, capsys):
    assert run_main(["zoo", "--models", "x3d_xs,mobilenet_v3_small", "--results", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "model_zoo.csv").set_index("model")
    assert abs(table.loc["x3d_xs", "fvcore"] / 0.60 - 1) < 0.03
    assert table.loc["x3d_xs", "FCM"] == table.loc["x3d_xs", "fvcore"]
    assert abs(table.loc["x3d_xs", "params"] / 3.79 - 1) < 0.01
    assert abs(table.loc["mobilenet_v3_small", "fvcore"] / 2.8 - 1) < 0.03
    text = (tmp_path / "model_zoo.md").read_text()
    assert "Counted by `python -m benchmarks.run zoo`" in text
    assert max(len(line) for line in text.splitlines()) <= 120
    assert run_main(["zoo", "--models", "resnet50"]) == 2


def test_zoo_counts_are_cached_by_key(tmp_path, monkeypatch, capsys):
    from benchmarks.core import counting

    args = ["zoo", "--models", "x3d_xs", "--results", str(tmp_path)]
    assert run_main(args) == 0
    record = tmp_path / "measured" / "zoo" / "x3d_xs.json"
    stored = record.read_text()

    class Refuse:  # fvcore's counter, stood in for: not a suite function, so the key does not change
        def __call__(self, *args, **kwargs):
            raise AssertionError("a cached model was counted again")

    monkeypatch.setattr(counting, "FlopCountAnalysis", Refuse())
    assert run_main(args) == 0  # from the cache, counting nothing
    assert "1 model(s) already counted" in capsys.readouterr().err
    assert record.read_text() == stored
    record.write_text(stored.replace('"key": "', '"key": "stale-'))
    with pytest.raises(AssertionError, match="counted again"):
        run_main(args)  # a stale key is counted again
