"""The other efficiency methods' published Kinetics-400 numbers, as each method registers them.

Kinetics-400, not the Kinetics-600 of Table 1: these points are never drawn in the Table 1 figure. A
method folder registers its loader in :data:`KINETICS400` (a :class:`PublishedPoints`, the loader as a
``"module:function"`` string): A3D (seed 002) reads ``results/published/a3d.csv`` (Table 1: A3D-Slow
and A3D-SlowFast at several budgets, their Slow and SlowFast baselines, X3D-M), VA-RED2 (seed 004)
``results/published/vared2.csv`` (Table 5: R(2+1)D, I3D and X3D-M with and without VA-RED2), as
published; GFLOPs are per view, top-1 is the paper's video top-1. ``figures`` draws them in
``k400_adaptive_flops.png``; ``compare`` lists them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.core.paths import REPO_ROOT
from benchmarks.core.registry import Registry

if TYPE_CHECKING:
    import pandas as pd

PUBLISHED = REPO_ROOT / "results" / "published"
FIGURE = "k400_adaptive_flops.png"
STYLES = ("budgets", "arrows")


@dataclass(frozen=True)
class PublishedPoints:
    """One paper's published Kinetics-400 points: ``load(published_dir)`` returns a frame with columns
    paper, method ("baseline" or the method's name), series, label, gflops, top1, source. ``style``:
    ``"budgets"`` joins a series' points of the method (one model at several budgets); ``"arrows"`` draws
    an arrow from each series' baseline to its point of the method."""

    caption: str  # in the figure's title, e.g. "A3D (seed 002, Table 1)"
    style: str
    load: str  # "module:function"

    def points(self, published: Path) -> pd.DataFrame:
        module, _, name = self.load.partition(":")
        return getattr(importlib.import_module(module), name)(published).assign(style=self.style)


KINETICS400: Registry[PublishedPoints] = Registry("published Kinetics-400 points")


def published_points(published: Path = PUBLISHED) -> pd.DataFrame:
    """One row per published Kinetics-400 point of every registered paper: paper, method, series, model,
    GFLOPs per view, top-1, source, and the paper's drawing style."""
    import pandas as pd

    return pd.concat([entry.points(published) for _, entry in KINETICS400.items()], ignore_index=True)


def title() -> str:
    captions = [entry.caption for _, entry in KINETICS400.items()]
    listed = " and ".join([", ".join(captions[:-1]), captions[-1]]) if len(captions) > 1 else "".join(captions)
    return f"Kinetics-400, published: {listed}\nnot Kinetics-600: not comparable with Table 1's figure"


def plot(points: pd.DataFrame, path: Path) -> list[Path]:
    """Top-1 vs GFLOPs per view: a "budgets" method's points joined per trained model, an "arrows" method's
    arrows from each base model to its version, baselines as open circles."""
    import matplotlib.pyplot as plt

    from benchmarks.core.plots import save_figure

    fig, ax = plt.subplots(figsize=(9, 6))
    budgets = points[(points["style"] == "budgets") & (points["method"] != "baseline")]
    for series, group in budgets.groupby("series", sort=False):
        group = group.sort_values("gflops")
        ax.plot(group["gflops"], group["top1"], marker="o", lw=1.5, label=f"{series} (one model)")
    baselines = points[points["method"] == "baseline"]
    ax.scatter(baselines["gflops"], baselines["top1"], facecolors="none", edgecolors="black", s=40,
               label="baselines as published", zorder=3)
    for paper, arrows in points[points["style"] == "arrows"].groupby("paper", sort=False):
        for _, group in arrows.groupby("series", sort=False):
            base, adaptive = group[group["method"] == "baseline"], group[group["method"] != "baseline"]
            if len(base) == 1 and len(adaptive) == 1:
                ax.annotate("", xy=(adaptive["gflops"].iloc[0], adaptive["top1"].iloc[0]),
                            xytext=(base["gflops"].iloc[0], base["top1"].iloc[0]),
                            arrowprops=dict(arrowstyle="->", color="tab:purple", lw=1.2))
        adapted = arrows[arrows["method"] != "baseline"]
        method = adapted["method"].iloc[0] if len(adapted) else paper
        ax.scatter(adapted["gflops"], adapted["top1"], marker="s", color="tab:purple", s=30,
                   label=f"{method} (arrow from its base model)", zorder=3)
    for _, p in points.iterrows():
        ax.annotate(p["label"], (p["gflops"], p["top1"]), textcoords="offset points", xytext=(4, 3), fontsize=6)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("GFLOPs per view (log2), as published")
    ax.set_ylabel("Kinetics-400 top-1 (%), as published")
    ax.set_title(title(), fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    return save_figure(fig, [path])


def table(points: pd.DataFrame) -> pd.DataFrame:
    """The points as ``compare`` prints them."""
    import pandas as pd

    return pd.DataFrame({"paper": points["paper"], "model": points["label"], "method": points["method"],
                         "GFLOPs/view": points["gflops"].map(lambda v: f"{v:g}"),
                         "top-1 (K400)": points["top1"].map(lambda v: f"{v:.1f}"),
                         "reproduced here": "no (airplanes proxy)"})


def write_figure(out_dir: Path, published: Path = PUBLISHED) -> list[Path]:
    return plot(published_points(published), out_dir / FIGURE)
