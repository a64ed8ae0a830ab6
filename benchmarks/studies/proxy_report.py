"""The CPU proxy's table and figure from its stored summary (``benchmarks.studies.proxy``): ``proxy_table1.md``
and ``proxy_flops.png``, with the studies of the same data that register an overlay drawn on the figure.
Kept apart from the runner so that ``figures`` renders it without importing torch or the training code."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from benchmarks.core.plots import save_figure
from benchmarks.core.statistics import format_ci, mean_ci
from benchmarks.core.store import Store, provenance_line, write_text
from benchmarks.studies.reports import PROXY_OVERLAYS, load
from benchmarks.table1 import report

CHANCE = 100 / 3


def proxy_table(summary: dict) -> pd.DataFrame:
    """One row per variant, in run order: top-1 mean/std over seeds, GFLOPs, parameters, time."""
    records = []
    for variant, runs in pd.DataFrame(summary["runs"]).groupby("variant", sort=False):
        first = runs.iloc[0]
        top1 = mean_ci(runs["top1"].tolist())
        records.append({
            "variant": variant,
            "row": int(first["row"]),
            "table1_model": first["table1_model"],
            "grw": bool(first["grw"]),
            "lr": float(first["lr"]),
            "epochs": int(first["epochs"]),
            "grw_weight": first["grw_weight"],
            "top1": top1["mean"],
            "top1_std": top1["std"],
            "top1_text": format_ci(top1, ".1f", interval=False),
            "gflops_per_clip": float(first["gflops_per_clip"]),
            "params_m": float(first["params_m"]),
            "train_time_s": runs["train_time_s"].mean(),
            "seeds": len(runs),
        })
    return pd.DataFrame.from_records(records)


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The proxy table's human-readable columns."""
    return pd.DataFrame({
        "model": table["variant"],
        "stands for (Table 1 row)": [f"{name} ({row})" for name, row in zip(table["table1_model"], table["row"])],
        "GRW weight": [f"{w:g}" if grw else "" for grw, w in zip(table["grw"], table["grw_weight"])],
        "epochs": table["epochs"],
        "lr": table["lr"].map(lambda v: f"{v:g}"),
        "test top-1 (%)": table["top1_text"],
        "GFLOPs per clip (proxy input)": table["gflops_per_clip"].map(lambda v: f"{v:.4f}"),
        "params (M)": table["params_m"].map(lambda v: f"{v:.2f}"),
        "train time (s)": table["train_time_s"].map(lambda v: f"{v:.0f}"),
    })


def render_markdown(summary: dict, table: pd.DataFrame) -> str:
    config = summary["config"]
    grw = summary["grw"]
    seeds = int(table["seeds"].max())
    lines = [
        "# CPU proxy of Table 1 on synthetic data (warm-up airplanes): NOT Kinetics-600",
        "",
        f"Every model is trained from scratch ({_count(seeds, 'seed')}; epochs and learning rate per model in the "
        f"table) on the {config['train_videos']:,} synthetic training videos of the warm-up airplanes (3 classes: "
        f"yaw, pitch, roll; chance {CHANCE:.1f}%) at {config['size']} x {config['size']} px, "
        f"{config['frames']}-frame clips, on CPU, and evaluated on its {config['test_videos']} test videos. "
        "GFLOPs: fvcore, per clip, at this input (not at the Table 1 input). These numbers say nothing about "
        "Kinetics-600 accuracy; the Kinetics-600 table is `results/table1.md`, which never shows these runs.",
        "",
        f"GRW: window {grw['window']}, alpha {grw['alpha']}, weight per model in the table (head on MoViNet, "
        "intermediate taps on MobileNetV3). Frame-wise MobileNetV3 averages per-frame logits and cannot see "
        "motion, which is all that separates the classes: it is the control.",
        "",
        f"Recipe: batch {config.get('batch_size', '?')}, AdamW at each model's lr (column), "
        f"{config.get('warmup_epochs', '?')} warm-up epochs then cosine, no EMA, "
        f"{_crops(config.get('crop_min_area', 0.25))}, horizontal flips; "
        + ("BatchNorm statistics recomputed on the training clips before evaluation (precise BN)."
           if config.get("precise_bn") else "BatchNorm statistics as trained."),
        "",
        tabulate(display_table(table), headers="keys", tablefmt="github", showindex=False,
                 disable_numparse=True),
        "",
        provenance_line(summary),
        "",
    ]
    return "\n".join(lines)


def _crops(min_area: float) -> str:
    return "whole frames" if min_area >= 1 else f"training crops covering {min_area:.0%}-100% of the frame"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def point_labels(table: pd.DataFrame, tolerance: float = 2.0) -> pd.Series:
    """Each point's label in the figure: the variant's number (1, 2, ... in table order). Variants at
    the same GFLOPs whose top-1 lie within ``tolerance`` points of each other (with and without GRW
    at chance, say) share one label, ``"3,4"``, on the first of them; the others get none."""
    labels = pd.Series("", index=table.index)
    for _, group in table.groupby(table["gflops_per_clip"].round(6), sort=False):
        clusters: list[list[int]] = []
        for index, top1 in group["top1"].sort_values().items():
            if clusters and top1 - table.loc[clusters[-1][-1], "top1"] <= tolerance:
                clusters[-1].append(index)
            else:
                clusters.append([index])
        for cluster in clusters:
            cluster.sort()
            labels[cluster[0]] = ",".join(str(index + 1) for index in cluster)
    return labels


def plot_proxy(table: pd.DataFrame, path: Path,
               overlays: Sequence[tuple[Callable[[Any, dict], None], dict]] = ()) -> list[Path]:
    """Test top-1 vs GFLOPs per clip at the proxy input; points numbered, the key beside the axes; with
    ``overlays``, (draw, summary) pairs of studies of the same data and input (the A3D and VA-RED2
    studies, say: :data:`benchmarks.studies.reports.PROXY_OVERLAYS`), their models too."""
    points = pd.DataFrame({
        "row": table["row"],
        "label": point_labels(table),
        "grw": table["grw"],
        "top1": table["top1"],
        "top1_source": "proxy (airplanes)",
        "gflops": table["gflops_per_clip"],
        "gflops_source": "measured",
    })
    fig = report.pareto_figure(points, "CPU proxy on synthetic warm-up airplanes (NOT Kinetics-600)",
                               xlabel="GFLOPs per clip at the proxy input (log2)", arrow=False, join_grw=False)
    fig.set_size_inches(14, 6)
    fig.subplots_adjust(right=0.6)
    ax = fig.axes[0]
    ax.margins(x=0.15, y=0.1)
    for draw, summary in overlays:
        draw(ax, summary)
    ax.legend(loc="upper left", bbox_to_anchor=(1.03, 0.62), fontsize=8)
    ax.axhline(CHANCE, color="gray", ls="--", lw=1)
    ax.text(1.0, CHANCE, "chance ", transform=ax.get_yaxis_transform(), ha="right", va="bottom", fontsize=8,
            color="gray")
    key = [f"{number}  {name}: {top1}%" for number, (name, top1) in
           enumerate(zip(table["variant"], table["top1_text"]), start=1)]
    ax.text(1.03, 1.0, "\n".join(key), transform=ax.transAxes, va="top", fontsize=9, family="monospace")
    return save_figure(fig, [path])


def overlays(store: Store) -> list[tuple[Callable[[Any, dict], None], dict]]:
    """(draw, newest summary) of every registered overlay study stored in ``store``, in registration order."""
    found = []
    for _, overlay in PROXY_OVERLAYS.items():
        summary = overlay.latest(store)
        if summary is not None:
            found.append((load(overlay.draw), summary))
    return found


def write_outputs(summary: dict, out_dir: Path) -> list[Path]:
    """``proxy_table1.md`` and ``proxy_flops.png`` from a proxy summary (the figure with the newest studies
    of :data:`~benchmarks.studies.reports.PROXY_OVERLAYS` in the same results store, where there are some)."""
    table = proxy_table(summary)
    markdown = write_text(out_dir / "proxy_table1.md", render_markdown(summary, table))
    return [markdown, *plot_proxy(table, out_dir / "proxy_flops.png", overlays(Store(out_dir)))]


def redraw_latest(store: Store) -> list[Path]:
    """The outputs of the newest stored proxy run again, if there is one: a study its figure draws (an
    overlay) calls this after storing itself (``benchmarks.studies.harness.store_summary``)."""
    summary = store.latest("proxy", "proxy")
    return write_outputs(summary, store.root) if summary else []
