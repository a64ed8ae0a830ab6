"""A3D (seed 002): slimmable X3D layers that compute on weight slices, the training step of Eq. 3, BN
recalibration, the configuration-budget table, and the train/eval commands end to end."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import baselines
from baselines.slimmable import SlimmableBatchNorm3d, SlimmableConv3d, recompute_batchnorm
from baselines.x3d import X3D, scaled_config, width_channels, x3d_of
from benchmarks.core.checkpoint import LAST, file_sha256
from benchmarks.core.counting import count_gflops
from benchmarks.core.store import Store, write_json
from benchmarks.data.videos import Sampling, VideoDataset, VideoIndex, evenly_spread, make_loader
from benchmarks.engine.config import RunConfig
from benchmarks.engine.method import logits_of
from benchmarks.engine.recipe import Recipe
from benchmarks.engine.runs import eval_sampling, load_trained
from benchmarks.engine.train import train
from benchmarks.methods.a3d.model import (
    A3D_RANGES,
    FULL,
    Configuration,
    a3d_loss,
    configured,
    grid,
    sample_subnetworks,
    scale_clip,
)
from benchmarks.methods.a3d.sweep import (
    Clips,
    MemoryBudget,
    budget_table,
    parse_gflops_range,
    select,
    sweep,
    within_gflops,
)
from benchmarks.run import main as run_main

pytestmark = pytest.mark.usefixtures("one_thread")


def adaptive_and_plain(seed: int = 0) -> tuple[X3D, X3D]:
    torch.manual_seed(seed)
    adaptive = baselines.build("x3d_xs", num_classes=3, adaptive=True)
    plain = baselines.build("x3d_xs", num_classes=3)
    plain.load_state_dict(adaptive.state_dict())
    return adaptive, plain


def with_live_residuals(model: nn.Module) -> nn.Module:
    """X3D starts every block as its shortcut (last BN weight 0); give every BN a non-zero weight so
    that gradients reach every layer."""
    torch.manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm3d):
            nn.init.uniform_(module.weight, 0.5, 1.5)
    return model


# --------------------------------------------------------------------------- slimmable X3D


def test_full_configuration_is_plain_x3d():
    adaptive, plain = adaptive_and_plain()
    assert adaptive.state_dict().keys() == plain.state_dict().keys()
    assert any(isinstance(m, SlimmableConv3d) for m in adaptive.modules())
    clip = torch.randn(2, 3, 4, 32, 32)
    adaptive.eval(), plain.eval()
    assert torch.equal(adaptive(clip), plain(clip))
    adaptive.train(), plain.train()
    torch.manual_seed(3)
    out = adaptive(clip)
    torch.manual_seed(3)
    assert torch.equal(out, plain(clip))  # training mode too: batch statistics, dropout


@pytest.mark.parametrize("width", [0.5, 0.7])
def test_a_sliced_configuration_counts_the_flops_of_a_narrow_x3d(width):
    adaptive, _ = adaptive_and_plain()
    narrow = X3D(scaled_config(adaptive.config, width), num_classes=3)
    shape = (1, 3, 4, 32, 32)
    with configured(adaptive, Configuration(width)):
        sliced = count_gflops(adaptive, shape)
    assert sliced == pytest.approx(count_gflops(narrow, shape), rel=1e-9)
    assert sliced < 0.6 * count_gflops(adaptive, shape)  # fewer multiply-adds, not masked ones


def test_a_nested_configuration_gives_the_outer_one_back():
    model, _ = adaptive_and_plain()

    def active() -> dict[str, int]:
        return {name: m.active_out or m.out_channels for name, m in model.named_modules()
                if isinstance(m, SlimmableConv3d)}

    full = active()
    with configured(model, Configuration(0.5)):
        half = active()
        with configured(model, Configuration(0.7)):
            assert active() != half
        assert active() == half != full
    assert active() == full


def test_half_width_leaves_the_unused_channels_without_gradient():
    adaptive = with_live_residuals(adaptive_and_plain()[0])
    channels = width_channels(adaptive.config, 0.5)
    inputs = {}  # input channels each convolution really received
    for name, module in adaptive.named_modules():
        if isinstance(module, SlimmableConv3d):
            module.register_forward_pre_hook(lambda m, args, name=name: inputs.__setitem__(name, args[0].shape[1]))
    with configured(adaptive, Configuration(0.5)):
        logits = adaptive(torch.randn(2, 3, 4, 32, 32))
    nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    narrower = 0
    for name, module in adaptive.named_modules():
        if isinstance(module, SlimmableConv3d):
            used, grad = channels[name], module.weight.grad
            assert grad[:used].abs().max() > 0, name
            if used < module.out_channels:  # (an SE squeeze rounds up to 8 and may keep all its channels)
                assert grad[used:].abs().max() == 0, name
                narrower += 1
            if module.groups == 1 and inputs[name] < module.in_channels:
                assert grad[:, inputs[name]:].abs().max() == 0, name
    assert narrower > 50
    lin5 = adaptive.classifier.lin5.weight.grad
    assert lin5[:, channels["conv5.0"]:].abs().max() == 0 and lin5[:, :channels["conv5.0"]].abs().max() > 0


def test_recalibration_gives_the_calibration_batch_statistics():
    bn = SlimmableBatchNorm3d(8).eval()
    batch = torch.randn(6, 5, 2, 3, 3) * 2 + 1  # 5 of the 8 channels: a narrower configuration
    used = recompute_batchnorm(bn, [batch], bn)
    assert used == 1 and not bn.training and bn.momentum == 0.1
    flat = batch.transpose(0, 1).reshape(5, -1)
    assert torch.allclose(bn.running_mean[:5], flat.mean(1), atol=1e-6)
    assert torch.allclose(bn.running_var[:5], flat.var(1, unbiased=True), atol=1e-5)
    assert torch.equal(bn.running_mean[5:], torch.zeros(3))  # the unused channels: reset, untouched


# --------------------------------------------------------------------------- training step


def test_every_step_trains_the_full_and_the_smallest_network():
    a3d_range = A3D_RANGES["[0.016,1]"]
    model = with_live_residuals(baselines.build("x3d_xs", num_classes=3, adaptive=True))
    widths_seen = []
    conv5 = model.conv5[0]
    conv5.register_forward_hook(lambda module, args, out: widths_seen.append(out.shape[1]))
    videos, labels = torch.randn(2, 3, 8, 32, 32), torch.tensor([0, 2])
    for step in range(3):
        torch.manual_seed(step)
        widths_seen.clear()
        loss, terms, trained = a3d_loss(model, videos, labels, nn.CrossEntropyLoss(), a3d_range, logits_of)
        assert trained[0] == FULL and trained[2].width == a3d_range.width_min
        assert a3d_range.width_min <= trained[1].width <= 1
        assert {c.spatial for c in trained[1:]} <= set(a3d_range.spatial)
        assert {c.temporal for c in trained[1:]} <= set(a3d_range.temporal)
        assert widths_seen[0] == conv5.out_channels and widths_seen[2] == width_channels(model.config, 0.5)["conv5.0"]
        assert terms["loss"] == pytest.approx(terms["ce"] + terms["distill"]) and terms["distill"] >= 0
        assert loss.requires_grad
    torch.manual_seed(0)
    again = sample_subnetworks(a3d_range)
    torch.manual_seed(0)
    assert sample_subnetworks(a3d_range) == again  # the loop's per-step seed makes resuming exact


def test_scaled_clips_and_configuration_names():
    clip = torch.arange(8.0).view(1, 1, 8, 1, 1).expand(1, 3, 8, 32, 32)
    small = scale_clip(clip, Configuration(1.0, 0.57, 0.25))
    assert small.shape == (1, 3, 2, 18, 18)
    assert small[0, 0, :, 0, 0].tolist() == [0.0, 7.0]  # evenly spaced over the clip: first and last
    assert Configuration.parse("0.5x0.71x0.25") == Configuration(0.5, 0.71, 0.25)
    assert Configuration(0.5, 0.71, 0.25).name == "0.5x0.71x0.25"
    assert len(grid(A3D_RANGES["[0.016,1]"])) == 96  # the paper's 6 x 4 x 4
    with pytest.raises(ValueError, match="WIDTHxSPATIALxTEMPORAL"):
        Configuration.parse("half")
    with pytest.raises(ValueError, match="gamma_w"):
        Configuration(1.5)


def test_budget_table_keeps_the_best_configuration_within_each_budget():
    rows = [{"gflops": g, "val_top1": v, "configuration": str(i)}
            for i, (g, v) in enumerate([(1.0, 40), (0.5, 45), (2.0, 44), (3.0, 60), (0.2, 30), (0.5, 35), (4, 59)])]
    table = budget_table(rows)
    assert [(row["gflops"], row["val_top1"]) for row in table] == [(0.2, 30), (0.5, 45), (3.0, 60)]
    assert all(a["gflops"] < b["gflops"] and a["val_top1"] < b["val_top1"] for a, b in zip(table, table[1:]))
    assert select(table, 2.5)["val_top1"] == 45 and select(table, 10)["gflops"] == 3.0
    with pytest.raises(ValueError, match="cheapest"):
        select(table, 0.1)


# --------------------------------------------------------------------------- end to end


def a3d_config(data: Path, out: Path, **changes) -> RunConfig:
    return RunConfig(**{**dict(row=5, data=str(data), out=str(out), method="a3d", frames=8, res=32, fps=8,
                               recipe=Recipe(epochs=1, batch_size=4, lr=1e-3, ema_decay=0.0), validate=False,
                               num_workers=0, log_every=1000), **changes})


@pytest.fixture(scope="module")
def a3d_run(planes, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("a3d_run")
    torch.set_num_threads(1)
    return out, train(a3d_config(planes, out))


def test_train_a3d_logs_its_terms_and_refuses_other_families(a3d_run, planes, tmp_path):
    _, summary = a3d_run
    assert summary["status"] == "completed"
    assert summary["history"][0]["train_distill"] > 0
    assert summary["history"][0]["train_loss"] == pytest.approx(
        summary["history"][0]["train_ce"] + summary["history"][0]["train_distill"])
    with pytest.raises(ValueError, match="X3D row"):
        train(a3d_config(planes, tmp_path / "mobilenet", row=3))


def test_eval_one_configuration_is_an_eval_run_and_a_budget_needs_a_sweep(a3d_run, planes, tmp_path):
    from benchmarks.commands.eval import stored_run
    from benchmarks.engine.evaluate import EvalConfig

    out, _ = a3d_run
    results = tmp_path / "results"
    args = ["eval", "--row", "5", "--checkpoint", str(out / LAST), "--data", str(planes), "--results", str(results),
            "--num-workers", "0", "--calibration-videos", "16"]
    assert run_main([*args, "--method", "vared2", "--config", "1x1x1"]) == 2  # trained with a3d: refused
    assert run_main([*args, "--method", "a3d", "--config", "0.5x0.71x0.5", "--split", "test"]) == 0
    assert not (results / "runs" / "a3d").exists()  # no sweep file for one configuration
    (run,) = Store(results).load_runs()  # a run with every field of an eval run
    assert (run["row"], run["split"], run["method"], run["setting"], run["videos_evaluated"]) == (
        5, "test", "a3d", "0.5x0.71x0.5", 6)
    assert run["a3d"]["width"] == 0.5 and run["a3d"]["calibration_videos"] == 16
    assert (run["input"]["frames"], run["input"]["side"]) == (4, 23) and 0 <= run["top1"] <= run["top5"] <= 100
    assert run["params"] < 0.4 * sum(p.numel() for p in baselines.build("x3d_xs", num_classes=3).parameters())
    as_trained = EvalConfig(str(out / LAST), str(planes), split="test")
    assert stored_run(as_trained, Store(results)) is None  # the model as trained is still to be evaluated
    stored = stored_run(dataclasses.replace(as_trained, setting="0.5x0.71x0.5"), Store(results))
    assert {key: stored[key] for key in run} == run and stored["run_id"]  # with its file and id
    assert run_main([*args, "--budget", "0.01"]) == 2  # no sweep of this checkpoint is stored yet


def test_sweep_stores_a_monotone_budget_table(a3d_run, planes, tmp_path):
    out, _ = a3d_run
    configurations = [Configuration.parse(text) for text in ("0.5x0.57x0.5", "1x0.57x0.5", "0.5x1x1", "1x1x1")]
    record = sweep(out / LAST, str(planes), Store(tmp_path / "results"), configurations=configurations,
                   calibration_videos=16)
    assert len(record["configurations"]) == 4 and record["videos"] == {"val": 6, "test": 6}
    gflops = {row["configuration"]: row["gflops"] for row in record["configurations"]}
    assert gflops["0.5x0.57x0.5"] < gflops["1x0.57x0.5"] < gflops["1x1x1"]
    assert gflops["0.5x1x1"] < gflops["1x1x1"]
    table = record["budget_table"]
    assert table[0]["configuration"] == "0.5x0.57x0.5"  # the cheapest is always the best within its budget
    assert all(a["gflops"] < b["gflops"] and a["val_top1"] < b["val_top1"] for a, b in zip(table, table[1:]))
    assert Path(record["path"]).is_file()


def counting_decodes(monkeypatch) -> list[int]:
    """Every video the sweep decodes from now on, by dataset index."""
    decoded: list[int] = []
    original = VideoDataset.__getitem__

    def getitem(self, key):
        decoded.append(key)
        return original(self, key)

    monkeypatch.setattr(VideoDataset, "__getitem__", getitem)
    return decoded


def test_a_sweep_decodes_each_clip_once_and_streams_beyond_its_memory(a3d_run, planes, tmp_path, monkeypatch):
    out, _ = a3d_run
    configurations = [Configuration.parse(text) for text in ("0.5x0.57x0.25", "1x0.57x0.25", "0.7x1x0.75")]
    decoded = counting_decodes(monkeypatch)
    held = sweep(out / LAST, str(planes), Store(tmp_path / "results"), configurations=configurations,
                 calibration_videos=16, batch_size=4)
    assert held["clips_in_memory"] == {"calibration": True, "val": True, "test": True}
    assert len(decoded) == 16 + 6 + 6  # once, for three configurations
    decoded.clear()
    streamed = sweep(out / LAST, str(planes), Store(tmp_path / "results"), configurations=configurations,
                     calibration_videos=16, batch_size=4, clip_memory_mb=0)
    assert streamed["clips_in_memory"] == {"calibration": False, "val": False, "test": False}
    assert len(decoded) == 3 * (16 + 6 + 6)
    assert streamed["configurations"] == held["configurations"]
    assert [row["configuration"] for row in held["configurations"]] == [c.name for c in configurations]


def test_a_configurations_row_does_not_depend_on_the_others_swept(a3d_run, planes, tmp_path):
    """BatchNorm statistics are recomputed for each configuration, and the clips cut for one input
    serve every width at that input: a configuration swept alone gets the row it gets among others."""
    out, _ = a3d_run
    configurations = [Configuration.parse(text) for text in ("1x0.71x0.5", "0.5x0.71x0.5", "0.5x1x1")]
    together = sweep(out / LAST, str(planes), Store(tmp_path / "results"), configurations=configurations,
                     calibration_videos=16, batch_size=4)
    for configuration, row in zip(configurations, together["configurations"]):
        alone = sweep(out / LAST, str(planes), Store(tmp_path / "results"), configurations=[configuration],
                      calibration_videos=16, batch_size=4, clip_memory_mb=0)
        assert alone["configurations"] == [row]


def plain_top1(checkpoint: Path, data: Path, configuration: Configuration, calibration_videos: int,
               batch_size: int) -> dict[str, float]:
    """A configuration's top-1 per split, computed plainly (as the sweep did before it held its clips):
    every clip decoded and cut for this configuration alone, BatchNorm recalibrated, each split classified."""
    trained = load_trained(checkpoint, "raw")
    model = trained.model.eval()
    sampling = eval_sampling(trained.spec, model, views=False)

    def batches(split: str, videos: int | None = None):
        index = VideoIndex.build(str(data), split, classes=trained.classes)
        loader = make_loader(VideoDataset(index, sampling, train=False), batch_size,
                             sampler=evenly_spread(len(index), videos))
        return [(scale_clip(clips, configuration), labels) for clips, labels, _ in loader]

    with configured(model, configuration), torch.no_grad():
        recompute_batchnorm(model, (clips for clips, _ in batches("train", calibration_videos)), model)
        top1 = {}
        for split in ("val", "test"):
            hits = torch.cat([logits_of(model(clips)).argmax(1) == labels for clips, labels in batches(split)])
            top1[f"{split}_top1"] = 100.0 * int(hits.sum()) / len(hits)
    return top1


def test_sweep_rows_are_those_of_a_plain_evaluation_of_each_configuration(a3d_run, planes, tmp_path):
    out, _ = a3d_run
    configurations = [Configuration.parse(text) for text in ("0.5x0.57x0.25", "1x0.57x0.25", "0.7x1x0.75")]
    record = sweep(out / LAST, str(planes), Store(tmp_path / "results"), configurations=configurations,
                   calibration_videos=16, batch_size=4)
    for configuration, row in zip(configurations, record["configurations"]):
        assert {split: row[split] for split in ("val_top1", "test_top1")} == plain_top1(
            out / LAST, planes, configuration, calibration_videos=16, batch_size=4)


def test_every_configuration_is_classified_at_its_own_width(a3d_run, planes, tmp_path, monkeypatch):
    from benchmarks.methods.a3d import sweep as sweep_module

    out, _ = a3d_run
    widths: list[tuple[float, dict[str, int]]] = []
    classify = sweep_module.top1

    def noting_the_width(model, clips, configuration):
        active = {name: module.active_out or module.out_channels for name, module in x3d_of(model).named_modules()
                  if isinstance(module, SlimmableConv3d)}
        widths.append((configuration.width, active))
        return classify(model, clips, configuration)

    monkeypatch.setattr(sweep_module, "top1", noting_the_width)
    sweep(out / LAST, str(planes), Store(tmp_path / "results"), calibration_videos=16, batch_size=4,
          configurations=[Configuration.parse(text) for text in ("0.5x0.57x0.25", "1x1x1", "0.7x1x0.75")])
    config = baselines.build("x3d_xs", num_classes=3).config
    assert len(widths) == 6
    for width, active in widths:
        assert {name: active[name] for name in width_channels(config, width)} == width_channels(config, width)


def test_held_clips_are_the_streamed_batches_even_when_videos_fail(planes, monkeypatch):
    sampling = Sampling(frames=8, fps=8, size=32)
    classes = tuple(sorted(folder.name for folder in (planes / "val").iterdir() if folder.is_dir()))
    original = VideoDataset.__getitem__
    monkeypatch.setattr(VideoDataset, "__getitem__", lambda self, key: None if key == 1 else original(self, key))
    held = Clips(str(planes), "val", classes, sampling, 4, MemoryBudget(2**30))
    streamed = Clips(str(planes), "val", classes, sampling, 4, MemoryBudget(0))
    assert held.in_memory and not streamed.in_memory and held.count == 5
    configuration = Configuration(0.5, 0.71, 0.5)
    pairs = list(zip(held.batches(configuration), streamed.batches(configuration), strict=True))
    assert [len(labels) for (_, labels), _ in pairs] == [4, 1] and streamed.count == 5
    for (held_clips, held_labels), (clips, labels) in pairs:
        assert held_clips.shape[2:] == (4, 23, 23)
        assert torch.equal(held_clips, clips) and torch.equal(held_labels, labels)


def sweep_args(out: Path, planes: Path, results: Path) -> list[str]:
    return ["eval", "--row", "5", "--checkpoint", str(out / LAST), "--data", str(planes), "--results", str(results),
            "--num-workers", "0", "--calibration-videos", "16"]


def test_a_sweep_of_configurations_chosen_by_index_name_and_gflops(a3d_run, planes, tmp_path, capsys):
    out, _ = a3d_run
    results = tmp_path / "results"
    args = [*sweep_args(out, planes, results), "--sweep", "--threads", "1"]
    assert run_main([*args, "--configs", "0,1x1x1,95"]) == 0
    (path,) = (results / "runs" / "a3d").glob("a3d-sweep-*.json")
    record = json.loads(path.read_text())
    assert [(row["index"], row["configuration"]) for row in record["configurations"]] == [(0, "0.5x0.57x0.25"),
                                                                                        (95, "1x1x1")]
    assert not record["complete"] and record["selection"] == {"configs": ["0", "1x1x1", "95"], "gflops": None}
    printed = capsys.readouterr().out
    assert "0.5x0.57x0.25" in printed and "1x1x1" in printed  # every row of a subset, not its budget table
    path.unlink()
    assert run_main([*args, "--configs", "0,0.5x1x1,1x1x1", "--gflops", "0.01:0.02"]) == 0
    (path,) = (results / "runs" / "a3d").glob("a3d-sweep-*.json")
    record = json.loads(path.read_text())
    assert [row["configuration"] for row in record["configurations"]] == ["0.5x1x1"]
    assert record["selection"]["gflops"] == [0.01, 0.02]
    assert run_main([*sweep_args(out, planes, results), "--budget", "0.05"]) == 2  # from a complete sweep only


@pytest.mark.parametrize("flags, message", [
    (["--sweep", "--configs", "96"], "index 96 is out of range: range [0.016,1] has 96 configurations, 0-95"),
    (["--sweep", "--configs", "0,0.55x1x1"], "0.55x1x1 is not a configuration of range [0.016,1]"),
    (["--sweep", "--configs", "fast"], "expected configuration indices or names such as 0.5x0.71x0.25, got 'fast'"),
    (["--sweep", "--configs", ","], "give at least one configuration"),
    (["--sweep", "--gflops", "0.2:0.1"], "expected 0 <= LO <= HI, got '0.2:0.1'"),
    (["--sweep", "--gflops", "cheap"], "expected LO:HI GFLOPs per clip"),
    (["--sweep", "--threads", "0"], "--threads must be >= 1"),
    (["--config", "1x1x1", "--configs", "0"], "--configs and --gflops choose the configurations of --sweep"),
    (["--threads", "1"], "give --sweep, --config or --budget"),
])
def test_bad_sweep_selections_are_one_line_usage_errors(a3d_run, planes, tmp_path, capsys, flags, message):
    out, _ = a3d_run
    capsys.readouterr()
    assert run_main([*sweep_args(out, planes, tmp_path / "results"), *flags]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_a_gflops_range_keeps_the_configurations_within_it():
    costs = SimpleNamespace(gflops=lambda configuration: configuration.relative_cost)  # stands for fvcore's count
    configurations = grid(A3D_RANGES["[0.06,1]"])
    kept = within_gflops(configurations, costs, parse_gflops_range("0.1:0.5"))
    assert kept == [c for c in configurations if 0.1 <= c.relative_cost <= 0.5] and 0 < len(kept) < len(configurations)
    assert within_gflops(configurations, costs, parse_gflops_range(":0.5")) == [
        c for c in configurations if c.relative_cost <= 0.5]
    assert within_gflops(configurations, costs, parse_gflops_range("0.5:")) == [
        c for c in configurations if c.relative_cost >= 0.5]
    with pytest.raises(ValueError, match="no configuration within 2:inf GFLOPs per clip; these span"):
        within_gflops(configurations, costs, parse_gflops_range("2:"))


def test_a_budget_is_chosen_from_the_latest_complete_sweep(tmp_path):
    from benchmarks.methods.a3d.method import stored_choice

    checkpoint = tmp_path / "last.pt"
    checkpoint.write_bytes(b"an A3D checkpoint")
    store = Store(tmp_path / "results")

    def stored(date: str, configuration: Configuration, **complete) -> None:
        row = {"configuration": configuration.name, "width": configuration.width, "spatial": configuration.spatial,
               "temporal": configuration.temporal, "gflops": 0.01, "val_top1": 50.0}
        write_json(store.runs / "a3d" / f"a3d-sweep-{date}.json",
                   {"date": date, "checkpoint_sha256": file_sha256(checkpoint), "configurations": [row, row],
                    "budget_table": [row], **complete})

    stored("2026-01-01", Configuration(0.5, 0.57, 0.25))  # stored before sweeps said whether they were complete
    assert stored_choice(str(checkpoint), 0.02, store) == Configuration(0.5, 0.57, 0.25)
    stored("2026-01-02", Configuration(0.6, 0.57, 0.25), complete=True)
    stored("2026-01-03", Configuration(1, 0.57, 0.25), complete=False)
    assert stored_choice(str(checkpoint), 0.02, store) == Configuration(0.6, 0.57, 0.25)


def test_costs_follow_the_configurations_and_a3d_steps_cost_more(tmp_path):
    from benchmarks.methods.a3d.cost import configuration_costs, training_costs

    model = baselines.build("x3d_xs", num_classes=3, adaptive=True).eval()
    configurations = [Configuration(), Configuration(0.5, 0.57, 0.25), Configuration(0.5, 1.0, 1.0)]
    table = configuration_costs(model, configurations, frames=8, side=32, num_classes=3).set_index("configuration")
    assert table.loc["1x1x1", "ratio"] == 1.0
    assert table.loc["0.5x0.57x0.25", "gflops"] < table.loc["0.5x1x1", "gflops"] < table.loc["1x1x1", "gflops"]
    assert table.loc["0.5x0.57x0.25", "eq2"] == pytest.approx(0.25 * 0.57**2 * 0.25)
    assert table.loc["0.5x1x1", "params_m"] < table.loc["1x1x1", "params_m"]
    costs = training_costs("x3d_xs", frames=4, side=32, batch=2, steps=1, a3d_range=A3D_RANGES["[0.016,1]"])
    assert costs["a3d_step_s"] > 0 and costs["plain_step_s"] > 0
    assert costs["a3d_over_plain"] == pytest.approx(costs["a3d_step_s"] / costs["plain_step_s"])


def study_summary() -> dict:
    """An A3D study summary: two seeds of A3D budget tables and two baselines (no training)."""

    def baseline(name, seed, top1, gflops):
        return {"kind": "x3d", "seed": seed, "configuration": name, "top1": top1, "gflops": gflops,
                "train_time_s": 1.0, "run": "x.json"}

    table = [{"gflops": 0.01, "test_top1": 40.0, "val_top1": 41.0}, {"gflops": 0.03, "test_top1": 60.0,
                                                                        "val_top1": 62.0}]
    return {"experiment": "a3d-vs-x3d", "date": "2026-01-01T00:00:00+00:00", "command": "python -m benchmarks.run "
            "a3d-study", "git_commit": "abc", "hardware": "test CPU", "wall_time_s": 600.0,
            "runs": [{"kind": "a3d", "seed": seed, "budget_table": table, "sweep": f"/elsewhere/a3d-sweep-{seed}.json"}
                     for seed in (0, 1)]
            + [baseline("1x1x1", 0, 60.0, 0.037), baseline("1x1x1", 1, 70.0, 0.037),
               baseline("1x0.57x0.25", 0, 35.0, 0.005), baseline("1x0.57x0.25", 1, 37.0, 0.005)]}


def test_study_summarises_baselines_and_draws_every_seed(tmp_path):
    from benchmarks.methods.a3d import report as a3d_report
    from benchmarks.methods.a3d import study as a3d_study

    summary = study_summary()
    baselines = a3d_report.baseline_table(summary).set_index("configuration")
    assert baselines.loc["1x1x1", "top1"] == 65.0 and baselines.loc["1x1x1", "seeds"] == 2
    assert baselines.loc["1x0.57x0.25", "top1_std"] == pytest.approx(1.414, abs=1e-3)
    (figure,) = a3d_report.plot(summary, tmp_path / a3d_report.FIGURE)
    assert figure.stat().st_size > 10_000
    proxy = a3d_study.ProxyConfig()
    small = a3d_study.run_config(proxy, 0, "o", configuration=Configuration.parse("1x0.57x0.25"))
    assert (small.frames, small.res, small.method) == (2, 18, "standard")  # a baseline trains at its own input
    assert a3d_study.run_config(proxy, 0, "o", "a3d").method == "a3d"


def test_figures_redraw_the_newest_studies_and_the_proxy_figure_shows_a3d(tmp_path):
    from benchmarks.core.store import Store, write_json
    from tests.test_proxy import FIXTURE

    store = Store(tmp_path)
    write_sweeps(store.runs / "a3d")
    write_json(store.runs / "proxy" / "proxy-20260101T000000000000Z.json", FIXTURE)
    assert run_main(["figures", "--results", str(tmp_path)]) == 0
    without_a3d = (tmp_path / "proxy_flops.png").read_bytes()
    assert not (tmp_path / "a3d_airplanes.png").exists()
    older = {**study_summary(), "runs": study_summary()["runs"][2:]}  # baselines only
    write_json(store.runs / "a3d" / "a3d-study-20260101T000000000000Z.json", older)
    write_json(store.runs / "a3d" / "a3d-study-20260102T000000000000Z.json", study_summary())
    assert store.latest("a3d-study", "a3d")["runs"][0]["kind"] == "a3d"  # the newest by its time stamp
    assert store.latest("vared2-study", "vared2") is None
    assert run_main(["figures", "--results", str(tmp_path)]) == 0
    assert (tmp_path / "a3d_airplanes.png").stat().st_size > 10_000
    assert (tmp_path / "proxy_flops.png").read_bytes() != without_a3d
    assert not (tmp_path / "vared2_airplanes.md").exists()
    table = (tmp_path / "a3d_airplanes.md").read_text()
    assert "| 1x1x1 " in table and "65.0 ± 7.1 (2)" in table and "55.0 ± 7.1 (2)" in table
    assert "| 1x0.57x0.25 " in table and "not in the sweeps" in table


def write_sweeps(sweeps_dir) -> None:
    """Sweeps of the two A3D seeds of ``study_summary``: only 1x1x1 evaluated (50 and 60 % test top-1)."""
    from benchmarks.core.store import write_json

    for seed in (0, 1):
        write_json(sweeps_dir / f"a3d-sweep-{seed}.json",
                   {"configurations": [{"configuration": "1x1x1", "gflops": 0.037, "test_top1": 50.0 + 10 * seed}]})
