"""Tables, figure, `figures` and `compare` from fixture results (no model is built)."""

import pandas as pd
import pytest

from benchmarks.core import store
from benchmarks.run import main as run_main
from benchmarks.table1 import report
from benchmarks.table1.specs import get_spec


def measurement(row: int, gflops: float, device: str = "cpu") -> dict:
    return {"row": row, "gflops": gflops, "params": 3_000_000, "peak_memory_mb": 100.0,
            "memory_method": "fixture", "device": device, "key": "fixture"}


def run_record(row: int, top1: float, dataset: str, date: str = "2026-01-01") -> dict:
    return {"row": row, "top1": top1, "top5": 99.0, "dataset": dataset, "split": "val", "videos_evaluated": 12,
            "videos_skipped": {"missing": 1}, "checkpoint_sha256": "0" * 64, "git_commit": "abc",
            "hardware": "test", "date": date, "command": "fixture"}


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("GRW_BENCH_RESULTS", str(tmp_path))

    def no_models(*args, **kwargs):
        raise AssertionError("reporting must not build models")

    monkeypatch.setattr("baselines.build", no_models, raising=False)
    return tmp_path


def store_measurement(row, gflops, device="cpu"):
    store.write_json(store.Store.default().measurement_path(row, device), measurement(row, gflops, device))


def store_run(name, record):
    store.write_json(store.Store.default().runs / f"{name}.json", record)


def test_table_marks_what_is_measured_reproduced_or_published(results):
    store_measurement(1, 2.8)
    store_measurement(2, 2.7)
    store_run("2-a", run_record(2, 70.0, "toy-motion"))
    table = report.build_table().set_index("row")
    assert len(table) == 31
    assert table.loc[1, "measured_gflops"] == 2.8
    assert table.loc[1, "delta_pct"] == pytest.approx(100 * (2.8 / 2.7 - 1))
    assert pd.isna(table.loc[1, "reproduced_top1"]) and "no Kinetics-600 accuracy run" in table.loc[1, "status"]
    # a run on other data is not a Table 1 result at all
    assert pd.isna(table.loc[2, "reproduced_top1"]) and "no Kinetics-600 accuracy run" in table.loc[2, "status"]
    assert "published only" in table.loc[20, "status"]
    assert table.loc[5, "status"] == "not measured yet"


def test_cuda_memory_is_a_column_of_its_own_and_kinetics_run_wins(results):
    store_measurement(2, 2.7, "cpu")
    store_measurement(2, 2.75, "cuda")
    store_run("2-a", run_record(2, 71.0, "kinetics600", "2026-01-01"))
    store_run("2-b", run_record(2, 60.0, "toy-motion", "2026-02-01"))
    table = report.build_table().set_index("row")
    assert table.loc[2, "memory_device"] == "cpu" and table.loc[2, "measured_gflops"] == 2.7
    assert table.loc[2, "peak_memory_mb_cuda"] == table.loc[2, "peak_memory_mb"]  # the helper stores one value
    assert pd.isna(table.loc[1, "peak_memory_mb_cuda"])
    assert table.loc[2, "reproduced_dataset"] == "kinetics600"
    text = report.render_markdown(report.build_table())
    assert "memory CUDA (MB)" in text and "torch.cuda.max_memory_allocated on" in text


def test_a_run_of_one_a3d_configuration_is_not_the_rows_result(results):
    store_run("5-a", run_record(5, 60.0, "kinetics600", "2026-01-01"))
    store_run("5-b", {**run_record(5, 40.0, "kinetics600", "2026-02-01"), "method": "a3d", "setting": "0.5x0.71x0.5"})
    assert report.build_table().set_index("row").loc[5, "reproduced_top1"] == 60.0


def test_figure_uses_reproduced_only_for_kinetics_runs(results):
    store_run("1-a", run_record(1, 50.0, "toy-motion"))
    store_run("2-a", run_record(2, 73.0, "kinetics600"))
    points = report.plot_points(report.build_table()).set_index("row")
    assert points.loc[1, "top1"] == get_spec(1).published_top1 and points.loc[1, "top1_source"] == "published"
    assert points.loc[2, "top1"] == 73.0 and points.loc[2, "top1_source"] == "reproduced"


def test_runs_that_deviate_from_the_spec_are_flagged_and_not_plotted(results):
    store_run("2-a", {**run_record(2, 90.0, "kinetics600"), "deviations": {"frames": {"spec": 50, "used": 8}}})
    table = report.build_table()
    assert "deviates from the row's spec (frames)" in table.set_index("row").loc[2, "status"]
    points = report.plot_points(table).set_index("row")
    assert points.loc[2, "top1_source"] == "published" and points.loc[2, "top1"] == get_spec(2).published_top1


def test_flops_ratio_arrow_from_published_numbers(results):
    arrow = report.flops_ratio(report.plot_points(report.build_table()))
    # most accurate GRW row is 15 (85.6); no other row reaches it, the most accurate one is row 31
    assert (arrow["from_row"], arrow["to_row"], arrow["reaches"]) == (15, 31, False)
    assert arrow["ratio"] == pytest.approx(1030 / 56.4)
    assert f"{arrow['ratio']:.1f}" == "18.3"  # the published figure's x18.3, recomputed from the data


def test_flops_ratio_picks_cheapest_row_that_is_as_accurate(results):
    points = pd.DataFrame({"row": [1, 2, 3, 4], "grw": [True, False, False, False],
                           "top1": [80.0, 81.0, 82.0, 70.0], "gflops": [2.0, 50.0, 20.0, 1.0]})
    arrow = report.flops_ratio(points)
    assert (arrow["to_row"], arrow["ratio"], arrow["reaches"]) == (3, 10.0, True)


def test_figures_command_writes_everything_from_stored_results(results, capsys):
    store_measurement(1, 2.8)
    store_run("1-a", run_record(1, 50.0, "toy-motion"))
    assert run_main(["figures"]) == 0
    for name in ("table1.md", "table1.csv", "k600_flops.png", "k600_flops.svg"):
        assert (results / name).stat().st_size > 0
    md = (results / "table1.md").read_text()
    assert "MoViNet-A0-S-GRW" in md and "MViTv2-B-32x3" in md
    assert "toy-motion" not in md and "50.0" not in md and "[proxy_table1.md](proxy_table1.md)" in md
    assert len(pd.read_csv(results / "table1.csv")) == 31
    svg = (results / "k600_flops.svg").read_text()
    assert "x18.3 FLOPs" in svg or "x18" in svg


def test_figures_reports_a_malformed_file_by_name(results):
    (results / "measured").mkdir()
    (results / "measured" / "row01-cpu.json").write_text("{oops")
    with pytest.raises(store.ResultFileError, match="row01-cpu.json"):
        run_main(["figures"])


def test_compare_exit_codes(results, capsys):
    store_measurement(2, 2.75)  # +1.9%
    assert run_main(["compare", "--rows", "2"]) == 0
    store_measurement(2, 3.5)  # +30%
    assert run_main(["compare", "--rows", "2"]) == 1
    assert run_main(["compare", "--rows", "2", "--tolerance", "40"]) == 0
    store_measurement(9, 11.5)  # +12%: the FLOP ledger's open cause of MoViNet-A2 base
    assert run_main(["compare", "--rows", "9"]) == 0
    assert "open (ledger)" in capsys.readouterr().out
    store_measurement(5, 4.19)  # +7%: X3D-XS at 182 px, explained only once the 160 px counterfactual is stored
    assert run_main(["compare", "--rows", "5"]) == 1
    assert "evidence misses it" in capsys.readouterr().out
    store.write_json(results / "measured" / "ledger" / "row05-x3d-xs-160px.json", {"gmacs": 3.91})
    assert run_main(["compare", "--rows", "5"]) == 0
    assert "explained (ledger)" in capsys.readouterr().out
    store.write_json(results / "measured" / "ledger" / "row05-x3d-xs-160px.json", {"gmacs": 4.3})
    assert run_main(["compare", "--rows", "5"]) == 1  # the evidence no longer reaches the published 3.9
    store_measurement(3, 3.0)  # +7% with no stated cause
    assert run_main(["compare", "--rows", "3"]) == 1
    assert run_main(["compare", "--rows", "13"]) == 1  # not measured is not a pass
    assert run_main(["compare", "--rows", "20"]) == 2  # not implemented
    assert run_main(["compare", "--rows", "2", "--tolerance", "-5"]) == 2
    assert "tolerances must be >= 0" in capsys.readouterr().err


def test_compare_checks_kinetics_top1(results):
    store_measurement(2, 2.7)
    store_run("2-a", run_record(2, 60.0, "toy-motion"))
    assert run_main(["compare", "--rows", "2"]) == 0  # other datasets are never compared
    store_run("2-b", run_record(2, 60.0, "kinetics600", "2026-03-01"))
    assert run_main(["compare", "--rows", "2"]) == 1


def test_the_authors_per_clip_protocol_is_named_in_table1_and_compare(results, capsys):
    store_measurement(1, 2.71)
    clips = {"evaluated": 40, "videos": 30, "skipped": 1, "videos_without_clip": 2}
    published = get_spec(1).published_top1
    store_run("1-a", {**run_record(1, published - 0.3, "kinetics600"), "protocol": "authors", "clips": clips,
                      "input": {"frames": 50, "fps": 5, "resize": 200, "crop": 172}})
    status = report.build_table().set_index("row").loc[1, "status"]
    assert ("under the GRW authors' per-clip protocol (top-1 over clips, every 50-frame clip at 5 fps, 200x200 "
            "resize, 172 crop; 40 clips from 30 videos)") in status
    assert run_main(["compare", "--rows", "1", "--top1-tolerance", "1"]) == 0
    assert "per clip (GRW authors')" in capsys.readouterr().out
    assert run_main(["figures"]) == 0
    assert "per-clip protocol" in (results / "table1.md").read_text()
    # a record without "protocol" (written before protocols existed) is the suite's
    store_run("1-b", run_record(1, published + 0.2, "kinetics600", "2026-02-01"))
    assert "under the suite's per-video protocol" in report.build_table().set_index("row").loc[1, "status"]
    assert run_main(["compare", "--rows", "1", "--top1-tolerance", "1"]) == 0
    assert "per video (suite)" in capsys.readouterr().out


def test_compare_fits_120_columns(results, capsys):
    store_measurement(9, 11.5)  # with the ledger's longest stated cause as a footnote
    store_measurement(5, 4.19)
    assert run_main(["compare", "--rows", "5,9"]) == 1  # row 5's counterfactual is not stored here
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 120
    assert "top-1: no Kinetics-600 run is stored" in out and "top-1 delta" not in out
