"""Evaluation: dataset naming, streaming vs whole clip, multi-view averaging, a multi-view row
evaluated from a checkpoint on real mp4 files, and clear errors."""

import dataclasses
import json
import subprocess
import sys

import pandas as pd
import pytest
import torch
from torch import nn

from benchmarks.core.checkpoint import save_checkpoint
from benchmarks.core.counting import LogitsOnly, count_gflops, count_params
from benchmarks.core.paths import REPO_ROOT
from benchmarks.core.store import RUN_FIELDS, Store
from benchmarks.data import toydata
from benchmarks.engine.config import RunConfig
from benchmarks.engine.evaluate import EvalConfig, data_classes, dataset_name, evaluate, predict, stream_logits
from benchmarks.engine.runs import build_run_model, resolve_spec, run_record
from benchmarks.engine.train import Progress

pytestmark = pytest.mark.usefixtures("one_thread")


def untrained_checkpoint(path, config: RunConfig, classes) -> None:
    """A checkpoint in the format `train` writes, of a freshly initialised model (no EMA)."""
    spec, deviations = resolve_spec(config)
    torch.manual_seed(0)
    model = build_run_model(spec, len(classes), config.recipe)
    save_checkpoint(path, {"model": model.state_dict(), "ema": None, "progress": dataclasses.asdict(Progress()),
                           **run_record(config, spec, deviations, classes), "complete": False})


def test_data_classes_come_from_the_data(tiny_kinetics, tmp_path):
    assert data_classes(tiny_kinetics.root, "val", None) == 3
    assert data_classes(tiny_kinetics.root, "train", tiny_kinetics.annotations["train"]) == 3
    assert data_classes(tmp_path, "val", None) == 0


def test_dataset_name_never_claims_kinetics_for_other_data(tmp_path):
    assert dataset_name(tmp_path / "toy", classes=3) == "custom:toy"
    assert dataset_name(tmp_path / "k600", classes=600) == "kinetics600"
    assert dataset_name(tmp_path / "k600", classes=600, name="kinetics600-subset") == "kinetics600-subset"
    (tmp_path / "dataset.json").write_text(json.dumps({"name": "motion-toy"}))
    assert dataset_name(tmp_path, classes=600) == "motion-toy"
    (tmp_path / "dataset.json").write_text("[]")
    with pytest.raises(ValueError, match="dataset.json"):
        dataset_name(tmp_path, classes=3)


def test_streaming_in_uneven_chunks_matches_the_whole_clip():
    config = RunConfig(row=1, data="d", out="o", res=32, frames=8)
    spec, _ = resolve_spec(config)
    torch.manual_seed(0)
    model = build_run_model(spec, 3, config.recipe).eval()
    video = torch.rand(2, 3, 8, 32, 32)
    whole = predict(model, video, "single-clip", chunk=3)
    assert torch.allclose(stream_logits(model, video, chunk=3), whole, atol=1e-4)
    assert torch.allclose(predict(model, video, "streaming", chunk=1), whole, atol=1e-4)


class _MeanPixel(nn.Module):
    """Logits = [mean, -mean] of each clip: easy to average by hand."""

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3, 4))
        return torch.stack([m, -m], dim=1)


def test_multi_view_averages_the_views_logits():
    videos = torch.rand(2, 5, 3, 4, 8, 8)  # [B, V, 3, T, H, W]
    logits = predict(_MeanPixel(), videos, "multi-view", chunk=8)
    per_view = videos.mean(dim=(2, 3, 4, 5))
    assert torch.allclose(logits, torch.stack([per_view.mean(1), -per_view.mean(1)], dim=1))


def test_counting_flops_leaves_the_model_in_eval_mode():
    model = nn.Sequential(nn.Conv3d(3, 4, 1), nn.BatchNorm3d(4)).eval()
    assert count_gflops(LogitsOnly(model), (1, 3, 2, 4, 4)) > 0
    assert not any(module.training for module in model.modules())


def test_multi_view_row_from_a_checkpoint(tiny_kinetics, tmp_path):
    store = Store(tmp_path / "results")  # the results store is a parameter
    config = RunConfig(row=14, data=str(tiny_kinetics.root), out=str(tmp_path), res=32)  # X3D-XS, 10 x 3 views
    untrained_checkpoint(tmp_path / "last.pt", config, tiny_kinetics.classes)
    record = evaluate(EvalConfig(checkpoint=str(tmp_path / "last.pt"), data=str(tiny_kinetics.root), row="14",
                                 num_workers=0, batch_size=3, index_cache=str(tmp_path)), store)
    stored = json.loads(json.dumps({k: v for k, v in record.items() if k != "path"}))  # tuples -> lists
    assert store.load_runs() == [stored] and set(RUN_FIELDS) <= set(record)
    assert record["method"] == "standard" and record["setting"] == "default"
    assert record["mode"] == "multi-view" and record["weights"] == "raw"
    assert (record["input"]["clips"], record["input"]["crops"], record["input"]["size"]) == (10, 3, 32)
    assert record["gflops"] == pytest.approx(30 * record["gflops_per_view"])
    assert record["params"] == count_params(build_run_model(resolve_spec(config)[0], 3, config.recipe))  # 3 classes
    assert record["deviations"]["res"] == {"spec": 182, "used": 32}
    assert record["videos_evaluated"] == tiny_kinetics.videos["val"]
    assert record["dataset"] == toydata.DATASET_NAME and record["split"] == "val"
    assert 0 <= record["top1"] <= record["top5"] == 100.0  # 3 classes: the top-5 holds every class
    per_class = pd.read_csv(record["per_class_csv"])
    assert list(per_class["class"]) == list(tiny_kinetics.classes) and per_class["videos"].sum() == 9

    same_checkpoint = dict(checkpoint=str(tmp_path / "last.pt"), data=str(tiny_kinetics.root))
    with pytest.raises(ValueError, match="row 14"):
        evaluate(EvalConfig(**same_checkpoint, row=5))
    with pytest.raises(ValueError, match="needs a streaming row"):
        evaluate(EvalConfig(**same_checkpoint, compare_whole_clip=True))


def test_cli_reports_a_bad_checkpoint_in_one_line(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    result = subprocess.run([sys.executable, "-m", "benchmarks.run", "eval", "--row", "1", "--checkpoint",
                             str(tmp_path / "bad.pt"), "--data", str(tmp_path)],
                            capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("eval: error:") and "bad.pt" in result.stderr
