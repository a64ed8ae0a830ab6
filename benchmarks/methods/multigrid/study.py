"""Standard vs multigrid training, side by side on CPU (``python -m benchmarks.run multigrid``).

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

import argparse
import dataclasses
import functools
import time
from dataclasses import dataclass

import pandas as pd
from tabulate import tabulate

from benchmarks.core.cli import from_args
from benchmarks.core.counting import LogitsOnly, count_gflops
from benchmarks.core.paths import REPO_ROOT
from benchmarks.core.processes import map_in_processes
from benchmarks.core.statistics import format_ci, mean_ci, paired_difference
from benchmarks.core.store import Store, provenance, provenance_line, write_json, write_text
from benchmarks.data import airplanes
from benchmarks.engine.config import RunConfig
from benchmarks.engine.recipe import Recipe
from benchmarks.engine.runs import build_run_model, build_schedule, resolve_spec
from benchmarks.engine.schedules import Schedule
from benchmarks.methods.multigrid.schedule import MultigridSchedule
from benchmarks.studies.proxy import train_and_test
from benchmarks.table1.specs import RowSpec, get_spec

SCHEDULES = ("standard", "multigrid")


@dataclass(frozen=True)
class StudyConfig:
    """The data, input, recipe and budget of the comparison."""

    data: str = str(REPO_ROOT / "runs_local" / "airplanes16x64")
    work: str = str(REPO_ROOT / "runs_local" / "multigrid")  # training run directories
    row: int = 5  # X3D-XS
    train_videos: int = 900
    val_videos: int = 30
    test_videos: int = 150
    video_frames: int = 16
    size: int = 64
    frames: int = 16
    fps: int = 8
    seeds: int = 3
    epochs: int = 6  # multigrid trains epochs x epoch_factor
    batch_size: int = 8  # per step at the default shape; multigrid's long cycle up to 64 (8 BatchNorm groups)
    lr: float = 0.05
    lr_decays: tuple[float, ...] = (0.6, 0.85)  # the lr x 0.1 after these fractions of the epochs
    warmup_epochs: float = 0.5
    weight_decay: float = 5e-5
    epoch_factor: float = 1.5
    precise_bn_videos: int = 900
    processes: int = 2

    def __post_init__(self) -> None:
        if min(self.seeds, self.processes, self.train_videos, self.test_videos, self.epochs) < 1:
            raise ValueError("expected at least 1 seed, process, training video, test video and epoch")

    @property
    def lr_steps(self) -> tuple[int, ...]:
        return tuple(sorted({min(self.epochs, max(1, round(f * self.epochs))) for f in self.lr_decays}))

    def recipe(self, seed: int) -> Recipe:
        """PySlowFast's kind of recipe: SGD with Nesterov momentum, step-wise decay, linear warm-up; no EMA."""
        return Recipe(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, optimizer="sgd", lr_policy="steps",
                      lr_steps=self.lr_steps, warmup_epochs=self.warmup_epochs, weight_decay=self.weight_decay,
                      ema_decay=0.0, seed=seed, crop_min_area=1.0)


def run_config(config: StudyConfig, schedule: str, seed: int) -> RunConfig:
    return RunConfig(row=config.row, data=config.data, out=f"{config.work}/{schedule}-seed{seed}",
                     recipe=config.recipe(seed), frames=config.frames, res=config.size, fps=config.fps,
                     schedule=schedule, schedule_options=_schedule_options(schedule, config), validate=False,
                     num_workers=0, cache_videos=True, device="cpu", log_every=10_000)


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
        "train_time_s": sum(epoch["time_s"] for epoch in summary["history"]),
        "training_gflops": training_gflops(schedule, config.train_videos,
                                           functools.partial(_clip_gflops, spec)),
        "steps": summary["global_step"],
        "epochs": summary["epochs_completed"],
        "gflops_per_clip": record["gflops_per_view"],
        "run": record["path"].rsplit("/", 1)[-1],
    }


def run_study(store: Store, config: StudyConfig = StudyConfig()) -> dict:
    """Every schedule for every seed (multigrid's longer standard runs first), stored with its table."""
    started = time.perf_counter()
    airplanes.generate(config.data, config.train_videos, config.val_videos, config.test_videos, config.video_frames,
                       config.size, config.fps)
    jobs = [(config, name, seed, store) for name in SCHEDULES for seed in range(config.seeds)]
    runs = map_in_processes(run_one, jobs, config.processes, "multigrid study")
    summary = {
        "experiment": "standard-vs-multigrid",
        "dataset": "warmup-airplanes (synthetic)",
        "model": get_spec(config.row).name,
        "config": dataclasses.asdict(config),
        "runs": runs,
        "wall_time_s": round(time.perf_counter() - started, 1),
        **provenance("cpu"),
    }
    summary["path"] = str(write_json(store.new_run_path("multigrid", "multigrid"), summary))
    summary["outputs"] = [str(write_text(store.root / "multigrid_airplanes.md", render_markdown(summary)))]
    return summary


def study_table(summary: dict) -> pd.DataFrame:
    """One row per schedule: top-1 mean/std/95% interval, wall-clock, training GFLOPs, steps, and the
    ratios to the standard schedule."""
    runs = pd.DataFrame(summary["runs"])
    standard = runs[runs["schedule"] == "standard"]
    records = []
    for name, group in runs.groupby("schedule", sort=False):
        top1 = mean_ci(group["top1"].tolist())
        records.append({
            "schedule": name,
            "seeds": len(group),
            "epochs": int(group["epochs"].iloc[0]),
            "steps": int(group["steps"].iloc[0]),
            "top1": top1["mean"],
            "top1_text": format_ci(top1, ".1f"),
            "train_time_s": group["train_time_s"].mean(),
            "training_gflops": group["training_gflops"].iloc[0],
            "speedup": standard["train_time_s"].mean() / group["train_time_s"].mean(),
            "gflops_ratio": standard["training_gflops"].iloc[0] / group["training_gflops"].iloc[0],
        })
    return pd.DataFrame.from_records(records)


def render_markdown(summary: dict) -> str:
    table = study_table(summary)
    config = summary["config"]
    runs = pd.DataFrame(summary["runs"]).sort_values("seed")
    by_schedule = {name: group["top1"].tolist() for name, group in runs.groupby("schedule")}
    difference = paired_difference(by_schedule["multigrid"], by_schedule["standard"]) if len(by_schedule) == 2 else None
    shown = pd.DataFrame({
        "schedule": table["schedule"],
        "epochs": table["epochs"],
        "optimizer steps": table["steps"],
        "test top-1 (%), mean +/- std [95% CI]": table["top1_text"],
        "training wall-clock (s)": table["train_time_s"].map(lambda v: f"{v:.0f}"),
        "speed-up (wall-clock)": table["speedup"].map(lambda v: f"{v:.2f}x"),
        "training GFLOPs (forward)": table["training_gflops"].map(lambda v: f"{v:,.0f}"),
        "fewer GFLOPs": table["gflops_ratio"].map(lambda v: f"{v:.2f}x"),
    })
    lines = [
        f"# Standard vs multigrid training: {summary['model']} on the warm-up airplanes (synthetic, NOT Kinetics)",
        "",
        f"{config['train_videos']} training videos, {config['frames']} frames x {config['size']} px, "
        f"{config['seeds']} seeds; SGD (Nesterov momentum 0.9), lr {config['lr']} for batch {config['batch_size']}, "
        f"x0.1 at epochs {', '.join(map(str, StudyConfig(**config).lr_steps))} of {config['epochs']}, "
        f"{config['warmup_epochs']} warm-up epoch(s), weight decay {config['weight_decay']}; multigrid: long and "
        f"short cycles as PySlowFast, epoch factor {config['epoch_factor']}, sub-batch BatchNorm over 8 clips. "
        f"Precise BN on {config['precise_bn_videos']} training clips, then the test split "
        f"({config['test_videos']} videos). "
        "Training GFLOPs: fvcore forward GFLOPs of every training clip at its own shape.",
        "",
        tabulate(shown, headers="keys", tablefmt="github", showindex=False, disable_numparse=True),
        "",
    ]
    if difference is not None:
        lines += [f"Multigrid minus standard, paired by seed: {format_ci(difference, '.1f')} points of top-1.", ""]
    lines += [provenance_line(summary), ""]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = StudyConfig()
    parser.add_argument("--seeds", type=int, default=defaults.seeds,
                        help="seeds 0..K-1 per schedule (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs,
                        help="standard epochs; multigrid trains epochs x the epoch factor (default: %(default)s)")
    parser.add_argument("--processes", type=int, default=defaults.processes,
                        help="runs in parallel, one torch thread each (default: %(default)s)")


def main(args: argparse.Namespace) -> int:
    config = from_args(StudyConfig, args)
    summary = run_study(args.store, config)
    print(render_markdown(summary))
    print("wrote " + ", ".join(summary["outputs"]) + f" and {summary['path']}")
    return 0
