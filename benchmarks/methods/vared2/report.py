"""The VA-RED2 study's outputs from its stored summary (``benchmarks.methods.vared2.study``): ``vared2_airplanes.md``
(per model and split: top-1, GFLOPs per video, the share of layers at each reduced option) and
``vared2_airplanes.png`` (what each designed split's videos spent). Kept apart from the study's runner so
that the proxy's figure can draw it too."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from tabulate import tabulate

from benchmarks.core.plots import save_figure
from benchmarks.core.store import provenance_line, write_text

SHARES = ("share_R2", "share_r_half", "share_skipped")
FIGURE = "vared2_airplanes.png"


def write_outputs(summary: dict, out_dir: Path) -> list[Path]:
    """``vared2_airplanes.md`` and ``vared2_airplanes.png`` (with the evaluations' per-video CSVs in ``runs/``)."""
    videos = per_video(summary, out_dir / "runs")
    skipped = skipped_layers(videos[videos["split"] == "test"])
    return [write_text(out_dir / "vared2_airplanes.md", render_markdown(summary, skipped)),
            *plot_spending(summary, videos, out_dir / FIGURE)]


def per_video(summary: dict, runs_dir: Path) -> pd.DataFrame:
    """Every fine-tuned VA-RED2 evaluation's per-video CSV (GFLOPs, each layer's option), with seed and split."""
    runs = [run for run in summary["runs"] if run["model"] == "vared2"]
    tables = [pd.read_csv(runs_dir / Path(run["run"]).with_suffix(".per_video.csv").name) for run in runs]
    keys = [(run["seed"], run["split"]) for run in runs]
    frame = pd.concat(tables, keys=keys, names=["seed", "split", None]).copy()  # one block: cheap to add columns to
    return frame.reset_index(["seed", "split"])


def skipped_layers(videos: pd.DataFrame) -> pd.Series:
    """Per dynamic layer, the share of ``videos`` for which it computed nothing, largest first."""
    factors = videos[[column for column in videos.columns if column.endswith(" R")]]
    return (factors == 0).mean().rename(lambda column: column[: -len(" R")]).sort_values(ascending=False)


def plot_spending(summary: dict, videos: pd.DataFrame, path: Path) -> list[Path]:
    """Histograms of the GFLOPs each designed split's videos spent (all seeds), plain X3D-XS as a line."""
    spending = videos[["gflops", "seed", "split"]]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bins = np.linspace(spending["gflops"].min(), spending["gflops"].max(), 30)
    designed = [split for split in dict.fromkeys(spending["split"]) if split != "test"]  # static, slow, fast
    for split, color in zip(designed, ("tab:green", "tab:blue", "tab:red", "tab:purple", "tab:brown")):
        values = spending.loc[spending["split"] == split, "gflops"]
        ax.hist(values, bins=bins, histtype="step", lw=1.5, color=color,
                label=f"{split}: mean {values.mean():.4g} ({len(values)} videos)")
    plain = [run["gflops_mean"] for run in summary["runs"] if run["model"] == "x3d"]
    if plain:
        ax.axvline(plain[0], color="black", ls="--", lw=1, label=f"plain X3D-XS: {plain[0]:.4g}")
    ax.set_xlabel("GFLOPs spent per video (one clip)")
    ax.set_ylabel("videos (all seeds)")
    ax.set_title("X3D-XS + VA-RED2 on the synthetic airplanes (NOT Kinetics): what each video spent", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, [path])


def study_table(summary: dict) -> pd.DataFrame:
    """Per model and split, means over seeds of top-1 and of the per-video GFLOPs mean, min and max."""
    runs = pd.DataFrame(summary["runs"])
    table = runs.groupby(["model", "split"], sort=False).agg(
        top1=("top1", "mean"), top1_std=("top1", "std"), gflops_mean=("gflops_mean", "mean"),
        gflops_min=("gflops_min", "min"), gflops_max=("gflops_max", "max"), seeds=("seed", "nunique"),
        **{share: (share, "mean") for share in SHARES if share in runs})
    return table.reset_index()


def render_markdown(summary: dict, skipped: pd.Series | None = None, shown_layers: int = 12) -> str:
    """The study's table; with ``skipped`` (:func:`skipped_layers` on the test split), the layers that
    computed nothing most often."""
    table = study_table(summary)
    shown = table.assign(**{"top-1 (%)": [f"{m:.1f} ± {s:.1f}" if s == s else f"{m:.1f}"
                                          for m, s in zip(table["top1"], table["top1_std"])]})
    shares = [share for share in SHARES if share in shown]
    shown = shown.assign(**{share: shown[share].map(lambda v: "-" if v != v else f"{v:.3f}") for share in shares})
    shown = shown[["model", "split", "top-1 (%)", "gflops_mean", "gflops_min", "gflops_max", *shares, "seeds"]]
    return "\n".join([
        "# X3D-XS with and without VA-RED2 on the warm-up airplanes (synthetic, NOT Kinetics)",
        "",
        "Models: x3d, plain X3D-XS; vared2-joint, X3D-XS + VA-RED2 after the joint stage (accuracy loss only); "
        "vared2, after fine-tuning with the efficiency loss. "
        "GFLOPs: per video, what each video's gates chose (static layers by fvcore, dynamic layers by their "
        "multiply-adds; gates and cheap operations excluded); plain X3D-XS spends the same on every video. "
        "test_static / test_slow / test_fast: the test videos with the airplane still, turning slowly, turning fast. "
        "share_R2 / share_r_half / share_skipped: over every video and dynamic layer, the share that computed "
        "every 2nd frame, half the channels, nothing (means over seeds).",
        "",
        tabulate(shown, headers="keys", tablefmt="github", showindex=False, floatfmt=".4g"),
        "",
        *([f"The {shown_layers} dynamic layers of the fine-tuned VA-RED2 that computed nothing most often "
           "(share of the test videos, all seeds):", "",
           tabulate(skipped.head(shown_layers).rename("skipped").reset_index().rename(columns={"index": "layer"}),
                    headers="keys", tablefmt="github", showindex=False, floatfmt=".2f"), ""]
          if skipped is not None and len(skipped) else []),
        provenance_line(summary),
        "",
    ])


def draw_study(ax, summary: dict) -> None:
    """X3D-XS + VA-RED2 on the test split: top-1 (mean, std over seeds) at the mean GFLOPs its videos
    spent, with the range from the cheapest to the dearest video."""
    table = study_table(summary).set_index(["model", "split"])
    if ("vared2", "test") not in table.index:
        return
    test = table.loc[("vared2", "test")]
    spread = [[test["gflops_mean"] - test["gflops_min"]], [test["gflops_max"] - test["gflops_mean"]]]
    ax.errorbar([test["gflops_mean"]], [test["top1"]], xerr=spread, yerr=[test["top1_std"]], fmt="D",
                color="tab:green", capsize=3,
                label="X3D-XS + VA-RED2: mean GFLOPs per video (bar: cheapest to dearest video)")
