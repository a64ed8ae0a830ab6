"""Finding results: `eval` prints each run's id and file in lines of at most 120 columns, writes a per-video CSV
with files and class names, counts videos of classes the checkpoint does not know and refuses data of other
classes; `runs` lists, filters and shows the stored runs."""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.core import store
from benchmarks.core.store import Store, run_id
from benchmarks.engine.config import RunConfig
from benchmarks.run import main as run_main
from tests.test_evaluate import untrained_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


def run_record(row: int, top1: float, dataset: str, date: str, **extra) -> dict:
    return {"row": row, "name": f"row {row}", "top1": top1, "top5": 99.0, "dataset": dataset, "split": "val",
            "videos_evaluated": 12, "videos_skipped": {}, "checkpoint_sha256": "0" * 64, "git_commit": "abc1234def",
            "hardware": "test", "date": date, "command": "fixture", **extra}


@pytest.fixture
def stored_runs(tmp_path):
    results = Store(tmp_path / "results")
    records = {
        "1-20261201T000000000000Z": run_record(1, 70.0, "kinetics600", "2026-12-01T00:00:00+00:00"),
        "5-20261202T000000000000Z": run_record(5, 40.0, "warmup-airplanes", "2026-12-02T00:00:00+00:00",
                                               method="a3d"),
        "5-20261203T000000000000Z": run_record(5, 45.0, "kinetics600", "2026-12-03T00:00:00+00:00",
                                               git_commit="fff0000", weights_source={
                                                   "name": "x3d_xs_k400", "sha256": "1" * 64, "verified": False}),
    }
    for name, record in records.items():
        store.write_json(results.runs / f"{name}.json", record)
    return results


def test_runs_lists_filters_and_shows(stored_runs, capsys):
    results = ["--results", str(stored_runs.root)]
    ids = {name: run_id(name) for name in ("1-20261201T000000000000Z", "5-20261202T000000000000Z",
                                           "5-20261203T000000000000Z")}
    assert run_main(["runs", *results]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 120 and "3 run(s)" in out
    assert [line.split()[0] for line in out.splitlines()[2:5]] == list(ids.values())  # oldest first
    assert "x3d_xs_k400*" in out  # a local file nobody verified is marked

    def only(*flags):
        assert run_main(["runs", *results, *flags]) == 0
        return [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:] if "run(s)" not in line and line]

    assert only("--row", "5") == [ids["5-20261202T000000000000Z"], ids["5-20261203T000000000000Z"]]
    assert only("--method", "a3d") == [ids["5-20261202T000000000000Z"]]
    assert only("--dataset", "kinetics", "--since", "2026-12-02") == [ids["5-20261203T000000000000Z"]]
    assert only("--until", "2026-12-01") == [ids["1-20261201T000000000000Z"]]
    assert only("--commit", "fff") == [ids["5-20261203T000000000000Z"]]
    assert only("--weights", "trained") == [ids["1-20261201T000000000000Z"], ids["5-20261202T000000000000Z"]]
    assert run_main(["runs", *results, "--row", "9"]) == 0 and "no stored run matches" in capsys.readouterr().out

    assert run_main(["runs", "show", ids["5-20261203T000000000000Z"], *results]) == 0
    shown = " ".join(capsys.readouterr().out.split())  # wrapped at 120 columns
    assert "top1: 45.0" in shown and "not verified against a published hash" in shown
    assert run_main(["runs", "show", "5-20261202T000000000000Z.json", *results]) == 0  # by file name
    assert "method: a3d" in capsys.readouterr().out
    assert run_main(["runs", "show", "zzzzzzzz", *results]) == 2
    assert "no stored run 'zzzzzzzz'" in capsys.readouterr().err
    assert run_main(["runs", "show", *results]) == 2


def test_eval_prints_the_run_id_writes_per_video_names_and_counts_unknown_classes(tiny_kinetics, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_kinetics.root, data)
    shutil.rmtree(data / "annotations")  # the class folders are the labels
    shutil.copytree(data / "val" / "left", data / "val" / "up")  # a class the checkpoint does not know
    config = RunConfig(row=5, data=str(data), out=str(tmp_path), res=32, frames=4)
    untrained_checkpoint(tmp_path / "last.pt", config, tiny_kinetics.classes)
    results = tmp_path / "results"
    argv = ["eval", "--row", "5", "--checkpoint", str(tmp_path / "last.pt"), "--data", str(data),
            "--num-workers", "0", "--results", str(results), "--index-cache", str(tmp_path / "index")]
    assert run_main(argv) == 0
    out = capsys.readouterr().out
    [run] = Store(results).load_runs(with_files=True)
    assert f"run {run['run_id']}: {run['file']}" in out and run["run_id"] == run_id(run["file"])
    assert "top-3" in out and "top-5" not in out  # 3 classes: top-k is capped at the number of classes
    assert max(len(line) for line in out.splitlines()) <= 120
    assert run["videos_skipped"]["unknown_class"] == 3 and run["unknown_classes"] == ["up"]
    assert "3 video(s) of classes the checkpoint does not know were not evaluated (up)" in out
    per_video = pd.read_csv(run["per_video_csv"])
    assert len(per_video) == run["videos_evaluated"] == 9
    assert set(per_video["class"]) == set(tiny_kinetics.classes) and set(per_video["predicted"]) <= set(
        tiny_kinetics.classes)
    assert {Path(video).parent for video in per_video["video"]} == {data / "val" / c for c in tiny_kinetics.classes}

    assert run_main(argv) == 0  # evaluated before: the message names the run and its file
    assert f"run {run['run_id']} of {run['date']}" in capsys.readouterr().out

    other = tmp_path / "other"
    for label in ("cats", "dogs"):
        shutil.copytree(data / "val" / "left", other / "val" / label)
    code = run_main([*argv[:6], str(other), *argv[7:]])
    err = capsys.readouterr().err
    assert code == 2 and "knows 3 classes" in err and "has 2 class folders, none of them the same" in err
