"""The A3D study's outputs from its stored summary (``benchmarks.methods.a3d.study``): ``a3d_airplanes.png``, each
seed's budget table against the separately trained X3D-XS models, and ``a3d_airplanes.md``, both at each
baseline's input. Kept apart from the study's runner so that the proxy's figure can draw it too."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from tabulate import tabulate

from benchmarks.core.plots import save_figure
from benchmarks.core.statistics import mean_ci
from benchmarks.core.store import provenance_line, read_json, write_text

FIGURE = "a3d_airplanes.png"
TABLE = "a3d_airplanes.md"


def write_outputs(summary: dict, out_dir: Path) -> list[Path]:
    """``a3d_airplanes.png`` and ``a3d_airplanes.md`` (the latter from the sweeps stored in ``runs/a3d/``)."""
    table = matching_inputs(summary, out_dir / "runs" / "a3d")
    return [*plot(summary, out_dir / FIGURE), write_text(out_dir / TABLE, render_markdown(summary, table))]


def matching_inputs(summary: dict, sweeps_dir: Path) -> pd.DataFrame:
    """At each baseline's configuration: the separately trained X3D-XS and the A3D model evaluated at that
    configuration (its sweep), test top-1 mean and std over seeds each."""
    a3d = pd.concat([pd.DataFrame(read_json(sweeps_dir / Path(run["sweep"]).name)["configurations"]).assign(
        seed=run["seed"]) for run in summary["runs"] if run["kind"] == "a3d"], ignore_index=True)
    rows = []
    for baseline in baseline_table(summary).to_dict("records"):
        scores = a3d.loc[a3d["configuration"] == baseline["configuration"], "test_top1"].tolist()
        ci = mean_ci(scores) if scores else {"mean": float("nan"), "std": None}
        rows.append({**baseline, "a3d_top1": ci["mean"], "a3d_top1_std": ci["std"] or 0.0, "a3d_seeds": len(scores)})
    return pd.DataFrame(rows)


def render_markdown(summary: dict, table: pd.DataFrame) -> str:
    def text(mean: float, std: float, seeds: int) -> str:
        return f"{mean:.1f} ± {std:.1f} ({seeds})" if seeds else "not in the sweeps"

    shown = pd.DataFrame({
        "configuration (w x s x t)": table["configuration"], "GFLOPs per clip": table["gflops"].map("{:.4f}".format),
        "X3D-XS trained at it": [text(*v) for v in zip(table["top1"], table["top1_std"], table["seeds"])],
        "A3D X3D-XS at it": [text(*v) for v in zip(table["a3d_top1"], table["a3d_top1_std"], table["a3d_seeds"])],
    })
    return "\n".join([
        "# One A3D X3D-XS vs X3D-XS trained at each input, on the warm-up airplanes (synthetic, NOT Kinetics)",
        "",
        "Test top-1 (%), mean ± std over seeds (seeds in brackets), 100 test videos, chance 33.3 %. A3D: one "
        "model per seed evaluated at the configuration with BatchNorm recalibrated (its sweep); the figure "
        f"`{FIGURE}` has its whole budget table.",
        "",
        tabulate(shown, headers="keys", tablefmt="github", showindex=False, disable_numparse=True),
        "",
        provenance_line(summary),
        "",
    ])


def baseline_table(summary: dict) -> pd.DataFrame:
    """The separately trained models: per configuration, GFLOPs and test top-1 mean/std over seeds."""
    runs = pd.DataFrame([run for run in summary["runs"] if run["kind"] == "x3d"])
    rows = []
    for name, group in runs.groupby("configuration", sort=False):
        top1 = mean_ci(group["top1"].tolist())
        rows.append({"configuration": name, "gflops": group["gflops"].iloc[0], "top1": top1["mean"],
                     "top1_std": top1["std"] or 0.0, "seeds": len(group)})
    return pd.DataFrame(rows)


def draw_study(ax, summary: dict) -> None:
    """Each seed's A3D budget table as a line, the separately trained X3D-XS models as points."""
    for run in (r for r in summary["runs"] if r["kind"] == "a3d"):
        table = pd.DataFrame(run["budget_table"])
        ax.plot(table["gflops"], table["test_top1"], marker=".", color="tab:orange", alpha=0.8,
                label="A3D X3D-XS, one model per seed (budget table, chosen on val)" if run["seed"] == 0 else None)
    baselines = baseline_table(summary)
    ax.errorbar(baselines["gflops"], baselines["top1"], yerr=baselines["top1_std"], fmt="s", color="tab:purple",
                capsize=3, label="X3D-XS trained at an A3D configuration's input (mean, std)")
    for _, row in baselines.iterrows():
        ax.annotate(row["configuration"], (row["gflops"], row["top1"]), textcoords="offset points", xytext=(4, 4),
                    fontsize=8)


def plot(summary: dict, path) -> list:
    fig, ax = plt.subplots(figsize=(8, 5))
    draw_study(ax, summary)
    ax.axhline(100 / 3, color="gray", ls="--", lw=1)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("GFLOPs per clip (fvcore, log2)")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title("A3D vs separately trained X3D-XS on the synthetic airplanes (NOT Kinetics)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, [path])
