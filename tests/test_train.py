"""Training: specs with overrides, schedule, resumable sampling, a real run on mp4 files, and an
interrupted (SIGTERM) and resumed run ending with the weights of an uninterrupted one."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn.modules.lazy import LazyModuleMixin
from torch.utils.data import DistributedSampler

import baselines
from benchmarks.core.checkpoint import LAST, load_checkpoint
from benchmarks.core.paths import REPO_ROOT
from benchmarks.core.store import RUN_FIELDS, Store
from benchmarks.data import toydata
from benchmarks.data.videos import SKIP_REASONS, ResumeSampler
from benchmarks.engine.config import RunConfig
from benchmarks.engine.evaluate import EvalConfig, evaluate
from benchmarks.engine.recipe import Recipe
from benchmarks.engine.runs import (
    DEFAULT_TAPS,
    _materialize_lazy_modules,
    input_memory_format,
    resolve_spec,
    use_channels_last,
)
from benchmarks.engine.schedules import warmup_cosine
from benchmarks.engine.train import train
from benchmarks.run import main as run_main
from benchmarks.table1 import report
from benchmarks.table1.deploy import to_channels_last
from benchmarks.table1.specs import build_model

# Tiny stream MoViNet-A0 with its GRW head (row 1); dropout and stochastic depth on, so resuming
# must also reproduce the model's randomness.
TINY = dict(row=1, res=32, frames=8, num_workers=0, log_every=1)
TINY_RECIPE = dict(epochs=2, batch_size=2, lr=3e-4, warmup_epochs=0.5, ema_decay=0.9, stochastic_depth=0.1)


pytestmark = pytest.mark.usefixtures("one_thread")


def load_failures(dataset, split: str) -> int:
    """Videos of ``split`` that index but fail to decode when loaded (the toy data has them in train)."""
    return int(split == "train" and "load_failure" in dataset.broken_files)


def tiny_config(data, out, **changes) -> RunConfig:
    recipe = Recipe(**{**TINY_RECIPE, **changes.pop("recipe", {})})
    return RunConfig(data=str(data), out=str(out), recipe=recipe, **{**TINY, **changes})


# --------------------------------------------------------------------------- configuration


def test_overrides_are_recorded_as_deviations():
    spec, deviations = resolve_spec(RunConfig(row=1, data="d", out="o", res=86, frames=10, grw_weight=0.5))
    assert (spec.res, spec.frames, spec.eval_resize, spec.grw.weight) == (86, 10, 100, 0.5)  # resize keeps 200/172
    assert deviations == {"frames": {"spec": 50, "used": 10}, "res": {"spec": 172, "used": 86},
                          "eval_resize": {"spec": 200, "used": 100}, "grw_weight": {"spec": 1.0, "used": 0.5}}
    assert resolve_spec(RunConfig(row=1, data="d", out="o"))[1] == {}


def test_grw_switch_per_family():
    head_off, deviations = resolve_spec(RunConfig(row=1, data="d", out="o", grw=False))
    assert head_off.grw.attach == "head" and head_off.grw.weight == 0  # same model, no GRW loss
    assert deviations["grw_weight"] == {"spec": 1.0, "used": 0.0}
    taps, _ = resolve_spec(RunConfig(row=3, data="d", out="o", grw=True, grw_window=4))
    assert taps.grw.attach == "taps" and taps.grw.taps == DEFAULT_TAPS["mobilenet_v3_small"] and taps.grw.window == 4
    assert resolve_spec(RunConfig(row=3, data="d", out="o"))[0].grw is None
    x3d_taps, _ = resolve_spec(RunConfig(row=5, data="d", out="o", grw=True, frames=6, res=32))
    assert x3d_taps.grw.attach == "taps" and x3d_taps.grw.taps == ("res3", "res4", "res5")
    model = build_model(x3d_taps, num_classes=3).train()
    _, aux = model(torch.randn(2, 3, 6, 32, 32))
    assert aux["grw_taps"] > 0  # the stage outputs of X3D are tapped


@pytest.mark.parametrize("changes, message", [
    (dict(row=2, grw=True), "no default GRW taps"),
    (dict(row=3, grw_weight=1.0), "GRW off"),
    (dict(row=1, frames=4), "longer than the clip"),
    (dict(row=20), "not implemented"),
])
def test_bad_settings_raise(changes, message):
    with pytest.raises(ValueError, match=message):
        resolve_spec(RunConfig(data="d", out="o", **changes))


def test_cli_rejects_bad_settings_before_reading_data(tmp_path):
    result = subprocess.run([sys.executable, "-m", "benchmarks.run", "train", "--row", "2", "--grw",
                             "--data", str(tmp_path / "none"), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 2 and "no default GRW taps" in result.stderr
    assert not (tmp_path / "out").exists()


def test_cli_refuses_missing_data_before_launching(tmp_path):
    result = subprocess.run([sys.executable, "-m", "benchmarks.run", "train", "--row", "1", "--data", "/nonexistent",
                             "--out", str(tmp_path / "out")], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 2
    assert result.stderr.strip() == "train: error: --data /nonexistent: no such directory"
    assert not (tmp_path / "out").exists()


def test_taps_are_sized_without_touching_the_backbone():
    spec, _ = resolve_spec(RunConfig(row=3, data="d", out="o", grw=True, res=32, frames=5))
    torch.manual_seed(0)
    model = build_model(spec, num_classes=3)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    _materialize_lazy_modules(model, spec)
    assert not any(isinstance(m, LazyModuleMixin) and m.has_uninitialized_params() for m in model.modules())
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(torch.equal(norm.running_mean, torch.zeros_like(norm.running_mean)) for norm in model.taps.norms)
    assert model.training


def test_warmup_then_cosine():
    factors = [warmup_cosine(step, warmup_steps=4, total_steps=14, min_ratio=0.1) for step in range(15)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == pytest.approx(1.0) and factors[9] == pytest.approx(0.55) and factors[14] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors[4:], factors[5:]))


def test_resume_sampler_continues_the_same_epoch_order():
    sampler = DistributedSampler(range(10), num_replicas=1, rank=0, shuffle=True, seed=3)
    sampler.set_epoch(2)
    full = list(sampler)
    resumed = ResumeSampler(DistributedSampler(range(10), num_replicas=1, rank=0, shuffle=True, seed=3), start=4)
    resumed.set_epoch(2)
    assert list(resumed) == full[4:] and len(resumed) == 6
    resumed.set_epoch(3)
    assert list(resumed) != full[4:]


def test_resuming_with_other_settings_is_refused(tiny_kinetics, tmp_path):
    config = tiny_config(tiny_kinetics.root, tmp_path, recipe=dict(epochs=1), validate=False)
    train(config)
    changed = dataclasses.replace(config, resume=True, recipe=dataclasses.replace(config.recipe, lr=0.1))
    with pytest.raises(ValueError, match="lr"):
        train(changed)
    # A finished run resumes to a no-op, also when its checkpoint predates settings added since (defaults).
    state = load_checkpoint(Path(config.out) / LAST)
    for name in ("schedule", "schedule_options", "method_options"):
        state["config"].pop(name)
    for name in ("optimizer", "lr_policy", "lr_steps"):
        state["config"]["recipe"].pop(name)
    torch.save(state, Path(config.out) / LAST)
    assert train(dataclasses.replace(config, resume=True))["status"] == "completed"


# --------------------------------------------------------------------------- a real run, evaluated


@pytest.fixture(scope="module")
def trained(tiny_kinetics, tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("train_run")
    summary = train(tiny_config(tiny_kinetics.root, out))
    torch.set_num_threads(threads)
    return out, summary


def test_training_lowers_the_loss_and_writes_its_files(trained):
    out, summary = trained
    assert summary["status"] == "completed" and summary["exit_code"] == 0
    history = pd.read_csv(out / "metrics.csv")
    assert list(history["epoch"]) == [0, 1]
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert history["train_ce"].iloc[-1] < history["train_ce"].iloc[0]
    assert np.allclose(history["train_loss"], history["train_ce"] + history["train_grw"])
    assert {"val_top1", "val_top1_ema", "lr", "time_s", "skipped_load"} <= set(history.columns)
    assert json.loads((out / "classes.json").read_text()) == ["down", "left", "right"]
    config = json.loads((out / "config.json").read_text())
    assert config["deviations"]["frames"] == {"spec": 50, "used": 8} and config["input"]["size"] == 32
    assert list((out / "tb").glob("events.out.tfevents.*"))
    state = load_checkpoint(out / LAST)
    assert state["complete"] and state["progress"]["epoch"] == 2 and state["ema"] is not None


def test_skipped_videos_match_what_the_dataset_holds(trained, tiny_kinetics):
    _, summary = trained
    expected = {**tiny_kinetics.expected_skipped("train"), "load_error": load_failures(tiny_kinetics, "train")}
    assert summary["skipped"]["train"] == expected
    assert summary["skipped"]["val"] == {**dict.fromkeys(SKIP_REASONS, 0), "load_error": 0}
    last = summary["history"][-1]
    assert last["train_videos"] + last["skipped_load"] == tiny_kinetics.videos["train"]
    assert last["val_videos"] == tiny_kinetics.videos["val"]


def test_evaluated_run_is_stored_and_kept_out_of_table1(trained, tiny_kinetics, tmp_path):
    store = Store(tmp_path)
    out, _ = trained
    # The train split holds the broken files: the run must count them by reason.
    record = evaluate(EvalConfig(checkpoint=str(out / LAST), data=str(tiny_kinetics.root), row=1, split="train",
                                 chunk=3, compare_whole_clip=True, num_workers=0, index_cache=str(tmp_path)), store)
    stored = json.loads(Path(record["path"]).read_text())
    assert set(RUN_FIELDS) <= set(stored)
    assert stored["dataset"] == toydata.DATASET_NAME
    assert stored["videos_skipped"] == {**tiny_kinetics.expected_skipped("train"),
                                        "load_error": load_failures(tiny_kinetics, "train")}
    assert stored["videos_evaluated"] == tiny_kinetics.videos["train"] - load_failures(tiny_kinetics, "train")
    assert stored["mode"] == "streaming" and stored["weights"] == "ema"
    assert stored["stream_vs_whole_clip"]["max_abs_logit_diff"] < 1e-3
    assert stored["stream_vs_whole_clip"]["prediction_agreement"] == 1.0
    assert stored["gflops"] > 0 and stored["peak_memory_mb"] > 0
    per_class = pd.read_csv(stored["per_class_csv"])
    assert per_class["videos"].sum() == stored["videos_evaluated"]
    assert per_class["correct"].sum() == round(stored["top1"] * stored["videos_evaluated"] / 100)
    assert store.load_runs()[0]["checkpoint_sha256"] == stored["checkpoint_sha256"]

    # A run on other data is never a Table 1 (Kinetics-600) result: not in the table, not in the figure.
    assert run_main(["figures", "--results", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "table1.csv").set_index("row")
    assert pd.isna(table.loc[1, "reproduced_top1"])
    assert stored["dataset"] not in (tmp_path / "table1.md").read_text()
    points = report.plot_points(report.build_table(store)).set_index("row")
    assert points.loc[1, "top1_source"] == "published"


# --------------------------------------------------------------------------- preemption and resume


def _cli_args(config: RunConfig) -> list[str]:
    r = config.recipe
    return ["--row", str(config.row), "--data", config.data, "--out", config.out, "--res", str(config.res),
            "--frames", str(config.frames), "--num-workers", "0", "--log-every", "1", "--no-val",
            "--epochs", str(r.epochs), "--batch-size", str(r.batch_size), "--accumulate", str(r.accumulate),
            "--lr", str(r.lr),
            "--warmup-epochs", str(r.warmup_epochs), "--ema-decay", str(r.ema_decay),
            "--stochastic-depth", str(r.stochastic_depth)]


def test_sigterm_then_resume_ends_with_the_uninterrupted_weights(tiny_kinetics, tmp_path, same_weights):
    # Two micro-batches per step: resuming must also skip the right micro-batches.
    whole = tiny_config(tiny_kinetics.root, tmp_path / "whole", validate=False, recipe=dict(accumulate=2))
    train(whole)

    interrupted = dataclasses.replace(whole, out=str(tmp_path / "interrupted"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(tmp_path / "stderr.txt", "w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "benchmarks.run", "train", *_cli_args(interrupted)],
                                   stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=REPO_ROOT, env=env)
        for line in process.stdout:  # wait until one optimizer step is done
            if line.startswith("epoch 0 step 1/"):
                process.send_signal(signal.SIGTERM)
                break
        process.stdout.read()
        assert process.wait(timeout=120) == 128 + signal.SIGTERM, (tmp_path / "stderr.txt").read_text()[-2000:]

    saved = load_checkpoint(Path(interrupted.out) / LAST)
    assert not saved["complete"] and saved["progress"]["epoch"] == 0 and saved["progress"]["step"] >= 1
    summary = json.loads((Path(interrupted.out) / "summary.json").read_text())
    assert summary["status"] == "preempted" and summary["signal"] == "SIGTERM"

    resumed = train(dataclasses.replace(interrupted, resume=True))
    assert resumed["status"] == "completed"
    expected, final = load_checkpoint(Path(whole.out) / LAST), load_checkpoint(Path(interrupted.out) / LAST)
    same_weights(expected, final)
    without_time = [[{k: v for k, v in row.items() if k != "time_s"} for row in state["progress"]["history"]]
                    for state in (expected, final)]
    assert without_time[0] == without_time[1]  # the interrupted epoch reports the whole epoch


def test_channels_last_is_for_convolutions_on_cpu_and_keeps_the_outputs():
    x3d = baselines.build("x3d_xs", num_classes=3)
    framewise = baselines.build("mobilenet_v3_small_tsm", num_classes=3)
    assert use_channels_last(x3d, "cpu") and not use_channels_last(x3d, "cuda")
    assert use_channels_last(x3d, "cuda", "on") and not use_channels_last(x3d, "cpu", "off")
    assert not use_channels_last(torch.nn.Linear(3, 3), "cpu", "on")  # no convolutions: nothing to convert
    assert input_memory_format(x3d) == torch.channels_last_3d
    assert input_memory_format(framewise) == torch.contiguous_format  # its 2D weights set the layout
    with pytest.raises(ValueError, match="channels_last"):
        RunConfig(row=5, data="d", out="o", channels_last="yes")

    x3d.eval()
    clips = torch.randn(2, 3, 4, 32, 32)
    expected = x3d(clips)
    to_channels_last(x3d)
    convs = [m for m in x3d.modules() if isinstance(m, torch.nn.Conv3d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last_3d) for m in convs)
    assert not all(m.weight.is_contiguous() for m in convs)
    actual = x3d(clips.contiguous(memory_format=torch.channels_last_3d))
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)

    framewise.eval()
    expected = framewise(clips)
    to_channels_last(framewise)
    convs = [m for m in framewise.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    torch.testing.assert_close(framewise(clips), expected, rtol=1e-4, atol=1e-5)


def test_a_loss_term_outweighing_the_cross_entropy_is_remarked_once():
    from benchmarks.engine.train import outweighing_terms

    row = {"epoch": 0, "train_loss": 53.4, "train_ce": 1.328, "train_grw": 52.03, "train_videos": 30, "lr": 1e-3}
    [note] = outweighing_terms(row)
    assert "grw term (52.03) is 39x the cross-entropy (1.328)" in note and "--grw-weight" in note
    assert outweighing_terms({**row, "train_grw": 5.0}) == []  # under 10x: nothing to say
    assert outweighing_terms({"epoch": 0, "train_loss": 1.0}) == []  # no cross-entropy term
