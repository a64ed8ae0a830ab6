"""The speed harness: what it times, how it summarises, what it stores and renders (never how fast)."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest
import torch

from benchmarks.core import store
from benchmarks.core.store import Store
from benchmarks.run import main as run_main
from benchmarks.table1 import speed, speed_report
from benchmarks.table1.specs import build_model, get_spec


def test_time_calls_warms_up_then_times_between_min_repeats_and_repeats():
    calls = []
    config = speed.SpeedConfig(warmup=2, repeats=5, min_repeats=3, max_seconds=1e-9)
    times = speed.time_calls(lambda: calls.append(1), config)
    assert len(times) == 3 and len(calls) == 2 + 3  # max_seconds passed at once: the minimum is timed
    times = speed.time_calls(lambda: calls.append(1), dataclasses.replace(config, max_seconds=60))
    assert len(times) == 5 and all(t >= 0 for t in times)


def test_summarise_gives_median_and_quartiles_in_ms():
    summary = speed.summarise([0.001, 0.002, 0.003, 0.004, 0.005])
    assert summary["median"] == pytest.approx(3.0) and summary["n"] == 5
    assert summary["q1"] == pytest.approx(2.0) and summary["q3"] == pytest.approx(4.0)
    assert summary["iqr"] == pytest.approx(2.0)
    assert speed.summarise([0.002])["iqr"] == 0


@pytest.mark.parametrize("bad", [dict(device="tpu"), dict(backend="tvm"), dict(threads=0), dict(batch_sizes=()),
                                 dict(min_repeats=5, repeats=2)])
def test_bad_speed_configs_are_refused(bad):
    with pytest.raises(ValueError):
        speed.SpeedConfig(**bad)


def test_stream_row_reports_frame_latency_and_the_bytes_of_its_state():
    spec = dataclasses.replace(get_spec(1), frames=4, res=32)
    config = speed.SpeedConfig(warmup=0, repeats=2, min_repeats=1, batch_sizes=(1, 2))
    record = speed.measure_row_speed(spec, config)
    model = build_model(spec).eval()
    with torch.inference_mode():
        state = None
        for _ in range(2):
            _, state = model.forward_stream(torch.zeros(1, 3, 1, 32, 32), state)
    assert record["state_bytes"] == speed.state_bytes(state) > 0
    assert record["latency_per_frame_ms"]["n"] == 2 and record["streaming"]
    per_clip = record["latency_per_clip_ms"]["median"]
    assert record["latency_per_video_ms"]["median"] == pytest.approx(per_clip * spec.views)
    assert set(record["throughput"]) == {"1", "2"}
    one = record["throughput"]["1"]
    assert one["videos_per_s"] == pytest.approx(1e3 / (one["ms_per_call"]["median"] * spec.views))


def test_state_bytes_walks_nested_states():
    state = {"a": torch.zeros(2, 3), "b": {"c": torch.zeros(4, dtype=torch.int64)}, "d": [torch.zeros(1)]}
    assert speed.state_bytes(state) == 2 * 3 * 4 + 4 * 8 + 4


def test_rank_differences_name_the_rows_time_orders_differently():
    table = pd.DataFrame([{"row": 1, "model": "a", "GFLOPs": 1.0, "ms/video": 50.0},
                          {"row": 2, "model": "b", "GFLOPs": 2.0, "ms/video": 20.0},
                          {"row": 3, "model": "c", "GFLOPs": 3.0, "ms/video": 90.0}])
    lines = speed_report.rank_differences(table)
    assert len(lines) == 1 and "row 1 a (1 GFLOPs) takes 50 ms" in lines[0] and "row 2 b" in lines[0]


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "_cli_command", None)
    return tmp_path / "results"


FAST = ["--repeats", "1", "--warmup", "0", "--max-seconds", "0.01"]


def test_speed_command_stores_a_run_with_provenance_and_renders_it(results):
    assert run_main(["speed", "--rows", "3", *FAST, "--threads", "1,2", "--results", str(results)]) == 0
    runs = speed_report.speed_runs(Store(results))
    assert [run["config"]["threads"] for run in runs] == [1, 2]
    run = runs[-1]
    assert run["rows"][0]["row"] == 3 and run["config"]["backend"] == "eager"
    for name in ("hardware", "git_commit", "command", "date", "torch"):
        assert run[name]
    assert "onednn" in run["software"] and {"before", "after", "cores", "overloaded"} <= set(run["load"])
    text = (results / "speed.md").read_text()
    assert "cpu, 1 thread, eager" in text and "cpu, 2 threads, eager" in text and "MobileNetV3-S" in text
    table1 = (results / "table1.md").read_text()
    assert "CPU ms/video (2 threads)" in table1


def test_a_loaded_machine_is_marked_or_not_stored(results, monkeypatch):
    monkeypatch.setattr(speed, "load_average", lambda: 99.0)
    assert run_main(["speed", "--rows", "3", *FAST, "--refuse-loaded", "--results", str(results)]) == 1
    assert not speed_report.speed_runs(Store(results))
    assert run_main(["speed", "--rows", "3", *FAST, "--results", str(results)]) == 0
    run = speed_report.speed_runs(Store(results))[0]
    assert run["load"]["overloaded"] and "The machine was loaded" in (results / "speed.md").read_text()
    assert json.loads(json.dumps(run))["load"]["before"] == 99.0


@pytest.mark.parametrize("argv", [["--rows", "20"], ["--rows", "99"], ["--threads", "0"], ["--batch-sizes", "x"],
                                  ["--device", "cuda"] if not torch.cuda.is_available() else ["--threads", "-1"]])
def test_speed_usage_errors_exit_2(results, argv, capsys):
    with pytest.raises(SystemExit) as exited:
        code = run_main(["speed", *argv, *FAST, "--results", str(results)])
        raise SystemExit(code)
    assert exited.value.code == 2
    assert not results.exists()


def test_peers_are_timed_alternately_and_missing_packages_are_named(results, monkeypatch):
    from benchmarks.table1 import peers

    mobilenet = next(peer for peer in peers.PEERS if peer.ours == "mobilenet_v3_small")
    missing = peers.Peer("nothing", "x3d_xs", 5, "no_such_package_here", "pip install it", lambda: None)
    monkeypatch.setattr(peers, "PEERS", (mobilenet, missing))
    assert run_main(["speed", "--peers", *FAST, "--results", str(results)]) == 0
    run = speed_report.speed_runs(Store(results), "peers")[0]
    timed, absent = run["rows"]
    assert timed["ratio"]["n"] == 1 and timed["ours_ms"]["n"] == timed["peer_ms"]["n"] == 1
    assert timed["ratio"]["median"] == pytest.approx(timed["ours_ms"]["median"] / timed["peer_ms"]["median"])
    assert "no_such_package_here is not installed" in absent["unavailable"]
    text = (results / "speed.md").read_text()
    assert "Against the public implementations" in text and "not timed: no_such_package_here" in text


def test_our_models_compute_what_the_peers_compute_on_the_same_input():
    """The pairs are the same architecture: same parameter count (MobileNetV3 and X3D)."""
    from benchmarks.table1 import peers

    for peer in peers.PEERS:
        if peer.package == "movinets" or peers.unavailable(peer):
            continue
        import baselines

        ours, theirs = baselines.build(peer.ours, num_classes=peer.num_classes), peer.build()
        count = lambda model: sum(p.numel() for p in model.parameters())  # noqa: E731
        assert abs(count(ours) / count(theirs) - 1) < 0.01, peer.name


def test_onnxruntime_backend_times_the_exported_graph_frame_by_frame():
    spec = dataclasses.replace(get_spec(1), frames=3, res=32)
    config = speed.SpeedConfig(backend="onnxruntime", warmup=0, repeats=1, min_repeats=1)
    record = speed.measure_row_speed(spec, config)
    assert record["latency_per_frame_ms"]["n"] == 1 and record["state_bytes"] > 0
    assert set(record["throughput"]) == {"1"}
    with pytest.raises(ValueError, match="batch 1"):
        speed.SpeedConfig(backend="onnxruntime", batch_sizes=(1, 4))


def test_profile_stores_where_one_call_spends_its_time(results, monkeypatch):
    from benchmarks.table1 import peers

    mobilenet = next(peer for peer in peers.PEERS if peer.ours == "mobilenet_v3_small")
    monkeypatch.setattr(peers, "PEERS", (mobilenet,))
    assert run_main(["speed", "--rows", "3", "--profile", *FAST, "--results", str(results)]) == 0
    assert run_main(["speed", "--peers", "--profile", *FAST, "--results", str(results)]) == 0
    row = speed_report.speed_runs(Store(results))[0]["rows"][0]
    pair = speed_report.speed_runs(Store(results), "peers")[0]["rows"][0]
    for profile in (row["profile"], pair["ours_profile"], pair["peer_profile"]):
        assert 0 < len(profile) <= 8 and all(entry["calls"] >= 1 for entry in profile)
        shares = [entry["share"] for entry in profile]
        assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1 + 1e-9
    assert any("conv" in entry["op"] for entry in row["profile"])
    text = (results / "speed.md").read_text()
    assert "Where one call's time goes" in text and "MobileNetV3-S, peer: `" in text
    with pytest.raises(ValueError, match="profile"):
        speed.SpeedConfig(backend="onnxruntime", profile=True)
