"""Train a Table 1 row on Kinetics-format video (``python -m benchmarks.run train``).

The row's spec gives the model (``build_model``), its GRW settings and its input (frames, fps,
resolution, normalisation); ``--frames/--res/--fps`` override the input for small experiments and
are recorded as deviations. GRW: MoViNet GRW rows train their ``TemporalHead`` with the GRW loss
(``--no-grw`` keeps the head and drops the loss); MobileNetV3/TSM rows get ``grw.IntermediateTaps``
on a few inverted-residual blocks with ``--grw`` (``DEFAULT_TAPS``).

Recipe (``Recipe``): AdamW (no weight decay on biases and norms), per-step linear warmup then cosine
decay, label smoothing, gradient accumulation, an EMA of the weights, bf16 autocast or fp16 with a
GradScaler on CUDA. ``lr`` is for the global batch ``batch_size x accumulate x processes``.

Outputs in ``out/``: ``config.json``, ``classes.json``, ``metrics.csv`` (one row per epoch: train
loss, CE and GRW terms, val top-1 of the raw and the EMA weights, lr, time, skipped videos),
``tb/`` (TensorBoard), ``summary.json``, and checkpoints ``last.pt`` / ``best.pt`` (see
``benchmarks.checkpoint``).

Preemption and resume. SIGTERM or SIGUSR1 (what SLURM sends before a time limit or preemption) only
set a flag; at the next optimizer-step boundary every process agrees to stop, ``last.pt`` is written
with the epoch and the step reached, and the run exits with status ``128 + signal`` (143 for SIGTERM,
138 for SIGUSR1), as a process killed by that signal would: an interrupted run never looks finished
to SLURM (``afterok`` dependencies) and a requeue script resumes it. ``resume=True`` (``--resume``)
continues from ``out/last.pt`` (a fresh start if there is none; a no-op for a finished run), exactly:
data order is a function of (seed, epoch), crops of (seed, epoch, video), and the model's own
randomness (dropout, stochastic depth) is reseeded from (seed, epoch, step, rank) before every
step, so with a fixed seed an interrupted and resumed run ends with the weights of an uninterrupted
one, without carrying RNG states around.

Multi-GPU / multi-node: launch with ``torchrun``; the data is sharded with a DistributedSampler,
metrics are summed over processes, and only rank 0 writes files.

Several rows, SLURM: ``--row 1,6`` trains each row in ``OUT/row<N>`` (one row trains in ``OUT``);
``--launch slurm`` runs them as a job array through submitit, one process per GPU, requeued and
resumed after the time-limit signal (``benchmarks.slurm_tasks``). A row whose ``OUT`` holds a
finished run with the same settings is skipped unless ``--refresh``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DistributedSampler, Sampler
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from benchmarks import distributed
from benchmarks.checkpoint import BEST, LAST, latest_checkpoint, load_checkpoint, save_checkpoint
from benchmarks.data import Sampling, VideoDataset, VideoIndex, make_loader, save_classes, set_epoch
from benchmarks.launch import add_launch_arguments, launch_command, options_from_args
from benchmarks.specs import GrwSettings, RowSpec, build_model, get_spec, parse_rows
from benchmarks.store import write_json_atomic
from grw import GrwModel

# Intermediate GRW taps for rows without a GRW head: the last inverted-residual block of the 1/8,
# 1/16 and 1/32 stages (names as in ``GrwModel.backbone``; see baselines/mobilenet.py).
DEFAULT_TAPS: dict[str, tuple[str, ...]] = {
    "mobilenet_v3_small": ("backbone.features.3", "backbone.features.8", "backbone.features.11"),
    "mobilenet_v3_large": ("backbone.features.6", "backbone.features.12", "backbone.features.15"),
}
DEFAULT_TAPS["mobilenet_v3_small_tsm"] = DEFAULT_TAPS["mobilenet_v3_small"]
DEFAULT_TAPS["mobilenet_v3_large_tsm"] = DEFAULT_TAPS["mobilenet_v3_large"]

PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
AMP_MODES = ("bf16", "fp16", "none")
# Config fields that may change between a run and its resumption (they do not change the result).
RESUMABLE_CHANGES = {"resume", "num_workers", "device", "log_every", "data", "annotations", "out"}


@dataclass
class Recipe:
    """How to train. ``dropout``/``stochastic_depth`` None keep the model's defaults; ``ema_decay``
    0 turns the EMA off; ``amp`` applies on CUDA only (CPU trains in float32)."""

    epochs: int = 30
    batch_size: int = 8  # per process
    accumulate: int = 1  # micro-batches per optimizer step
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 2.0
    min_lr_ratio: float = 0.01  # the cosine ends at lr * min_lr_ratio
    label_smoothing: float = 0.1
    ema_decay: float = 0.9998  # per optimizer step
    dropout: float | None = None
    stochastic_depth: float | None = None
    amp: str = "bf16"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "accumulate"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_epochs < 0:
            raise ValueError(f"need lr > 0, weight_decay >= 0, warmup_epochs >= 0, got "
                             f"{self.lr}, {self.weight_decay}, {self.warmup_epochs}")
        if not 0 <= self.ema_decay < 1 or not 0 <= self.label_smoothing < 1 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"ema_decay and label_smoothing must be in [0, 1), min_lr_ratio in [0, 1], got "
                             f"{self.ema_decay}, {self.label_smoothing}, {self.min_lr_ratio}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {self.amp!r}")


@dataclass
class TrainConfig:
    """One training run. ``grw`` None follows the row's spec; the input overrides None keep the spec's."""

    row: int | str  # number or name; stored as the number
    data: str
    out: str
    recipe: Recipe = field(default_factory=Recipe)
    annotations: str | None = None  # a directory of <split>.csv, or one CSV; default DATA/annotations
    frames: int | None = None
    res: int | None = None
    fps: float | None = None
    grw: bool | None = None
    grw_weight: float | None = None
    grw_window: int | None = None
    validate: bool = True  # evaluate raw and EMA weights on the val split after each epoch
    resume: bool = False
    num_workers: int = 4
    device: str | None = None  # default: CUDA when available
    log_every: int = 20  # optimizer steps between log lines

    def __post_init__(self) -> None:
        self.row = get_spec(self.row).row  # "1", 1 and "MoViNet-A0-S-GRW" are the same run

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """The inverse of ``dataclasses.asdict`` (how configs are stored in checkpoints and config.json)."""
        values = dict(values)
        recipe = Recipe(**values.pop("recipe", {}))
        return cls(recipe=recipe, **values)


# --------------------------------------------------------------------------- model and input


def resolve_spec(config: TrainConfig) -> tuple[RowSpec, dict[str, dict]]:
    """The row's spec with the run's input and GRW overrides applied, and the deviations from it.

    With ``res`` overridden, the evaluation resize keeps the spec's ratio to the crop.
    """
    spec = get_spec(config.row)
    if not spec.implemented:
        raise ValueError(f"row {spec.row} ({spec.name}) is not implemented: {spec.not_implemented_reason}")
    changes: dict[str, Any] = {}
    for name in ("frames", "res", "fps"):
        value = getattr(config, name)
        if value is not None and value != getattr(spec, name):
            if value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
            changes[name] = value
    if "res" in changes and spec.eval_resize is not None:
        changes["eval_resize"] = round(spec.eval_resize * changes["res"] / spec.res)
    changes["grw"] = _grw_settings(spec, config)
    resolved = dataclasses.replace(spec, **changes)

    deviations = {name: {"spec": getattr(spec, name), "used": getattr(resolved, name)}
                  for name in ("frames", "res", "fps", "eval_resize") if getattr(resolved, name) != getattr(spec, name)}
    for name in ("weight", "window"):
        published = getattr(spec.grw, name) if spec.grw else None
        used = getattr(resolved.grw, name) if resolved.grw else None
        if used != published:
            deviations[f"grw_{name}"] = {"spec": published, "used": used}
    if resolved.grw and resolved.grw.window > resolved.frames:
        raise ValueError(f"GRW window {resolved.grw.window} is longer than the clip ({resolved.frames} frames)")
    return resolved, deviations


def _grw_settings(spec: RowSpec, config: TrainConfig) -> GrwSettings | None:
    """Head rows keep their head (weight 0 with GRW off); other rows get taps with GRW on."""
    enabled = config.grw if config.grw is not None else spec.grw is not None
    if not enabled and (config.grw_weight is not None or config.grw_window is not None):
        raise ValueError("--grw-weight/--grw-window given with GRW off (add --grw)")
    overrides = {name: value for name, value in (("weight", config.grw_weight), ("window", config.grw_window))
                 if value is not None}
    if spec.grw is not None:
        return dataclasses.replace(spec.grw, **(overrides if enabled else {"weight": 0.0}))
    if not enabled or overrides.get("weight") == 0:
        return None
    if spec.model not in DEFAULT_TAPS:
        raise ValueError(f"row {spec.row} ({spec.name}): no default GRW taps for model {spec.model!r}; "
                         f"--grw works for {sorted(DEFAULT_TAPS)} and the GRW head rows")
    return GrwSettings(attach="taps", taps=DEFAULT_TAPS[spec.model], **overrides)


def build_train_model(spec: RowSpec, num_classes: int, recipe: Recipe) -> nn.Module:
    """The row's model as trained (and as evaluated from a checkpoint): same options, same modules."""
    options = {name: getattr(recipe, name) for name in ("dropout", "stochastic_depth")
               if getattr(recipe, name) is not None}
    model = build_model(spec, num_classes, **options)
    _materialize_lazy_modules(model, spec)
    return model


def _materialize_lazy_modules(model: nn.Module, spec: RowSpec) -> None:
    """Size the BatchNorms of GRW taps, which are lazy, before the optimizer, EMA and DDP see them.

    One no-grad forward of a zero clip with only the taps in training mode: the backbone (in eval
    mode) updates no statistics and draws no random numbers; the taps' statistics are then reset.
    """
    if not (isinstance(model, GrwModel) and model.taps is not None):
        return
    if not any(isinstance(m, LazyModuleMixin) and m.has_uninitialized_params() for m in model.taps.modules()):
        return
    model.eval()
    model.taps.train()
    with torch.no_grad():
        model(torch.zeros(1, 3, spec.frames, spec.res, spec.res))
    for norm in model.taps.norms:
        norm.reset_running_stats()
    model.train()


def input_normalization(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) for frames in [0, 1]: the backbone's ``input_mean``/``input_std``, else none."""
    backbone = model.backbone if isinstance(model, GrwModel) else model
    mean = getattr(backbone, "input_mean", (0.0, 0.0, 0.0))
    std = getattr(backbone, "input_std", (1.0, 1.0, 1.0))
    return tuple(mean), tuple(std)


def train_sampling(spec: RowSpec, model: nn.Module) -> Sampling:
    mean, std = input_normalization(model)
    return Sampling(frames=spec.frames, fps=spec.fps, size=spec.res, mean=mean, std=std)


def eval_sampling(spec: RowSpec, model: nn.Module, views: bool = True) -> Sampling:
    """The row's evaluation input: ``clips x crops`` views (or one centre view with ``views=False``)."""
    mean, std = input_normalization(model)
    return Sampling(frames=spec.frames, fps=spec.fps, size=spec.res, resize=spec.eval_resize, mean=mean, std=std,
                    clips=spec.clips if views else 1, crops=spec.crops if views else 1)


def logits_of(output: Tensor | tuple[Tensor, dict]) -> Tensor:
    """GRW models return ``(logits, aux)``, baselines return logits."""
    return output[0] if isinstance(output, tuple) else output


# --------------------------------------------------------------------------- data


def annotation_file(data: str | Path, annotations: str | Path | None, split: str) -> Path | None:
    """The split's annotation CSV: ``annotations`` if it is a file, ``<annotations>/<split>.csv``
    if it is a directory (default ``DATA/annotations``); None (scan the folders) when absent."""
    if annotations is not None and Path(annotations).is_file():
        return Path(annotations)
    folder = Path(annotations) if annotations is not None else Path(data) / "annotations"
    if annotations is not None and not folder.is_dir():
        raise ValueError(f"annotations {folder} is neither a CSV file nor a directory of <split>.csv files")
    path = folder / f"{split}.csv"
    return path if path.is_file() else None


def build_index(config: TrainConfig, split: str, env: distributed.Distributed,
                classes: tuple[str, ...] | None = None) -> VideoIndex:
    """Index a split, rank 0 first: the other processes then read its cache instead of every file."""
    def build() -> VideoIndex:
        return VideoIndex.build(config.data, split, annotations=annotation_file(config.data, config.annotations, split),
                                classes=classes, cache_dir=Path(config.out) / "index",
                                workers=max(1, config.num_workers))

    index = build() if env.is_main else None
    distributed.barrier(env)
    return index if index is not None else build()


class ResumeSampler(Sampler[int]):
    """``sampler``'s indices for the epoch from position ``start`` on: resumes an epoch mid-way
    without decoding the videos already trained on."""

    def __init__(self, sampler: DistributedSampler, start: int = 0) -> None:
        self.sampler, self.start = sampler, start

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.sampler), self.start, None)

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.start)


# --------------------------------------------------------------------------- schedule, state


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """LR factor at optimizer step ``step``: linear warmup to 1, then cosine decay to ``min_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


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
    """While active, SIGTERM/SIGUSR1 only record the signal; training stops at a step boundary.

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
        self.signum = signum


# --------------------------------------------------------------------------- the run


@dataclass
class _Run:
    """Everything one training run works with."""

    config: TrainConfig
    env: distributed.Distributed
    spec: RowSpec
    model: nn.Module  # DDP-wrapped under torchrun
    raw_model: nn.Module
    ema: AveragedModel | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    train_data: VideoDataset
    val_data: VideoDataset | None
    steps_per_epoch: int
    writer: SummaryWriter | None
    out: Path

    @property
    def recipe(self) -> Recipe:
        return self.config.recipe

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.env.device.startswith("cuda") or self.recipe.amp == "none":
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=torch.bfloat16 if self.recipe.amp == "bf16" else torch.float16)


def train(config: TrainConfig) -> dict:
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


def _prepare(config: TrainConfig, env: distributed.Distributed) -> tuple[_Run, Progress]:
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
    raw_model = build_train_model(spec, len(classes), recipe).to(env.device)
    per_rank = math.ceil(len(train_index) / env.world_size)
    steps_per_epoch = math.ceil(math.ceil(per_rank / recipe.batch_size) / recipe.accumulate)
    optimizer, scheduler, scaler, ema = _optimization(raw_model, recipe, steps_per_epoch, env.device)
    progress = Progress()
    if checkpoint is not None:
        raw_model.load_state_dict(checkpoint["model"])
        for part, state in ((ema, "ema"), (optimizer, "optimizer"), (scheduler, "scheduler"), (scaler, "scaler")):
            if part is not None:
                part.load_state_dict(checkpoint[state])
        progress = Progress(**checkpoint["progress"])
        if not env.is_main:  # the saved partial-epoch sums are over all processes: count them once
            progress.running = dict.fromkeys(progress.running, 0.0)

    model = raw_model
    if env.enabled:
        # A GRW head replaces the backbone's classifier, whose parameters then get no gradient.
        head = isinstance(raw_model, GrwModel) and raw_model.head is not None
        device_ids = [env.local_rank] if env.device.startswith("cuda") else None
        model = DistributedDataParallel(raw_model, device_ids=device_ids, find_unused_parameters=head)

    train_data = VideoDataset(train_index, train_sampling(spec, raw_model), train=True, seed=recipe.seed)
    val_data = VideoDataset(val_index, eval_sampling(spec, raw_model, views=False), train=False) if val_index else None
    writer = None
    if env.is_main:
        save_classes(out / "classes.json", classes)
        write_json_atomic(out / "config.json", {
            "config": dataclasses.asdict(config), "row": spec.row, "name": spec.name, "model": spec.model,
            "grw": dataclasses.asdict(spec.grw) if spec.grw else None, "deviations": deviations,
            "input": dataclasses.asdict(train_data.sampling), "classes": len(classes),
            "world_size": env.world_size, "global_batch": recipe.batch_size * recipe.accumulate * env.world_size,
            "steps_per_epoch": steps_per_epoch,
            "data": {"train": train_index.summary(), "val": val_index.summary() if val_index else None},
        })
        writer = SummaryWriter(str(out / "tb"), purge_step=progress.global_step if checkpoint else None)
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    run = _Run(config, env, spec, model, raw_model, ema, optimizer, scheduler, scaler, criterion,
               train_data, val_data, steps_per_epoch, writer, out)
    return run, progress


def _optimization(model: nn.Module, recipe: Recipe, steps_per_epoch: int, device: str):
    """AdamW, the per-step warmup + cosine schedule, the fp16 GradScaler (disabled otherwise), the EMA."""
    optimizer = torch.optim.AdamW(param_groups(model, recipe.weight_decay), lr=recipe.lr)
    total_steps = steps_per_epoch * recipe.epochs
    warmup_steps = min(total_steps, round(recipe.warmup_epochs * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(
        warmup_cosine, warmup_steps=warmup_steps, total_steps=total_steps, min_ratio=recipe.min_lr_ratio))
    use_cuda = device.startswith("cuda")
    if use_cuda and recipe.amp == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError("this GPU does not support bf16; use amp='fp16' (with a GradScaler) or 'none'")
    scaler = torch.amp.GradScaler("cuda", enabled=use_cuda and recipe.amp == "fp16")
    ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema_decay), use_buffers=True)
           if recipe.ema_decay > 0 else None)
    return optimizer, scheduler, scaler, ema


def _check_same_run(saved: dict, config: TrainConfig, out: Path) -> None:
    current = dataclasses.asdict(config)
    changed = sorted(name for name in current if name not in RESUMABLE_CHANGES and saved.get(name) != current[name])
    if changed:
        details = "; ".join(f"{name}: {saved.get(name)!r} -> {current[name]!r}" for name in changed)
        raise ValueError(f"cannot resume {out / LAST}: the run was started with different settings ({details})")


def _fit(run: _Run, progress: Progress, flag: PreemptionFlag) -> dict:
    while progress.epoch < run.recipe.epochs:
        signum = train_one_epoch(run, progress, flag)
        if signum:
            # Partial-epoch sums over all processes, so the resumed epoch reports the whole epoch.
            time_s = progress.running.pop("time_s")
            progress.running = {**distributed.all_reduce(progress.running, run.env), "time_s": time_s}
            if run.env.is_main:
                save_checkpoint(run.out / LAST, _checkpoint_state(run, progress, complete=False))
                tqdm.write(f"stopped by signal {signal.Signals(signum).name} at epoch {progress.epoch} "
                           f"step {progress.step}; resume with --resume", file=sys.stderr)
            distributed.barrier(run.env)
            return _summary(run, progress, status="preempted", signum=signum)
        _end_epoch(run, progress)
    return _summary(run, progress, status="completed")


def train_one_epoch(run: _Run, progress: Progress, flag: PreemptionFlag) -> int:
    """Train ``progress.epoch`` from ``progress.step`` on; returns the stop signal (0 if none)."""
    recipe, env, epoch = run.recipe, run.env, progress.epoch
    sampler = DistributedSampler(run.train_data, num_replicas=env.world_size, rank=env.rank, shuffle=True,
                                 seed=recipe.seed)
    micro_batches = math.ceil(len(sampler) / recipe.batch_size)
    first = progress.step * recipe.accumulate
    loader = make_loader(run.train_data, recipe.batch_size, num_workers=run.config.num_workers,
                         sampler=ResumeSampler(sampler, first * recipe.batch_size))
    set_epoch(loader, epoch)
    sums = progress.running or dict.fromkeys(("loss", "ce", "grw", "samples", "load_errors", "time_s"), 0.0)
    run.model.train()
    bar = tqdm(total=run.steps_per_epoch, initial=progress.step, desc=f"epoch {epoch}", unit="step",
               disable=not env.is_main, file=sys.stderr)
    started, batches = time.perf_counter(), iter(loader)
    # Micro-batch i belongs to optimizer step i // accumulate, whose micro-batches start at `group`;
    # the epoch's last step may have fewer (`group_size`), and its loss is scaled accordingly.
    for i in range(first, micro_batches):
        group = i // recipe.accumulate * recipe.accumulate
        group_size = min(recipe.accumulate, micro_batches - group)
        if i == group:
            _seed_step(recipe.seed, epoch, progress.step, env.rank)
            had_backward = False
        videos, labels, load_errors = next(batches)
        sums["load_errors"] += load_errors
        # DDP needs every process in every backward: a batch empty on any process is skipped by all.
        usable = distributed.all_reduce({"n": len(labels)}, env, op="min")["n"] > 0
        last_in_group = i == group + group_size - 1
        if usable:
            no_sync = env.enabled and not last_in_group
            with run.model.no_sync() if no_sync else contextlib.nullcontext():
                terms = _train_step(run, videos.to(env.device, non_blocking=True), labels.to(env.device), group_size)
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


def _train_step(run: _Run, videos: Tensor, labels: Tensor, group_size: int) -> dict[str, float]:
    """Forward and backward of one micro-batch; returns its mean loss terms."""
    with run.autocast():
        output = run.model(videos)
        logits, aux = (output if isinstance(output, tuple) else (output, {}))
        ce = run.criterion(logits.float(), labels)
        grw = sum(term.float() for term in aux.values()) if aux else torch.zeros((), device=ce.device)
        loss = ce + grw
    run.scaler.scale(loss / group_size).backward()
    return {"loss": loss.item(), "ce": ce.item(), "grw": grw.item()}


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
    loss = f"loss {terms['loss']:.4f} ce {terms['ce']:.4f} grw {terms['grw']:.4f}" if terms else "empty batch"
    tqdm.write(f"epoch {progress.epoch} step {progress.step}/{run.steps_per_epoch} {loss} lr {lr:.3e}")
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
                logits = logits_of(model(videos.to(env.device)))
            counts["correct"] += (logits.argmax(1).cpu() == labels).sum().item()
            counts["videos"] += len(labels)
    counts = distributed.all_reduce(counts, env)
    return {"top1": 100.0 * counts["correct"] / max(1.0, counts["videos"]), **counts}


def _end_epoch(run: _Run, progress: Progress) -> None:
    """Validate, log the epoch's metrics, checkpoint, and move on to the next epoch."""
    sums = distributed.all_reduce({k: v for k, v in progress.running.items() if k != "time_s"}, run.env)
    samples = max(1.0, sums["samples"])
    row = {"epoch": progress.epoch, "step": progress.global_step,
           "train_loss": sums["loss"] / samples, "train_ce": sums["ce"] / samples, "train_grw": sums["grw"] / samples,
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
        state = _checkpoint_state(run, progress, complete=progress.epoch == run.recipe.epochs)
        save_checkpoint(run.out / LAST, state)
        if improved:
            save_checkpoint(run.out / BEST, state)
        _write_metrics(run, progress)
        tqdm.write(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    distributed.barrier(run.env)


def _write_metrics(run: _Run, progress: Progress) -> None:
    """metrics.csv rewritten from the checkpointed history (so a resumed run has no stale rows)."""
    path = run.out / "metrics.csv"
    tmp = path.with_name(f".{path.name}.tmp")
    pd.DataFrame(progress.history).to_csv(tmp, index=False)
    tmp.replace(path)
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
        "config": dataclasses.asdict(run.config),
        "classes": list(run.train_data.index.classes),
        "row": run.spec.row,
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
        write_json_atomic(run.out / "summary.json", summary)
    return summary


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Recipe()
    parser.add_argument("--row", required=True,
                        help="Table 1 row number or name; several, comma-separated, train one after another "
                        "(or as an array with --launch), each in OUT/row<N>")
    parser.add_argument("--data", required=True, help="dataset root: ROOT/{train,val}/<class>/<video>.mp4")
    parser.add_argument("--out", required=True, help="run directory (config, metrics, checkpoints); "
                        "with several rows, OUT/row<N> for each")
    parser.add_argument("--annotations", help="directory of <split>.csv or one Kinetics CSV (default DATA/annotations)")
    starts = parser.add_mutually_exclusive_group()
    starts.add_argument("--resume", action="store_true",
                        help="continue from OUT/last.pt when it exists (launched tasks always do)")
    starts.add_argument("--refresh", action="store_true",
                        help="start from scratch, also rows whose run in OUT finished (they are skipped otherwise)")
    group = parser.add_argument_group("input and GRW (default: the row's spec; recorded as deviations)")
    group.add_argument("--frames", type=int)
    group.add_argument("--res", type=int)
    group.add_argument("--fps", type=float)
    group.add_argument("--grw", action=argparse.BooleanOptionalAction, default=None,
                       help="GRW-smoothing on/off (default: on for GRW rows; --grw adds taps to MobileNetV3/TSM)")
    group.add_argument("--grw-weight", type=float)
    group.add_argument("--grw-window", type=int)
    group = parser.add_argument_group("recipe")
    group.add_argument("--epochs", type=int, default=defaults.epochs)
    group.add_argument("--batch-size", type=int, default=defaults.batch_size, help="per process")
    group.add_argument("--accumulate", type=int, default=defaults.accumulate, help="micro-batches per step")
    group.add_argument("--lr", type=float, default=defaults.lr, help="peak lr for the global batch")
    group.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    group.add_argument("--warmup-epochs", type=float, default=defaults.warmup_epochs)
    group.add_argument("--min-lr-ratio", type=float, default=defaults.min_lr_ratio)
    group.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing)
    group.add_argument("--ema-decay", type=float, default=defaults.ema_decay, help="0 turns the EMA off")
    group.add_argument("--dropout", type=float, help="default: the model's")
    group.add_argument("--stochastic-depth", type=float, help="default: the model's (MoViNet, X3D)")
    group.add_argument("--amp", choices=AMP_MODES, default=defaults.amp, help="mixed precision on CUDA")
    group.add_argument("--seed", type=int, default=defaults.seed)
    group = parser.add_argument_group("execution")
    group.add_argument("--no-val", dest="validate", action="store_false", help="skip per-epoch validation")
    group.add_argument("--num-workers", type=int, default=4)
    group.add_argument("--device", choices=("cpu", "cuda"))
    group.add_argument("--log-every", type=int, default=20, help="optimizer steps between log lines")
    add_launch_arguments(parser)


def parse_row_list(text: str) -> list[RowSpec]:
    """``"1,6"`` -> the rows' specs, each implemented and named once."""
    specs = parse_rows(text)
    if not specs:
        raise ValueError(f"--row must name at least one row, got {text!r}")
    rows = [spec.row for spec in specs]
    if len(set(rows)) != len(rows):
        raise ValueError(f"--row names a row twice: {text!r}")
    return specs


def configs_from_args(args: argparse.Namespace) -> list[TrainConfig]:
    """One config per row of ``--row``: it trains in OUT, or in OUT/row<N> when there are several.

    Launched tasks (``--launch slurm|local``) resume, since SLURM may restart them at any time.
    """
    specs = parse_row_list(args.row)
    recipe = Recipe(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Recipe)})
    names = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("recipe", "row", "out", "resume")]
    common = {name: getattr(args, name) for name in names}
    resume = not args.refresh and (args.resume or args.launch != "none")
    return [TrainConfig(row=spec.row, out=str(Path(args.out) / f"row{spec.row}") if len(specs) > 1 else args.out,
                        recipe=recipe, resume=resume, **common) for spec in specs]


def finished(config: TrainConfig) -> bool:
    """Whether ``config.out`` holds a complete run of these settings (a re-run skips it)."""
    path = Path(config.out) / LAST
    if not path.is_file():
        return False
    saved = load_checkpoint(path)
    current = dataclasses.asdict(config)
    return saved["complete"] and all(saved["config"].get(name) == value for name, value in current.items()
                                     if name not in RESUMABLE_CHANGES)


def print_summary(name: str, summary: dict) -> None:
    keys = ("row", "status", "epochs_completed", "best_val_top1", "last_checkpoint")
    print(json.dumps({key: summary[key] for key in keys}))


def main(args: argparse.Namespace) -> int:
    from benchmarks.slurm_tasks import TrainTask, TrainingStopped, preemptible  # they import this module

    try:
        if args.no_wait and args.launch == "none":
            raise ValueError("--no-wait needs --launch slurm or local")
        configs = configs_from_args(args)
        options = preemptible(options_from_args(args))
        for config in configs:
            resolve_spec(config)  # bad row / GRW / input options fail here, before any data is read
        todo = [config for config in configs if args.refresh or not finished(config)]
    except ValueError as error:
        print(f"train: error: {error}", file=sys.stderr)
        return 2
    for config in configs:
        if config not in todo:
            print(f"row {config.row}: {config.out} holds a finished run with these settings "
                  "(--refresh trains it again)")
    if not todo:
        return 0
    try:
        return launch_command("train", TrainTask(), todo, [f"row{config.row}" for config in todo], args, options,
                              on_result=print_summary, job_name="grw-train")
    except TrainingStopped as stopped:
        print(f"train: {stopped}; run the same command with --resume to continue", file=sys.stderr)
        return stopped.exit_code
