"""The training loop: ``train(config)`` trains one run (``benchmarks.engine.runs.RunConfig``).

What the run trains (model, input, GRW, deviations from the row) is resolved by ``benchmarks.engine.runs``;
the loss of a micro-batch by the run's method (``benchmarks.engine.method``: standard, A3D, VA-RED2); the
shape, batch and learning rate of every step, and the steps of every epoch, by the run's schedule
(``benchmarks.engine.schedules``: constant, or another registered schedule such as multigrid, which
samples its own batches and changes the model's BatchNorm through the schedule's hooks). The command
line is ``benchmarks.commands.train``.

Outputs in ``out/``: ``config.json``, ``classes.json``, ``init.json`` (with ``config.init``: what the
initial weights filled and what stays random), ``metrics.csv`` (one row per epoch: train
loss, CE and GRW terms, val top-1 of the raw and the EMA weights, lr, time, skipped videos),
``tb/`` (TensorBoard), ``summary.json``, and checkpoints ``last.pt`` / ``best.pt`` (see
``benchmarks.core.checkpoint``).

Preemption and resume. SIGTERM or SIGUSR1 (what SLURM sends before a time limit or preemption), or
SIGINT (Ctrl-C, exit status 130) only
set a flag; at the next optimizer-step boundary every process agrees to stop, ``last.pt`` is written
with the epoch and the step reached, and the run exits with status ``128 + signal`` (143 for SIGTERM,
138 for SIGUSR1), as a process killed by that signal would: an interrupted run never looks finished
to SLURM (``afterok`` dependencies) and a requeue script resumes it. ``resume=True`` (``--resume``)
continues from ``out/last.pt`` (a fresh start if there is none; a no-op for a finished run), exactly:
data order is a function of (seed, epoch), crops of (seed, epoch, video), and the model's own
randomness (dropout, stochastic depth) is reseeded from (seed, epoch, step, rank) before every
step, so with a fixed seed an interrupted and resumed run ends with the weights of an uninterrupted
one, without carrying RNG states around: bit for bit in one process and in two; with more, to the
last bits of float32 (measured: four processes, stopped at step 4 of 5, within 3e-8), as the
gradient all-reduce then adds each gradient's terms in an order that can differ in a resumed run's
first step (likely DDP's bucket layout, which it builds anew). A run killed outright (SIGKILL, a lost
node), even while it writes a checkpoint, keeps its previous ``last.pt`` (checkpoints are written
atomically) and resumes from it; the run removes the partial checkpoint files such a kill leaves when it
starts.

Multi-GPU / multi-node: launch with ``torchrun``, or ``--launch slurm`` (one process per GPU or
``--tasks-per-node`` on each of ``--nodes``, ``benchmarks.engine.tasks``); the data is sharded with a
DistributedSampler, metrics are summed over processes, and only rank 0 writes files. DDP runs
without ``find_unused_parameters``: every parameter of a run's model takes part in its loss (GRW
models drop the backbone's classifier).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, DistributedSampler
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from benchmarks.core.checkpoint import BEST, LAST, file_sha256, latest_checkpoint, load_checkpoint, save_checkpoint
from benchmarks.core.store import remove_temporaries, write_csv, write_json
from benchmarks.data.videos import VideoDataset, VideoIndex, make_loader, save_classes, set_epoch
from benchmarks.engine import distributed
from benchmarks.engine.config import RESUMABLE_CHANGES, RunConfig
from benchmarks.engine.method import Method
from benchmarks.engine.public_weights import InitReport, initial_state, load_initial
from benchmarks.engine.recipe import Recipe
from benchmarks.engine.runs import (
    annotation_file,
    build_run_model,
    build_schedule,
    eval_sampling,
    input_memory_format,
    resolve_spec,
    run_record,
    schedule_record,
    train_sampling,
    use_channels_last,
)
from benchmarks.engine.schedules import Schedule, lr_factor
from benchmarks.table1.deploy import to_channels_last
from benchmarks.table1.specs import RowSpec

PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)  # SIGINT: Ctrl-C, exit status 130


def build_index(config: RunConfig, split: str, env: distributed.Distributed,
                classes: tuple[str, ...] | None = None) -> VideoIndex:
    """Index a split, rank 0 first: the other processes then read its cache instead of every file."""
    def build() -> VideoIndex:
        return VideoIndex.build(config.data, split, annotations=annotation_file(config.data, config.annotations, split),
                                classes=classes, cache_dir=Path(config.out) / "index",
                                workers=max(1, config.num_workers))

    index = build() if env.is_main else None
    distributed.barrier(env)
    return index if index is not None else build()


# --------------------------------------------------------------------------- schedule, state


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weights only: biases and normalisation parameters (1-D) are not decayed."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]


@dataclass
class Progress:
    """Where training stands; JSON-friendly, saved in every checkpoint.

    ``step`` optimizer steps of ``epoch`` are done; ``running`` holds that epoch's metric sums so
    far, so an epoch interrupted and resumed reports what an uninterrupted one would.
    """

    epoch: int = 0
    step: int = 0
    global_step: int = 0
    best_top1: float | None = None
    best_epoch: int | None = None
    history: list[dict] = field(default_factory=list)
    running: dict[str, float] = field(default_factory=dict)


def _seed_step(seed: int, epoch: int, step: int, rank: int) -> None:
    """The model's randomness (dropout, stochastic depth) for one step, from its coordinates only."""
    torch.manual_seed(int(np.random.SeedSequence([seed, epoch, step, rank]).generate_state(1)[0]))


class PreemptionFlag(contextlib.AbstractContextManager):
    """While active, SIGTERM/SIGUSR1/SIGINT only record the signal; training stops at a step boundary
    (a second Ctrl-C interrupts at once).

    Handlers can only be installed from the main thread; elsewhere this never fires.
    """

    def __init__(self, signals: tuple[signal.Signals, ...] = PREEMPTION_SIGNALS) -> None:
        self.signals = signals
        self.signum = 0
        self._previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> PreemptionFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.signals}
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and self.signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C does not wait for the step to end
        self.signum = signum


# --------------------------------------------------------------------------- the run


@dataclass
class _Run:
    """Everything one training run works with."""

    config: RunConfig
    env: distributed.Distributed
    spec: RowSpec
    deviations: dict[str, dict]
    method: Method
    schedule: Schedule
    model: nn.Module  # DDP-wrapped under torchrun
    raw_model: nn.Module
    ema: AveragedModel | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    train_data: VideoDataset
    val_data: VideoDataset | None
    writer: SummaryWriter | None
    out: Path
    memory_format: torch.memory_format = torch.contiguous_format  # of the input clips (use_channels_last)

    def inputs(self, videos: torch.Tensor) -> torch.Tensor:
        """A batch of clips on the run's device, in the memory layout its convolutions run fastest in."""
        return videos.to(self.env.device, non_blocking=True).contiguous(memory_format=self.memory_format)

    @property
    def recipe(self) -> Recipe:
        return self.config.recipe

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.env.device.startswith("cuda") or self.recipe.amp == "none":
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=torch.bfloat16 if self.recipe.amp == "bf16" else torch.float16)


def train(config: RunConfig) -> dict:
    """Train (or, with ``config.resume``, continue training) one row; returns the run summary.

    The summary (also ``out/summary.json``) has ``status`` ("completed" or "preempted"),
    ``exit_code`` (0, or 128 + signal), the metrics of every epoch, skipped videos and checkpoint paths.
    Every process returns the same metrics (summed over processes).
    """
    env = distributed.setup(config.device)
    try:
        with PreemptionFlag() as flag:
            run, progress = _prepare(config, env)
            try:
                return _fit(run, progress, flag)
            finally:
                if run.writer is not None:
                    run.writer.close()
    finally:
        distributed.teardown(env)


def _prepare(config: RunConfig, env: distributed.Distributed) -> tuple[_Run, Progress]:
    """Data, model, optimisation state (fresh or from ``out/last.pt``), and the run's files."""
    recipe, out = config.recipe, Path(config.out)
    spec, deviations = resolve_spec(config)
    resume_from = latest_checkpoint(out) if config.resume else None
    checkpoint = load_checkpoint(resume_from) if resume_from else None
    if checkpoint is not None:
        _check_same_run(checkpoint["config"], config, out)

    train_index = build_index(config, "train", env, classes=checkpoint["classes"] if checkpoint else None)
    classes = train_index.classes
    val_index = None
    if config.validate and (Path(config.data) / "val").is_dir():
        val_index = build_index(config, "val", env, classes=classes)

    torch.manual_seed(recipe.seed)
    method = config.training_method()
    raw_model = build_run_model(spec, len(classes), recipe, method).to(env.device)
    channels_last = use_channels_last(raw_model, env.device, config.channels_last)
    if channels_last:
        to_channels_last(raw_model)
    init = _initialise(raw_model, config) if checkpoint is None and config.init else None
    schedule = build_schedule(config, spec, math.ceil(len(train_index) / env.world_size))
    schedule.prepare_model(raw_model)
    optimizer, scheduler, scaler, ema = _optimization(raw_model, recipe, env.device, schedule)
    progress = Progress()
    if checkpoint is not None:
        raw_model.load_state_dict(checkpoint["model"])
        for part, state in ((ema, "ema"), (optimizer, "optimizer"), (scheduler, "scheduler"), (scaler, "scaler")):
            if part is not None:
                part.load_state_dict(checkpoint[state])
        schedule.load_model_state(raw_model, checkpoint.get("schedule_state", checkpoint.get("sub_batch_bn")))
        progress = Progress(**checkpoint["progress"])
        if not env.is_main:  # the saved partial-epoch sums are over all processes: count them once
            progress.running = dict.fromkeys(progress.running, 0.0)

    model = raw_model
    if env.enabled:
        device_ids = [env.local_rank] if env.device.startswith("cuda") else None
        model = DistributedDataParallel(raw_model, device_ids=device_ids)

    train_data = VideoDataset(train_index, train_sampling(spec, raw_model, recipe.crop_min_area), train=True,
                              seed=recipe.seed, cache=config.cache_videos)
    val_data = VideoDataset(val_index, eval_sampling(spec, raw_model, views=False), train=False) if val_index else None
    writer = None
    if env.is_main:
        # A checkpoint write killed (SIGKILL after the grace period, a lost node) left its partial file; only
        # this process writes checkpoints here.
        removed = [path for name in (LAST, BEST) for path in remove_temporaries(out / name)]
        if removed:
            print(f"removed {len(removed)} partial checkpoint file(s) of a killed write in {out}", file=sys.stderr)
        save_classes(out / "classes.json", classes)
        write_json(out / "config.json", {
            **run_record(config, spec, deviations, classes), "name": spec.name, "model": spec.model,
            "input": dataclasses.asdict(train_data.sampling), "classes": len(classes),
            "world_size": env.world_size, "distributed_backend": env.backend,
            "global_batch": recipe.batch_size * recipe.accumulate * env.world_size,
            "steps_per_epoch": schedule.steps_in_epoch(0), "schedule": schedule_record(config, schedule),
            "data": {"train": train_index.summary(), "val": val_index.summary() if val_index else None},
            **({"init_report": {"loaded": len(init.loaded), "not_initialised": len(init.not_initialised),
                                "shape_differs": len(init.shape_differs), "unused": len(init.unused)}} if init else {}),
        })
        if init is not None:
            write_json(out / "init.json", init.to_dict())
            print("\n".join(init.lines()), file=sys.stderr)
        writer = SummaryWriter(str(out / "tb"), purge_step=progress.global_step if checkpoint else None)
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    run = _Run(config, env, spec, deviations, method, schedule, model, raw_model, ema, optimizer, scheduler, scaler,
               criterion, train_data, val_data, writer, out,
               input_memory_format(raw_model) if channels_last else torch.contiguous_format)
    return run, progress


def _initialise(model: nn.Module, config: RunConfig) -> InitReport:
    """Load ``config.init``'s weights into a fresh model (before the EMA copies it)."""
    state, path = initial_state(config.init)
    sha256 = file_sha256(path)
    if config.init_sha256 and sha256 != config.init_sha256:
        raise ValueError(f"--init {config.init}: {path} changed since the run was configured "
                         f"(sha256 {sha256}, recorded {config.init_sha256})")
    return load_initial(model, state, config.init, sha256)


def _optimization(model: nn.Module, recipe: Recipe, device: str, schedule: Schedule):
    """AdamW or SGD, the per-step lr of the recipe's policy over the schedule's steps
    (``benchmarks.engine.schedules.lr_factor``), the fp16 GradScaler (disabled otherwise), the EMA."""
    groups = param_groups(model, recipe.weight_decay)
    if recipe.optimizer == "sgd":
        optimizer = torch.optim.SGD(groups, lr=recipe.lr, momentum=0.9, nesterov=True)
    else:
        optimizer = torch.optim.AdamW(groups, lr=recipe.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(lr_factor, recipe, schedule))
    use_cuda = device.startswith("cuda")
    if use_cuda and recipe.amp == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError("this GPU does not support bf16; use amp='fp16' (with a GradScaler) or 'none'")
    scaler = torch.amp.GradScaler("cuda", enabled=use_cuda and recipe.amp == "fp16")
    ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema_decay), use_buffers=True)
           if recipe.ema_decay > 0 else None)
    return optimizer, scheduler, scaler, ema


def _check_same_run(saved: dict, config: RunConfig, out: Path) -> None:
    """Refuse to resume with other settings; a checkpoint from before a setting existed has its default."""
    saved = RunConfig.from_dict(saved).to_dict()
    current = dataclasses.asdict(config)
    changed = sorted(name for name in current if name not in RESUMABLE_CHANGES and saved.get(name) != current[name])
    if changed:
        details = "; ".join(f"{name}: {saved.get(name)!r} -> {current[name]!r}" for name in changed)
        raise ValueError(f"cannot resume {out / LAST}: the run was started with different settings ({details})")


def _fit(run: _Run, progress: Progress, flag: PreemptionFlag) -> dict:
    while progress.epoch < run.schedule.total_epochs:
        signum = train_one_epoch(run, progress, flag)
        if signum:
            # Partial-epoch sums over all processes, so the resumed epoch reports the whole epoch.
            time_s = progress.running.pop("time_s")
            progress.running = {**distributed.all_reduce(progress.running, run.env), "time_s": time_s}
            if run.env.is_main:
                save_checkpoint(run.out / LAST, _checkpoint_state(run, progress, complete=False))
                tqdm.write(f"stopped by signal {signal.Signals(signum).name} at epoch {progress.epoch} "
                           f"step {progress.step}; saved {run.out / LAST}: resume with --resume", file=sys.stderr)
            distributed.barrier(run.env)
            return _summary(run, progress, status="preempted", signum=signum)
        _end_epoch(run, progress)
    return _summary(run, progress, status="completed")


def train_one_epoch(run: _Run, progress: Progress, flag: PreemptionFlag) -> int:
    """Train ``progress.epoch`` from ``progress.step`` on; returns the stop signal (0 if none)."""
    recipe, env, epoch = run.recipe, run.env, progress.epoch
    first = progress.step * recipe.accumulate
    loader, micro_batches = _epoch_loader(run, epoch, first)
    set_epoch(loader, epoch)
    sums = progress.running or dict.fromkeys((*run.method.terms, "samples", "load_errors", "time_s"), 0.0)
    run.model.train()
    bar = tqdm(total=run.schedule.steps_in_epoch(epoch), initial=progress.step, desc=f"epoch {epoch}", unit="step",
               disable=not env.is_main, file=sys.stderr)
    started, batches = time.perf_counter(), iter(loader)
    # Micro-batch i belongs to optimizer step i // accumulate, whose micro-batches start at `group`;
    # the epoch's last step may have fewer (`group_size`), and its loss is scaled accordingly.
    for i in range(first, micro_batches):
        group = i // recipe.accumulate * recipe.accumulate
        group_size = min(recipe.accumulate, micro_batches - group)
        if i == group:
            _seed_step(recipe.seed, epoch, progress.step, env.rank)
            run.schedule.before_step([run.raw_model, *([run.ema.module] if run.ema is not None else [])],
                                     epoch, progress.step)
            had_backward = False
        videos, labels, load_errors = next(batches)
        sums["load_errors"] += load_errors
        # DDP needs every process in every backward: a batch empty on any process is skipped by all.
        usable = distributed.all_reduce({"n": len(labels)}, env, op="min")["n"] > 0
        last_in_group = i == group + group_size - 1
        if usable:
            no_sync = env.enabled and not last_in_group
            with run.model.no_sync() if no_sync else contextlib.nullcontext():
                terms = _train_step(run, run.inputs(videos), labels.to(env.device), group_size)
            had_backward = True
            for name, value in terms.items():
                sums[name] += value * len(labels)
            sums["samples"] += len(labels)
        elif env.enabled and last_in_group and had_backward:
            _all_reduce_gradients(run.raw_model, env)  # the skipped backward would have synced them
        if last_in_group:
            _optimizer_step(run, had_backward)
            progress.step += 1
            progress.global_step += 1
            bar.update()
            if progress.step % run.config.log_every == 0 and env.is_main:
                _log_step(run, progress, terms if usable else None)
            signum = int(distributed.all_reduce({"signal": flag.signum}, env, op="max")["signal"])
            if signum:
                break
    else:
        signum = 0
    bar.close()
    sums["time_s"] += time.perf_counter() - started
    progress.running = sums
    return signum


def _epoch_loader(run: _Run, epoch: int, first: int) -> tuple[DataLoader, int]:
    """The epoch's training micro-batches from micro-batch ``first`` on, and how many the epoch has:
    this process's shard in the (seed, epoch) order, batched as the schedule says."""
    sampler = DistributedSampler(run.train_data, num_replicas=run.env.world_size, rank=run.env.rank, shuffle=True,
                                 seed=run.recipe.seed)
    return run.schedule.loader(run.train_data, sampler, epoch, first, run.recipe.batch_size, run.config.num_workers)


def _train_step(run: _Run, videos: torch.Tensor, labels: torch.Tensor, group_size: int) -> dict[str, float]:
    """Forward and backward of one micro-batch (the method's loss); returns its mean loss terms."""
    with run.autocast():
        loss, terms = run.method.loss(run.model, videos, labels, run.criterion)
    run.scaler.scale(loss / group_size).backward()
    return terms


def _all_reduce_gradients(model: nn.Module, env: distributed.Distributed) -> None:
    for p in model.parameters():
        if p.grad is not None:
            torch.distributed.all_reduce(p.grad)
            p.grad /= env.world_size


def _optimizer_step(run: _Run, had_backward: bool) -> None:
    if had_backward:  # a GradScaler cannot step without gradients
        run.scaler.step(run.optimizer)
        run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    run.scheduler.step()
    if run.ema is not None:
        run.ema.update_parameters(run.raw_model)


def _log_step(run: _Run, progress: Progress, terms: dict[str, float] | None) -> None:
    lr = run.scheduler.get_last_lr()[0]
    loss = " ".join(f"{name} {value:.4f}" for name, value in terms.items()) if terms else "empty batch"
    steps = run.schedule.steps_in_epoch(progress.epoch)
    tqdm.write(textwrap.fill(f"epoch {progress.epoch} step {progress.step}/{steps} {loss} lr {lr:.3e}", LOG_WIDTH,
                             subsequent_indent="    "))
    sys.stdout.flush()
    if run.writer is not None and terms:
        for name, value in terms.items():
            run.writer.add_scalar(f"step/{name}", value, progress.global_step)
        run.writer.add_scalar("step/lr", lr, progress.global_step)


@torch.no_grad()
def validate(run: _Run, model: nn.Module) -> dict[str, float]:
    """Top-1 (%) of ``model`` on the val split, one centre clip per video, summed over processes."""
    env = run.env
    loader = make_loader(run.val_data, run.recipe.batch_size, num_workers=run.config.num_workers,
                         sampler=range(env.rank, len(run.val_data), env.world_size))
    model.eval()
    counts = {"correct": 0.0, "videos": 0.0, "load_errors": 0.0}
    for videos, labels, load_errors in loader:
        counts["load_errors"] += load_errors
        if len(labels):
            with run.autocast():
                logits, _ = run.method.predict(model, run.inputs(videos))
            counts["correct"] += (logits.argmax(1).cpu() == labels).sum().item()
            counts["videos"] += len(labels)
    counts = distributed.all_reduce(counts, env)
    return {"top1": 100.0 * counts["correct"] / max(1.0, counts["videos"]), **counts}


def _end_epoch(run: _Run, progress: Progress) -> None:
    """Validate, log the epoch's metrics, checkpoint, and move on to the next epoch."""
    sums = distributed.all_reduce({k: v for k, v in progress.running.items() if k != "time_s"}, run.env)
    samples = max(1.0, sums["samples"])
    row = {"epoch": progress.epoch, "step": progress.global_step,
           **{f"train_{name}": sums[name] / samples for name in run.method.terms},
           "train_videos": int(sums["samples"]), "lr": run.scheduler.get_last_lr()[0],
           "skipped_index": sum(run.train_data.index.skipped.values()), "skipped_load": int(sums["load_errors"])}
    if run.val_data is not None:
        raw = validate(run, run.raw_model)
        row.update(val_top1=raw["top1"], val_videos=int(raw["videos"]), val_skipped_load=int(raw["load_errors"]))
        if run.ema is not None:
            row["val_top1_ema"] = validate(run, run.ema.module)["top1"]
    row["time_s"] = distributed.all_reduce({"t": progress.running["time_s"]}, run.env, op="max")["t"]
    progress.history.append(row)
    progress.epoch, progress.step, progress.running = progress.epoch + 1, 0, {}

    score = row.get("val_top1_ema", row.get("val_top1"))
    improved = score is not None and (progress.best_top1 is None or score > progress.best_top1)
    if improved:
        progress.best_top1, progress.best_epoch = score, row["epoch"]
    if run.env.is_main:
        state = _checkpoint_state(run, progress, complete=progress.epoch == run.schedule.total_epochs)
        save_checkpoint(run.out / LAST, state)
        if improved:
            save_checkpoint(run.out / BEST, state)
        _write_metrics(run, progress)
        line = " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())
        tqdm.write(textwrap.fill(line, LOG_WIDTH, subsequent_indent="    "))
        if row["epoch"] == 0:
            for note in outweighing_terms(row):
                tqdm.write(textwrap.fill(note, LOG_WIDTH, subsequent_indent="    "))
    distributed.barrier(run.env)


LOG_WIDTH = 120
OUTWEIGHS = 10.0  # a loss term this many times the cross-entropy in the first epoch is worth a remark


def outweighing_terms(row: dict) -> list[str]:
    """One remark per loss term that outweighs the cross-entropy by more than :data:`OUTWEIGHS` times in an
    epoch's mean (the first epoch's: the balance the run starts from)."""
    ce = row.get("train_ce")
    if not ce:
        return []
    notes = []
    for name, value in row.items():
        if name.startswith("train_") and name not in ("train_ce", "train_loss", "train_videos") and \
                isinstance(value, float) and value > OUTWEIGHS * ce:
            term = name.removeprefix("train_")
            weight = " (its weight: --grw-weight)" if term == "grw" else ""
            notes.append(f"note: in epoch {row['epoch']} the {term} term ({value:.4g}) is {value / ce:.0f}x the "
                         f"cross-entropy ({ce:.4g}){weight}; the total loss is mostly that term")
    return notes


def _write_metrics(run: _Run, progress: Progress) -> None:
    """metrics.csv rewritten from the checkpointed history (so a resumed run has no stale rows)."""
    write_csv(run.out / "metrics.csv", pd.DataFrame(progress.history))
    row = progress.history[-1]
    for name, value in row.items():
        if name not in ("epoch", "step"):
            run.writer.add_scalar(f"epoch/{name}", value, row["epoch"])
    run.writer.flush()


def _checkpoint_state(run: _Run, progress: Progress, complete: bool) -> dict:
    return {
        "model": run.raw_model.state_dict(),
        "ema": run.ema.state_dict() if run.ema is not None else None,
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(),
        "progress": dataclasses.asdict(progress),
        "schedule_state": run.schedule.model_state(run.raw_model),
        **run_record(run.config, run.spec, run.deviations, run.train_data.index.classes),
        "complete": complete,
    }


def _summary(run: _Run, progress: Progress, status: str, signum: int = 0) -> dict:
    """What ``train`` returns (and rank 0 writes to ``out/summary.json``)."""
    skipped = {"train": {**run.train_data.index.skipped,
                         "load_error": progress.history[-1]["skipped_load"] if progress.history else 0}}
    if run.val_data is not None:
        skipped["val"] = {**run.val_data.index.skipped,
                          "load_error": progress.history[-1].get("val_skipped_load", 0) if progress.history else 0}
    summary = {
        "status": status,
        "exit_code": 128 + signum if signum else 0,
        "signal": signal.Signals(signum).name if signum else None,
        "row": run.spec.row,
        "epochs_completed": progress.epoch,
        "step_in_epoch": progress.step,
        "global_step": progress.global_step,
        "best_val_top1": progress.best_top1,
        "best_epoch": progress.best_epoch,
        "history": progress.history,
        "skipped": skipped,
        "last_checkpoint": str(run.out / LAST),
        "best_checkpoint": str(run.out / BEST) if (run.out / BEST).exists() else None,
        "world_size": run.env.world_size,
    }
    if run.env.is_main:
        write_json(run.out / "summary.json", summary)
    return summary
