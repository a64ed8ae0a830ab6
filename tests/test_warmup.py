"""The warm-up experiment: its model, data and figure choices, and a shortened real run that learns."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks.core.store import Store
from benchmarks.data import airplanes
from benchmarks.run import main as run_main
from benchmarks.studies.warmup import (
    VIDEO_FRAMES,
    WarmupConfig,
    clip_batch,
    decode_split,
    figure_clips,
    median_run,
    warmup_model,
)
from benchmarks.table1 import report

pytestmark = pytest.mark.usefixtures("one_thread")


def test_both_arms_are_one_network_that_differs_only_in_the_grw_weight():
    config = WarmupConfig()
    with_grw, without = warmup_model(config, True), warmup_model(config, False)
    assert with_grw.grw_weight == 0.1 and without.grw_weight == 0.0
    assert [(k, v.shape) for k, v in with_grw.state_dict().items()] == [
        (k, v.shape) for k, v in without.state_dict().items()]
    x = torch.rand(2, 3, 6, 32, 32)
    with_grw.train(), without.train()
    logits, aux = with_grw(x)
    assert logits.shape == (2, 3) and set(aux) == {"grw"} and aux["grw"].item() > 0
    assert without(x)[1] == {}  # no GRW term is computed at all
    assert with_grw.backbone.frame_embeddings(x).shape == (2, 6, 128)


def test_clip_batch_takes_consecutive_frames_from_each_start():
    videos = torch.arange(VIDEO_FRAMES, dtype=torch.uint8)[None, :, None, None, None].expand(2, -1, 4, 4, 3).clone()
    videos[1] += 100
    clips = clip_batch(videos, torch.tensor([0, 2]), 6, torch.zeros(1, 3, 1, 1, 1), torch.ones(1, 3, 1, 1, 1))
    assert clips.shape == (2, 3, 6, 4, 4)
    assert torch.allclose(clips[0, 0, :, 0, 0] * 255, torch.arange(6.0))
    assert torch.allclose(clips[1, 0, :, 0, 0] * 255, torch.arange(2.0, 8.0) + 100)


def test_median_run_and_figure_clips():
    runs = [{"seed": s, "top1": t} for s, t in enumerate([90.0, 70.0, 95.0, 80.0])]
    assert median_run(runs)["seed"] == 3  # 70, 80 | 90, 95: the lower middle
    assert median_run(runs[:3])["seed"] == 0
    labels = torch.tensor([0, 0, 1, 1, 2, 2])  # airplanes.CLASSES order: yaw, pitch, roll
    assert figure_clips(labels, per_class=1) == [0, 2, 4]
    assert figure_clips(labels, per_class=2) == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("argv", [["--seeds", "0"], ["--frames", "6", "--grw-window", "7"], ["--frames", "9"]])
def test_bad_settings_are_usage_errors(argv):
    assert run_main(["warmup", *argv]) == 2


# --------------------------------------------------------------------------- a shortened real run


def test_short_warmup_run_learns_and_stores_statistics_and_figure(tmp_path):
    results, data = tmp_path / "results", tmp_path / "data"
    argv = ["warmup", "--data", str(data), "--results", str(results), "--train", "600", "--val", "3",
            "--test", "60", "--epochs", "10", "--seeds", "2", "--processes", "2"]
    assert run_main(argv) == 0

    test = decode_split(data, "test")
    assert test.videos.shape == (60, VIDEO_FRAMES, 32, 32, 3) and test.labels.bincount().tolist() == [20, 20, 20]
    assert (results / "warmup_embeddings.png").stat().st_size > 20_000
    [path] = (results / "runs" / "warmup").glob("warmup-*.json")
    summary = json.loads(path.read_text())
    assert summary["command"].startswith("python -m benchmarks.run warmup") and summary["git_commit"]
    assert summary["videos"] == {"train": 600, "test": 60, "skipped": 0}
    assert [(run["grw"], run["seed"]) for run in summary["runs"]] == [(False, 0), (False, 1), (True, 0), (True, 1)]
    for run in summary["runs"]:
        assert len(run["curve"]) == 10 and (run["curve"][-1]["train_grw_weighted"] > 0) == run["grw"]
        assert run["curve"][-1]["train_ce"] < run["curve"][0]["train_ce"]  # it fits its training clips
        assert 0 <= run["relative_acceleration"] < 5 and 0 < run["straightness"] <= 1
    # learnt: clearly above chance (33.3 %) on 60 test videos, for both arms together
    assert np.mean([run["top1"] for run in summary["runs"]]) > 50
    for name, grw in (("without GRW", False), ("with GRW", True)):
        top1 = summary["arms"][name]["top1"]
        values = [run["top1"] for run in summary["runs"] if run["grw"] == grw]
        assert top1["values"] == values and top1["n"] == 2 and top1["ci95"][0] <= top1["mean"] <= top1["ci95"][1]
    difference = summary["difference_with_minus_without"]["top1"]
    assert difference["values"] == pytest.approx([w - o for w, o in zip(
        summary["arms"]["with GRW"]["top1"]["values"], summary["arms"]["without GRW"]["top1"]["values"])])
    assert set(summary["figure"]["runs"]) == {"without GRW", "with GRW"}

    # the warm-up is not a Table 1 (Kinetics-600) result, and not an accuracy run of the store
    assert Store(results).load_runs() == []
    table = report.build_table(Store(results))
    assert pd.isna(table.set_index("row").loc[1, "reproduced_top1"])
    assert airplanes.CLASSES == ("yaw", "pitch", "roll")
