"""`python -m benchmarks.run table1` end to end on two small rows, and its measurement cache."""

import json
import re

import pandas as pd
import pytest

from benchmarks.run import main as run_main
from benchmarks.table1 import measure
from benchmarks.table1.specs import get_spec


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("GRW_BENCH_RESULTS", str(tmp_path))
    return tmp_path


def test_two_rows_end_to_end_then_cached(results, monkeypatch, capsys):
    assert run_main(["table1", "--rows", "2,3"]) == 0
    for row in (2, 3):
        record = json.loads((results / "measured" / f"row{row:02d}-cpu.json").read_text())
        spec = get_spec(row)
        assert abs(record["gflops"] / spec.published_gflops - 1) < 0.05
        assert record["peak_memory_mb"] > 0 and record["params"] > 1e6
        assert record["device"] == "cpu" and "profiler" in record["memory_method"]
        assert record["git_commit"] and record["command"].startswith("python -m benchmarks.run table1")
    md = (results / "table1.md").read_text()
    assert "MoViNet-A0" in md and "MobileNetV3-S" in md
    csv = pd.read_csv(results / "table1.csv").set_index("row")
    assert csv.loc[[2, 3], "measured_gflops"].notna().all() and csv.loc[[1, 4], "measured_gflops"].isna().all()
    for name in ("k600_flops.png", "k600_flops.svg"):
        assert (results / name).stat().st_size > 10_000
    assert ">2<" in (results / "k600_flops.svg").read_text() or "2" in md

    def must_not_measure(*args, **kwargs):
        raise AssertionError("cached rows must not be measured again")

    monkeypatch.setattr(measure, "measure_row", must_not_measure)
    assert run_main(["table1", "--rows", "2,3"]) == 0
    assert "2 row(s) already measured" in capsys.readouterr().out


def fake_measure(spec, device):
    return {"row": spec.row, "gflops": 1.0, "params": 1, "peak_memory_mb": 1.0, "memory_method": "fake",
            "device": device, "key": measure.cache_key(spec, device)}


def test_cache_invalidated_by_code_change_and_refresh(results, monkeypatch):
    calls = []
    monkeypatch.setattr(measure, "measure_row",
                        lambda spec, device, **_: calls.append(spec.row) or fake_measure(spec, device))
    assert run_main(["table1", "--rows", "5"]) == 0
    assert run_main(["table1", "--rows", "5"]) == 0
    assert calls == [5]
    monkeypatch.setattr(measure, "model_code_hash", lambda spec: "changed-code")
    assert run_main(["table1", "--rows", "5"]) == 0
    assert calls == [5, 5]
    assert run_main(["table1", "--rows", "5", "--refresh"]) == 0
    assert calls == [5, 5, 5]


def test_model_hash_covers_only_the_rows_own_network():
    assert measure.model_code_hash(get_spec(5)) == measure.model_code_hash(get_spec(14))  # X3D-XS, 1 and 3 crops
    assert measure.model_code_hash(get_spec(16)) != measure.model_code_hash(get_spec(15))  # MoViNet-A3, + GRW head
    assert measure.model_code_hash(get_spec(2)) != measure.model_code_hash(get_spec(3))  # MobileNetV3


def test_a_failing_row_is_reported_and_the_others_continue(results, monkeypatch, capsys):
    def failing_on_row_5(spec, device, **_):
        if spec.row == 5:
            raise RuntimeError("boom on row 5")
        return fake_measure(spec, device)

    monkeypatch.setattr(measure, "measure_row", failing_on_row_5)
    assert run_main(["table1", "--rows", "5,7"]) == 1
    assert (results / "measured" / "row07-cpu.json").exists()
    assert not (results / "measured" / "row05-cpu.json").exists()
    captured = capsys.readouterr()
    assert "boom on row 5" in captured.out + captured.err


@pytest.mark.parametrize("args", [["--rows", "20"], ["--rows", "99"]])
def test_bad_rows_exit_2(results, args, capsys):
    assert run_main(["table1", *args]) == 2
    assert "error" in capsys.readouterr().err


def test_launching_without_sbatch_is_a_one_line_error(results, monkeypatch, capsys):
    monkeypatch.setattr("benchmarks.commands.launching.shutil.which", lambda name: None)
    assert run_main(["table1", "--rows", "5", "--launch", "slurm"]) == 2
    assert "table1: error: sbatch not found" in capsys.readouterr().err
    assert not (results / "measured").exists()


def test_terminal_table_fits_120_columns_with_footnotes(results, monkeypatch, capsys):
    monkeypatch.setattr(measure, "measure_row", lambda spec, device, **_: fake_measure(spec, device))
    assert run_main(["table1", "--rows", "5,9"]) == 0
    out = capsys.readouterr().out
    table_lines = out[:out.index("wrote ")].splitlines()
    assert max(len(line) for line in table_lines) <= 120
    assert re.search(r"^\[\d\] published only \(not in this suite's model zoo\)$", out, re.M)  # a footnote
    assert "tasks" not in capsys.readouterr().err  # cached rows: no progress bar drawn for zero tasks
    assert run_main(["table1", "--rows", "5,9"]) == 0
    assert "tasks:" not in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["table1", "--proxy"], ["table1", "--dataset", "airplanes", "--proxy"],
                                  ["table1", "--dataset", "kinetics600"]])
def test_table1_refuses_proxy_options_and_names_the_proxy_command(argv, results, capsys):
    assert run_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("table1: error:") and "python -m benchmarks.run proxy" in err and "\n" not in err
