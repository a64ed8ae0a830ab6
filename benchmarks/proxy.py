"""A CPU-scale proxy of Table 1 on synthetic data (``python -m benchmarks.run proxy``).

Not Kinetics-600. Each implemented family of Table 1's first rows (``VARIANTS``) is trained from
scratch on the warm-up airplanes in the warm-up setting of ``benchmarks.warmup`` (32 px, 6-frame
clips, the same recipe and GRW settings, a few epochs, one seed) and evaluated on their test split,
with the suite's own ``train`` and ``evaluate``. The runs are stored in ``results/runs/`` with
dataset ``warmup-airplanes``: the Kinetics-600 table names that dataset next to them and never
plots them. The proxy has its own outputs:

- ``proxy_table1.md``: test top-1 and GFLOPs per clip measured at the proxy input;
- ``proxy_flops.png``: top-1 vs those GFLOPs (``benchmarks.report.pareto_figure``);
- ``runs/proxy/proxy-<timestamp>.json``: the summary both are rendered from (per run: the
  row, GRW, top-1, GFLOPs, parameters, training time, the run file), the setting, provenance.

A frame-wise MobileNetV3 averages per-frame logits: it cannot see motion, and motion is all that
tells the airplane classes apart, so it is expected at chance (33.3%) with or without GRW taps.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from tabulate import tabulate
from tqdm import tqdm

from benchmarks import report
from benchmarks.cli import UsageError
from benchmarks.measure import count_params
from benchmarks.paths import REPO_ROOT
from benchmarks.runs import load_trained
from benchmarks.specs import get_spec, parse_rows
from benchmarks.store import Store, provenance, write_json, write_text
from benchmarks.warmup import WarmupConfig, format_mean_std, mean_std, prepare_data, setting, train_and_evaluate


@dataclass(frozen=True)
class Variant:
    """One proxy model: a Table 1 row, with GRW on or off (head rows keep their head either way)."""

    name: str
    row: int
    grw: bool


VARIANTS: tuple[Variant, ...] = (
    Variant("MoViNet-A0-S + GRW head", row=1, grw=True),
    Variant("MoViNet-A0-S head without GRW", row=1, grw=False),
    Variant("MobileNetV3-S", row=3, grw=False),
    Variant("MobileNetV3-S + GRW taps", row=3, grw=True),
    Variant("MobileNetV3-S + TSM", row=4, grw=False),
    Variant("MobileNetV3-S + TSM + GRW taps", row=4, grw=True),
    Variant("X3D-XS", row=5, grw=False),
)

# The warm-up setting with the proxy's own run directories and budget: 6 epochs x 7 models, one seed,
# about 25 minutes on 2 shared CPU cores.
PROXY = WarmupConfig(work=str(REPO_ROOT / "runs_local" / "proxy"), epochs=6, seeds=1)
CHANCE = 100 / 3


def select_variants(rows: str | None) -> tuple[Variant, ...]:
    """The variants of the given Table 1 rows (``"1,3"``), all of them for None."""
    if not rows:
        return VARIANTS
    wanted = {spec.row for spec in parse_rows(rows)}
    missing = wanted - {variant.row for variant in VARIANTS}
    if missing:
        raise ValueError(f"no proxy model for row(s) {sorted(missing)}; the proxy covers rows "
                         f"{sorted({variant.row for variant in VARIANTS})}")
    return tuple(variant for variant in VARIANTS if variant.row in wanted)


# --------------------------------------------------------------------------- runs


def run_variant(config: WarmupConfig, variant: Variant, seed: int, store: Store) -> dict:
    """Train and evaluate one variant; what the summary keeps of it."""
    summary, record = train_and_evaluate(config, variant.row, variant.grw, seed, store)
    model = load_trained(summary["last_checkpoint"], "raw").model
    return {
        "variant": variant.name,
        "row": variant.row,
        "table1_model": get_spec(variant.row).name,
        "grw": variant.grw,
        "seed": seed,
        "top1": record["top1"],
        "gflops_per_clip": record["gflops_per_view"],
        "params_m": count_params(model) / 1e6,
        "train_time_s": sum(epoch["time_s"] for epoch in summary["history"]),
        "run": Path(record["path"]).name,  # in results/runs/
    }


def run_proxy(store: Store, config: WarmupConfig = PROXY, variants: tuple[Variant, ...] = VARIANTS) -> dict:
    """Train and evaluate every variant for every seed, store the summary, write the table and figure."""
    started = time.perf_counter()
    prepare_data(config)
    jobs = [(variant, seed) for variant in variants for seed in range(config.seeds)]
    runs = [run_variant(config, variant, seed, store)
            for variant, seed in tqdm(jobs, desc="proxy runs", unit="run", file=sys.stderr)]
    summary = {
        "experiment": "table1-proxy",
        **setting(config),
        "runs": runs,
        "wall_time_s": round(time.perf_counter() - started, 1),
        **provenance("cpu"),
    }
    summary["path"] = str(write_json(store.new_run_path("proxy", "proxy"), summary))
    summary["outputs"] = [str(path) for path in write_outputs(summary, store.root)]
    return summary


# --------------------------------------------------------------------------- table and figure


def proxy_table(summary: dict) -> pd.DataFrame:
    """One row per variant, in run order: top-1 mean/std over seeds, GFLOPs, parameters, time."""
    records = []
    for variant, runs in pd.DataFrame(summary["runs"]).groupby("variant", sort=False):
        first = runs.iloc[0]
        top1 = mean_std(runs["top1"].tolist())
        records.append({
            "variant": variant,
            "row": int(first["row"]),
            "table1_model": first["table1_model"],
            "grw": bool(first["grw"]),
            "top1": top1["mean"],
            "top1_std": top1["std"],
            "top1_text": format_mean_std(top1, ".1f"),
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
        "GRW": table["grw"].map({True: "yes", False: ""}),
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
        f"Every model is trained from scratch for {_count(config['epochs'], 'epoch')} ({_count(seeds, 'seed')}) on "
        f"the {config['train_videos']:,} synthetic training videos of the warm-up airplanes (3 classes: yaw, pitch, "
        f"roll; chance {CHANCE:.1f}%) at {config['size']} x {config['size']} px, {config['frames']}-frame clips, on "
        f"CPU, and evaluated on its {config['test_videos']} test videos. GFLOPs: fvcore, per clip, at this input "
        "(not at the Table 1 input). These numbers say nothing about Kinetics-600 accuracy; the Kinetics-600 "
        "table is `results/table1.md`, where these runs only appear labelled `warmup-airplanes`.",
        "",
        f"GRW: weight {grw['weight']}, window {grw['window']}, alpha {grw['alpha']} (head on MoViNet, "
        "intermediate taps on MobileNetV3). Frame-wise MobileNetV3 averages per-frame logits and cannot see "
        "motion, which is all that separates the classes.",
        "",
        tabulate(display_table(table), headers="keys", tablefmt="github", showindex=False,
                 disable_numparse=True),
        "",
        f"Command: `{summary['command']}`; commit {summary['git_commit']}; {summary['hardware']}; "
        f"{summary['date']}; {summary['wall_time_s'] / 60:.0f} min in all.",
        "",
    ]
    return "\n".join(lines)


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


def plot_proxy(table: pd.DataFrame, path: Path) -> list[Path]:
    """Test top-1 vs GFLOPs per clip at the proxy input; points numbered, the key beside the axes."""
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
    fig.set_size_inches(12, 6)
    fig.subplots_adjust(right=0.68)
    ax = fig.axes[0]
    ax.margins(x=0.15, y=0.1)
    ax.legend(loc="best", fontsize=8)
    ax.axhline(CHANCE, color="gray", ls="--", lw=1)
    ax.text(1.0, CHANCE, "chance ", transform=ax.get_yaxis_transform(), ha="right", va="bottom", fontsize=8,
            color="gray")
    key = [f"{number}  {name}: {top1}%" for number, (name, top1) in
           enumerate(zip(table["variant"], table["top1_text"]), start=1)]
    ax.text(1.03, 1.0, "\n".join(key), transform=ax.transAxes, va="top", fontsize=9, family="monospace")
    return report.save_figure(fig, [path])


def write_outputs(summary: dict, out_dir: Path) -> list[Path]:
    """``proxy_table1.md`` and ``proxy_flops.png`` from a proxy summary."""
    table = proxy_table(summary)
    markdown = write_text(out_dir / "proxy_table1.md", render_markdown(summary, table))
    return [markdown, *plot_proxy(table, out_dir / "proxy_flops.png")]


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", help="comma-separated Table 1 rows whose proxy models to run (default: all of "
                        f"{', '.join(str(row) for row in sorted({variant.row for variant in VARIANTS}))})")


def main(args: argparse.Namespace) -> int:
    """Runs in this process, one thread; ``--rows`` picks variants."""
    try:
        variants = select_variants(args.rows)
    except ValueError as error:
        raise UsageError(str(error)) from error
    torch.set_num_threads(1)  # the 2 shared cores: more threads spin against each other
    summary = run_proxy(args.store, PROXY, variants)
    print(tabulate(display_table(proxy_table(summary)), headers="keys", tablefmt="github", showindex=False,
                   disable_numparse=True))
    print("wrote " + ", ".join(summary["outputs"]) + f" and {summary['path']}")
    return 0
