"""The warm-up experiment: the smoothness metric, the figure's clip choice, and a shortened real run."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks import report
from benchmarks.run import main as run_main
from benchmarks.store import Store
from benchmarks.warmup import (
    WarmupConfig,
    embedding_acceleration,
    figure_clips,
    mean_std,
    principal_components,
    relative_acceleration,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def line(start, step, frames: int = 6) -> torch.Tensor:
    """One clip ``[1, frames, D]`` moving from ``start`` by ``step`` per frame."""
    t = torch.arange(frames, dtype=torch.float32)[:, None]
    return (torch.tensor(start) + t * torch.tensor(step))[None]


# --------------------------------------------------------------------------- the metric


def test_straight_evenly_spaced_trajectory_has_zero_acceleration():
    z = torch.cat([line([0.0, 1.0, 2.0], [0.5, -1.0, 3.0]), line([4.0, 0.0, 0.0], [0.0, 2.0, 0.0])])
    assert embedding_acceleration(z) == pytest.approx(0.0, abs=1e-10)
    assert relative_acceleration(z) == pytest.approx(0.0, abs=1e-10)


def test_acceleration_of_a_parabola_and_a_zigzag():
    t = torch.arange(6, dtype=torch.float32)
    parabola = (t**2)[None, :, None] * torch.tensor([1.0, 2.0])  # second difference 2 * (1, 2) at every t
    assert embedding_acceleration(parabola) == pytest.approx(4 * 5)
    zigzag = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0])[None, :, None]  # accelerations +-2, velocities +-1
    assert embedding_acceleration(zigzag) == pytest.approx(4.0)
    assert relative_acceleration(zigzag) == pytest.approx(4.0)
    # the mean over clips of the per-clip mean
    assert embedding_acceleration(torch.cat([zigzag, torch.zeros_like(zigzag)])) == pytest.approx(2.0)


def test_relative_acceleration_ignores_the_scale_of_the_embeddings():
    z = torch.randn(4, 6, 8, generator=torch.Generator().manual_seed(0))
    assert embedding_acceleration(3 * z) == pytest.approx(9 * embedding_acceleration(z), rel=1e-5)
    assert relative_acceleration(3 * z) == pytest.approx(relative_acceleration(z), rel=1e-5)


@pytest.mark.parametrize("shape", [(6, 8), (2, 2, 8)])
def test_metric_rejects_what_is_not_clips_of_three_frames_or_more(shape):
    with pytest.raises(ValueError, match="frames >= 3"):
        embedding_acceleration(torch.zeros(shape))


def test_principal_components_of_points_on_a_line():
    direction = np.array([1.0, 2.0, 2.0]) / 3.0
    points = np.array([1.0, 4.0, -2.0]) + np.arange(5)[:, None] * direction
    projected = principal_components(points)
    assert projected.shape == (5, 2)
    np.testing.assert_allclose(np.abs(projected[:, 0]), np.abs(np.arange(5) - 2.0), atol=1e-9)
    np.testing.assert_allclose(projected[:, 1], 0.0, atol=1e-9)


def test_mean_std_over_seeds():
    assert mean_std([50.0, 60.0]) == {"mean": 55.0, "std": pytest.approx(7.0710678), "values": [50.0, 60.0]}
    assert mean_std([40.0])["std"] is None


def test_figure_clips_follow_the_index_labels():
    classes = ("pitch", "roll", "yaw")  # the data index sorts class folders
    labels = torch.tensor([2, 0, 1, 2, 0, 1])
    assert figure_clips(labels, classes, per_class=1) == [0, 1, 2]  # yaw, pitch, roll as in the paper
    assert figure_clips(labels, classes, per_class=2) == [0, 3, 1, 4, 2, 5]


def test_config_rejects_a_window_longer_than_the_clip():
    with pytest.raises(ValueError, match="grw_window"):
        WarmupConfig(frames=6, grw_window=7)
    assert run_main(["warmup", "--seeds", "0"]) == 2


# --------------------------------------------------------------------------- a shortened run


def test_short_warmup_run_stores_runs_summary_and_figure(tmp_path):
    results = tmp_path / "results"
    argv = ["warmup", "--data", str(tmp_path / "data"), "--work", str(tmp_path / "work"), "--results", str(results),
            "--train", "24", "--val", "6", "--test", "12", "--size", "32", "--epochs", "1", "--seeds", "1",
            "--num-workers", "0"]
    assert run_main(argv) == 0

    assert (results / "warmup_embeddings.png").stat().st_size > 10_000
    [summary_path] = (results / "runs" / "warmup").glob("warmup-*.json")
    summary = json.loads(summary_path.read_text())
    assert summary["command"].startswith("python -m benchmarks.run warmup") and summary["git_commit"]
    assert summary["grw"] == {"weight": 0.1, "window": 6, "alpha": 0.5}
    assert set(summary["variants"]) == {"without GRW", "with GRW"}
    for name, variant in summary["variants"].items():
        [run] = variant["runs"]
        assert run["grw"] == (name == "with GRW") and run["seed"] == 0
        assert variant["top1"]["values"] == [run["top1"]] and variant["top1"]["std"] is None
        assert run["acceleration"] > 0 and 0 < run["relative_acceleration"] < 10
        assert (results / "runs" / run["run"]).is_file()

    # every evaluation is a stored run on the airplanes; the summary does not get in the way of reading them
    runs = Store(results).load_runs()
    assert sorted(run["grw"] for run in runs) == [False, True]
    assert {run["dataset"] for run in runs} == {"warmup-airplanes"}
    assert all(run["videos_evaluated"] == 12 and run["split"] == "test" for run in runs)
    # runs on the airplanes are never Table 1 (Kinetics-600) results
    table = report.build_table(Store(results))
    assert pd.isna(table.set_index("row").loc[1, "reproduced_top1"])
    assert report.plot_points(table).set_index("row").loc[1, "top1_source"] == "published"
