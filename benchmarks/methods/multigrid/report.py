"""The multigrid study's table from its stored summary (``benchmarks.methods.multigrid.study``):
``multigrid_airplanes.md``. Kept apart from the runner so that ``figures`` renders it without torch."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from tabulate import tabulate

from benchmarks.core.statistics import format_ci, mean_ci, paired_difference
from benchmarks.core.store import provenance_line, write_text
from benchmarks.methods.multigrid.options import lr_steps

TABLE = "multigrid_airplanes.md"


def write_outputs(summary: dict, out_dir: Path) -> list[Path]:
    return [write_text(out_dir / TABLE, render_markdown(summary))]


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
        f"x0.1 at epochs {', '.join(map(str, lr_steps(config['epochs'], config['lr_decays'])))} of {config['epochs']}, "
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
