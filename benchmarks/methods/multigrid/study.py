"""Standard vs multigrid training, side by side on CPU (``python -m benchmarks.run multigrid-study``).

Not Kinetics. One Table 1 row (X3D-XS by default) is trained from scratch on the warm-up airplanes
(``benchmarks.data.airplanes``) at an input where multigrid's shapes differ meaningfully (16 frames x 64 px),
with the suite's ``train`` twice per seed: ``--schedule standard`` and ``--schedule multigrid``
(long and short cycles, ``benchmarks.methods.multigrid.schedule``), with the same recipe, data and seeds. Both use
the step-wise SGD policy multigrid was defined with; multigrid trains ``epoch_factor`` times the
epochs, as PySlowFast's multigrid does. Each model gets its BatchNorm statistics recomputed on the
training clips at the default shape (precise BN, as PySlowFast's multigrid configs) and is evaluated
on the test split (stored runs, dataset ``warmup-airplanes``).

What it reports, per schedule (mean over seeds):

- test top-1;
- training wall-clock (the training loop's own time, data loading included; evaluation excluded);
- training GFLOPs: the sum over every training clip of fvcore's forward GFLOPs at that clip's shape
  (``training_gflops``): hardware-independent, and the backward pass scales with it;
- optimizer steps and epochs.

Outputs: ``multigrid_airplanes.md`` (the table) and ``runs/multigrid/multigrid-<timestamp>.json`` (the
summary with every run, the setting and provenance).
"""

from __future__ import annotations

import dataclasses
import functools
import time

from benchmarks.core.cli import from_args
from benchmarks.core.counting import LogitsOnly, count_gflops
from benchmarks.core.store import Store
from benchmarks.data import airplanes
from benchmarks.engine.config import RunConfig
from benchmarks.engine.recipe import Recipe
from benchmarks.engine.runs import build_run_model, build_schedule, resolve_spec
from benchmarks.engine.schedules import Schedule
from benchmarks.methods.multigrid.options import StudyConfig
from benchmarks.methods.multigrid.options import StudyOptions as Options  # declared in __init__: --help reads it there
from benchmarks.methods.multigrid.report import lr_steps, render_markdown, study_table, write_outputs  # noqa: F401
from benchmarks.methods.multigrid.schedule import MultigridSchedule
from benchmarks.studies.harness import CPU_RUN, announce, run_jobs, store_summary, training_seconds
from benchmarks.studies.proxy import train_and_test
from benchmarks.table1.specs import RowSpec, get_spec

SCHEDULES = ("standard", "multigrid")


def run_config(config: StudyConfig, schedule: str, seed: int) -> RunConfig:
    return RunConfig(row=config.row, data=config.data, out=f"{config.work}/{schedule}-seed{seed}",
                     recipe=config.recipe(seed), frames=config.frames, res=config.size, fps=config.fps,
                     schedule=schedule, schedule_options=_schedule_options(schedule, config), **CPU_RUN)


def _schedule_options(schedule: str, config: StudyConfig) -> dict:
    return {"epoch_factor": config.epoch_factor} if schedule == "multigrid" else {}


def training_gflops(schedule: Schedule, videos: int, clip_gflops) -> float:
    """Forward GFLOPs of every training clip of a run: ``clip_gflops(frames, side)`` per clip, summed over
    the clips of every step (multigrid: each step's shape) or epochs x videos (one shape)."""
    if isinstance(schedule, MultigridSchedule):
        return sum(shape.batch_size * clip_gflops(shape.frames, shape.side)
                   for epoch in range(schedule.total_epochs) for step in range(schedule.steps_in_epoch(epoch))
                   for shape in [schedule.shape(epoch, step)])
    shape = schedule.shape(0, 0)
    return schedule.total_epochs * videos * clip_gflops(shape.frames, shape.side)


@functools.cache
def _clip_gflops(spec: RowSpec, frames: int, side: int) -> float:
    model = build_run_model(spec, 3, Recipe())
    return count_gflops(LogitsOnly(model), (1, 3, frames, side, side))


def run_one(config: StudyConfig, schedule_name: str, seed: int, store: Store) -> dict:
    """Train and test one run; what the summary keeps of it."""
    run = run_config(config, schedule_name, seed)
    summary, record = train_and_test(run, store, config.precise_bn_videos)
    spec, _ = resolve_spec(run)
    schedule = build_schedule(run, spec, config.train_videos)
    return {
        "schedule": schedule_name,
        "seed": seed,
        "top1": record["top1"],
        "train_time_s": training_seconds(summary),
        "training_gflops": training_gflops(schedule, config.train_videos,
                                           functools.partial(_clip_gflops, spec)),
        "steps": summary["global_step"],
        "epochs": summary["epochs_completed"],
        "gflops_per_clip": record["gflops_per_view"],
        "run": record["path"].rsplit("/", 1)[-1],
    }


def run_study(store: Store, config: StudyConfig = StudyConfig()) -> dict:  # noqa: B008  (frozen)
    """Every schedule for every seed (multigrid's longer standard runs first), stored with its table."""
    started = time.perf_counter()
    airplanes.generate(config.data, config.train_videos, config.val_videos, config.test_videos, config.video_frames,
                       config.size, config.fps)
    jobs = [(config, name, seed, store) for name in SCHEDULES for seed in range(config.seeds)]
    runs = run_jobs(run_one, jobs, config.processes, "multigrid study")
    return store_summary(store, "multigrid", "multigrid", {
        "experiment": "standard-vs-multigrid", "dataset": "warmup-airplanes (synthetic)",
        "model": get_spec(config.row).name, "config": dataclasses.asdict(config)}, runs, started, write_outputs)


def run(options: Options, store: Store) -> int:
    summary = run_study(store, from_args(StudyConfig, options))
    return announce(summary, render_markdown(summary))
