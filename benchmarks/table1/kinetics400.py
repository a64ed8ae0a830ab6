"""The other efficiency methods' published Kinetics-400 numbers: A3D (seed 002) and VA-RED2 (seed 004).

Kinetics-400, not the Kinetics-600 of Table 1: these points are never drawn in the Table 1 figure. They
come from ``results/published/a3d.csv`` (Table 1: A3D-Slow and A3D-SlowFast at several budgets, their
Slow and SlowFast baselines, X3D-M) and ``results/published/vared2.csv`` (Table 5: R(2+1)D, I3D and
X3D-M with and without VA-RED2), as published; GFLOPs are per view, top-1 is the paper's video top-1.
``figures`` draws them in ``k400_adaptive_flops.png``; ``compare`` lists them.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from benchmarks.core.paths import REPO_ROOT
from benchmarks.core.plots import save_figure

PUBLISHED = REPO_ROOT / "results" / "published"
A3D_BASELINES = ("Slow-8x8-P", "Slow-8x8-R", "SlowFast-4x16-P", "SlowFast-4x16-R", "X3D-M-P")
FIGURE = "k400_adaptive_flops.png"


def published_points(published: Path = PUBLISHED) -> pd.DataFrame:
    """One row per published Kinetics-400 point: method, series, model, GFLOPs per view, top-1, source."""
    a3d = pd.read_csv(published / "a3d.csv", dtype={"table": str})
    a3d = a3d[(a3d["table"] == "1") & (a3d["method"].eq("A3D") | a3d["model"].isin(A3D_BASELINES))]
    vared2 = pd.read_csv(published / "vared2.csv", dtype={"table": str})
    vared2 = vared2[(vared2["table"] == "5") & (vared2["dataset"] == "Kinetics-400")]
    frames = vared2["frames"].astype(int).astype(str)
    points = [
        pd.DataFrame({"paper": "A3D (seed 002)", "method": a3d["method"].where(a3d["method"] == "A3D", "baseline"),
                      "series": a3d["model"], "label": a3d["model"] + a3d["budget_ratio"].map(
                          lambda r: "" if pd.isna(r) else f" x{r:g}"),
                      "gflops": a3d["gflops"].astype(float), "top1": a3d["top1"].astype(float),
                      "source": a3d["source"]}),
        pd.DataFrame({"paper": "VA-RED2 (seed 004)", "method": vared2["method"].where(vared2["method"] == "VA-RED2",
                                                                                       "baseline"),
                      "series": vared2["model"] + " " + frames + " frames",
                      "label": vared2["model"] + " " + frames + "f",
                      "gflops": vared2["gflops"].astype(float), "top1": vared2["top1"].astype(float),
                      "source": vared2["source"]}),
    ]
    return pd.concat(points, ignore_index=True)


def plot(points: pd.DataFrame, path: Path) -> list[Path]:
    """Top-1 vs GFLOPs per view: A3D's budgets joined per trained model, VA-RED2 arrows from each base
    model to its VA-RED2 version, baselines as open circles."""
    fig, ax = plt.subplots(figsize=(9, 6))
    a3d = points[(points["paper"].str.startswith("A3D")) & (points["method"] == "A3D")]
    for series, group in a3d.groupby("series", sort=False):
        group = group.sort_values("gflops")
        ax.plot(group["gflops"], group["top1"], marker="o", lw=1.5, label=f"{series} (one model)")
    baselines = points[points["method"] == "baseline"]
    ax.scatter(baselines["gflops"], baselines["top1"], facecolors="none", edgecolors="black", s=40,
               label="baselines as published", zorder=3)
    vared2 = points[points["paper"].str.startswith("VA-RED2")]
    for _, group in vared2.groupby("series", sort=False):
        base, adaptive = group[group["method"] == "baseline"], group[group["method"] == "VA-RED2"]
        if len(base) == 1 and len(adaptive) == 1:
            ax.annotate("", xy=(adaptive["gflops"].iloc[0], adaptive["top1"].iloc[0]),
                        xytext=(base["gflops"].iloc[0], base["top1"].iloc[0]),
                        arrowprops=dict(arrowstyle="->", color="tab:purple", lw=1.2))
    ax.scatter(vared2.loc[vared2["method"] == "VA-RED2", "gflops"], vared2.loc[vared2["method"] == "VA-RED2", "top1"],
               marker="s", color="tab:purple", s=30, label="VA-RED2 (arrow from its base model)", zorder=3)
    for _, p in points.iterrows():
        ax.annotate(p["label"], (p["gflops"], p["top1"]), textcoords="offset points", xytext=(4, 3), fontsize=6)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("GFLOPs per view (log2), as published")
    ax.set_ylabel("Kinetics-400 top-1 (%), as published")
    ax.set_title("Kinetics-400, published: A3D (seed 002, Table 1) and VA-RED2 (seed 004, Table 5)\n"
                 "not Kinetics-600: not comparable with Table 1's figure", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    return save_figure(fig, [path])


def table(points: pd.DataFrame) -> pd.DataFrame:
    """The points as ``compare`` prints them."""
    return pd.DataFrame({"paper": points["paper"], "model": points["label"], "method": points["method"],
                         "GFLOPs/view": points["gflops"].map(lambda v: f"{v:g}"),
                         "top-1 (K400)": points["top1"].map(lambda v: f"{v:.1f}"),
                         "reproduced here": "no (see the airplanes proxy)"})


def write_figure(out_dir: Path, published: Path = PUBLISHED) -> list[Path]:
    return plot(published_points(published), out_dir / FIGURE)
