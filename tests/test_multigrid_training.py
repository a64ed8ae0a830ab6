"""Multigrid in the training loop (``train --schedule multigrid``): the batch sampler and the dataset
cut every step at its shape, every process agrees on the steps, the lr follows PySlowFast's policy at
every step, every row family trains, and a run stopped in the middle of a long and a short cycle
resumes to the weights of an uninterrupted one."""

from __future__ import annotations

import dataclasses
import json
import signal
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

import benchmarks.engine.train as training
from benchmarks.core.checkpoint import LAST, load_checkpoint
from benchmarks.data.videos import Sampling, VideoDataset, VideoIndex
from benchmarks.engine.config import RunConfig
from benchmarks.engine.method import logits_of
from benchmarks.engine.recipe import Recipe
from benchmarks.engine.runs import build_schedule, load_trained, resolve_spec
from benchmarks.engine.schedules import StepPolicy, lr_factor
from benchmarks.engine.train import train
from benchmarks.methods.multigrid.schedule import MultigridConfig, MultigridSchedule, sub_batch_bn_state
from benchmarks.methods.multigrid.training import StepBatchSampler

pytestmark = pytest.mark.usefixtures("one_thread")

VIDEOS = 64  # training videos of the `planes` fixture (conftest); default shape 8 x 32 px, 2 clips per step


def config(data: Path, out: Path, row: int = 5, **changes) -> RunConfig:
    recipe = Recipe(**{**dict(epochs=2, batch_size=2, lr=0.02, optimizer="sgd", lr_policy="steps", lr_steps=(1,),
                              warmup_epochs=0.5, ema_decay=0.9, weight_decay=1e-4), **changes.pop("recipe", {})})
    return RunConfig(row=row, data=str(data), out=str(out), recipe=recipe, frames=8, res=32, fps=8,
                     schedule="multigrid", validate=False, num_workers=0, log_every=1, **changes)


def schedule(videos: int = VIDEOS, **multigrid) -> MultigridSchedule:
    return MultigridSchedule(MultigridConfig(**multigrid), StepPolicy.decaying((1,), 2), batch_size=2, frames=8,
                             side=32, videos_per_process=videos)


# --------------------------------------------------------------------------- data


def test_batch_sampler_gives_every_step_its_shape_and_resumes_mid_epoch():
    plan = schedule()
    for epoch in range(plan.total_epochs):
        sampler = DistributedSampler(range(VIDEOS), num_replicas=1, rank=0, shuffle=True, seed=4)
        batches = list(StepBatchSampler(sampler, plan, epoch))
        assert len(batches) == plan.steps_in_epoch(epoch)
        for step, batch in enumerate(batches):
            shape = plan.shape(epoch, step)
            assert len(batch) == shape.batch_size
            assert {(s.frames, s.side) for _, s in batch} == {(shape.frames, shape.side)}
        order = [i for batch in batches for i, _ in batch]
        sampler.set_epoch(epoch)
        assert order == list(sampler)[:len(order)]  # the epoch's order, each clip once
        resumed = list(StepBatchSampler(DistributedSampler(range(VIDEOS), num_replicas=1, rank=0, shuffle=True,
                                                           seed=4), plan, epoch, start=2))
        assert resumed == batches[2:]


def test_processes_agree_on_every_step_and_share_the_data():
    plan = schedule(videos=VIDEOS // 2)  # what each of two processes draws
    per_rank = [list(StepBatchSampler(DistributedSampler(range(VIDEOS), num_replicas=2, rank=rank, shuffle=True,
                                                         seed=0), plan, epoch=1)) for rank in (0, 1)]
    assert [[s for _, s in b] for b in per_rank[0]] == [[s for _, s in b] for b in per_rank[1]]
    indices = [{i for b in batches for i, _ in b} for batches in per_rank]
    assert not indices[0] & indices[1]


def test_dataset_cuts_a_clip_at_the_step_shape(planes):
    index = VideoIndex.build(planes, "train", cache_dir=planes / "index-cache")
    base = Sampling(frames=8, stride=1, size=32)
    dataset = VideoDataset(index, base, train=True, seed=0)
    plan = schedule()
    small = plan.sampling_for(plan.shape(0, 0))  # 2 frames at 16 px
    video, label = dataset[(5, small)]
    assert video.shape == (3, 2, 16, 16) and label == index.entries[5].label
    strides = {small.cut(base, np.random.default_rng(seed)).stride for seed in range(40)}
    assert strides == {1, 2, 3, 4}  # PySlowFast's random rate in [rate, rate * T0 // T]
    assert dataset[5][0].shape == (3, 8, 32, 32)  # a plain index keeps the default shape


# --------------------------------------------------------------------------- learning rate


def test_every_step_has_the_stage_decay_times_the_batch_factor(planes, tmp_path):
    run = config(planes, tmp_path, recipe=dict(warmup_epochs=0, epochs=8, lr_steps=(4, 6)))  # 3 stages
    spec, _ = resolve_spec(run)
    plan = build_schedule(run, spec, VIDEOS)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=run.recipe.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda g: lr_factor(run.recipe, plan, g))
    finetune = plan.phases[-1]
    halfway = (plan.phases[-2].end_epoch + finetune.end_epoch) // 2
    seen = set()  # (stage, batch factor)
    for g in range(plan.total_steps):
        epoch, step = plan.locate(g)
        phase = plan.phase(epoch)
        position = epoch + step / plan.steps_in_epoch(epoch)
        # PySlowFast: gamma^stage x long-cycle batch factor; the first half of the fine-tuning phase keeps
        # the lr of the last long-cycle phase (stage - 1)
        stage = phase.stage - 1 if phase.finetune and position < halfway else phase.stage
        expected = run.recipe.lr * 0.1**stage * phase.batch_factor
        assert scheduler.get_last_lr()[0] == pytest.approx(expected), (epoch, step)
        seen.add((stage, phase.batch_factor))
        optimizer.step()
        scheduler.step()
    assert {factor for _, factor in seen} == {8, 4, 2, 1} and {stage for stage, _ in seen} == {0, 1, 2}


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("row, frames, cycles", [
    (1, 20, "long,short"),  # MoViNet-A0 stream + GRW head: the long cycle keeps 5 frames for the window of 5
    (2, 8, "long,short"),  # MoViNet-A0 base
    (4, 8, "long"),  # MobileNetV3-S + TSM, frame-wise BatchNorm2d
    (3, 8, "short"),
])
def test_every_family_trains_with_multigrid_and_evaluates_as_a_plain_model(planes, tmp_path, row, frames, cycles):
    run = dataclasses.replace(config(planes, tmp_path, row=row, recipe=dict(epochs=1, lr_policy="cosine", lr_steps=(),
                                                                             optimizer="adamw", lr=1e-3)),
                              frames=frames, schedule_options={"cycles": cycles})
    summary = train(run)
    # 1 epoch x the epoch factor 1.5: the long cycle rounds the phases' sum (2), the short cycle alone
    # truncates it (1), as PySlowFast
    epochs = 1 if cycles == "short" else 2
    assert summary["status"] == "completed" and summary["epochs_completed"] == epochs
    record = json.loads((tmp_path / "config.json").read_text())["schedule"]
    assert record["name"] == "multigrid" and record["cycles"] == cycles and record["total_epochs"] == epochs
    assert any("AdamW" in d or "adamw" in d for d in record["deviations_from_pyslowfast"])
    trained = load_trained(tmp_path / LAST, "raw")  # a plain model: sub-batch BN saves BatchNorm's layout
    assert not sub_batch_bn_state(trained.model)
    clip = torch.randn(1, 3, frames, 32, 32)
    assert torch.isfinite(logits_of(trained.model(clip))).all()


def test_a_run_stopped_mid_cycle_resumes_to_the_uninterrupted_weights(planes, tmp_path, monkeypatch, same_weights):
    whole = config(planes, tmp_path / "whole")
    train(whole)

    # Stop at epoch 0, step 2: inside the first long-cycle phase (16-clip batches in 2 BatchNorm groups) and
    # at the third position of its short cycle.
    log_step = training._log_step

    def stop_there(run, progress, terms):
        log_step(run, progress, terms)
        if (progress.epoch, progress.step) == (0, 2):
            signal.raise_signal(signal.SIGUSR1)

    monkeypatch.setattr(training, "_log_step", stop_there)
    interrupted = dataclasses.replace(whole, out=str(tmp_path / "interrupted"))
    stopped = train(interrupted)
    assert (stopped["status"], stopped["epochs_completed"], stopped["step_in_epoch"]) == ("preempted", 0, 2)
    saved = load_checkpoint(Path(interrupted.out) / LAST)
    assert {state["num_splits"] for state in saved["schedule_state"].values()} == {2}
    monkeypatch.setattr(training, "_log_step", log_step)

    resumed = train(dataclasses.replace(interrupted, resume=True))
    assert resumed["status"] == "completed"
    expected, final = load_checkpoint(Path(whole.out) / LAST), load_checkpoint(Path(interrupted.out) / LAST)
    same_weights(expected, final)
    for name, state in expected["schedule_state"].items():
        assert torch.equal(state["mean"], final["schedule_state"][name]["mean"]), name
    assert expected["progress"]["global_step"] == final["progress"]["global_step"] == schedule().total_steps


@pytest.mark.parametrize("changes, message", [
    (dict(recipe=Recipe(accumulate=2)), "accumulate must be 1"),
    (dict(row=1, frames=8), "shorter than the GRW window"),
    (dict(schedule_options={"cycles": "medium"}), "--multigrid must be one of"),
])
def test_bad_multigrid_settings_raise(changes, message):
    with pytest.raises(ValueError, match=message):
        resolve_spec(RunConfig(**{**dict(row=5, data="d", out="o", schedule="multigrid"), **changes}))


@pytest.mark.parametrize("recipe, message", [
    (dict(lr_policy="steps"), "needs lr_steps"),
    (dict(lr_steps=(3,)), "cosine"),
    (dict(lr_policy="steps", lr_steps=(5, 3)), "increase"),
    (dict(optimizer="lamb"), "optimizer"),
])
def test_bad_recipes_raise(recipe, message):
    with pytest.raises(ValueError, match=message):
        Recipe(**recipe)


DDP_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import torch
    from benchmarks.engine.recipe import Recipe
    from benchmarks.engine.config import RunConfig
    from benchmarks.engine.train import train

    torch.set_num_threads(1)
    data, out, reports = sys.argv[1:]
    recipe = Recipe(epochs=1, batch_size=1, lr=0.01, optimizer="sgd", lr_policy="steps", lr_steps=(1,), ema_decay=0.9)
    summary = train(RunConfig(row=5, data=data, out=out, recipe=recipe, res=32, frames=8, num_workers=0, device="cpu",
                              schedule="multigrid", validate=False))
    with open(os.path.join(reports, f"rank{os.environ['RANK']}.json"), "w") as f:
        json.dump(summary, f)
""")


def test_two_processes_take_the_same_multigrid_steps(planes, tmp_path, torchrun):
    rank0, rank1 = torchrun(DDP_SCRIPT, planes, tmp_path / "run")
    assert rank0["world_size"] == 2 and rank0["history"] == rank1["history"]
    plan = MultigridSchedule(MultigridConfig(), StepPolicy.decaying((1,), 1), batch_size=1, frames=8, side=32,
                             videos_per_process=VIDEOS // 2)
    assert rank0["global_step"] == rank1["global_step"] == plan.total_steps
    # each process trained its own half of every epoch's clips, at the schedule's batch sizes
    for epoch in rank0["history"]:
        steps = plan.steps_in_epoch(epoch["epoch"])
        clips = sum(plan.shape(epoch["epoch"], s).batch_size for s in range(steps))
        assert epoch["train_videos"] == 2 * clips
