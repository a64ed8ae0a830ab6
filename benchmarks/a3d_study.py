"""One A3D model against separately trained X3D models on the CPU proxy's data (``run a3d-study``).

Not Kinetics. On the warm-up airplanes at the proxy's input and recipe (``benchmarks.proxy.ProxyConfig``:
3,000 training videos, 6-frame clips at 32 px, AdamW, 2 epochs), per seed:

- one adaptive X3D-XS trained with ``--method a3d`` (``benchmarks.a3d``), then swept: every configuration
  of its range evaluated with BatchNorm recalibrated, the configuration-budget table chosen on the
  validation split, test top-1 reported (``benchmarks.a3d_sweep``);
- plain X3D-XS models trained and tested at the inputs of a few configurations of full width
  (``BASELINES``: the full clip, fewer frames at a smaller side, ...), each with precise BN as in the proxy.

The figure ``a3d_airplanes.png`` draws test top-1 against fvcore GFLOPs per clip: each seed's A3D budget
table as a line, the separately trained models as points (mean and std over seeds); the proxy's figure
draws them too. ``a3d_airplanes.md`` sets, at each baseline's input, the separately trained models against
the A3D models evaluated at that configuration (their sweeps). The summary with every run goes to
``runs/a3d/a3d-study-<time>.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from tabulate import tabulate

from benchmarks.a3d import A3D_RANGES, Configuration
from benchmarks.a3d_sweep import sweep
from benchmarks.cli import from_args
from benchmarks.geometry import mean_ci
from benchmarks.paths import REPO_ROOT
from benchmarks.processes import map_in_processes
from benchmarks.proxy import ProxyConfig, prepare_data, train_and_test
from benchmarks.proxy import write_outputs as write_proxy_outputs
from benchmarks.report import save_figure
from benchmarks.runs import RunConfig
from benchmarks.store import Store, provenance, read_json, write_json, write_text
from benchmarks.train import train

ROW = 5  # X3D-XS
BASELINES = ("1x1x1", "1x0.71x0.5", "1x0.57x0.25")  # inputs of separately trained X3D-XS models (width 1)
FIGURE = "a3d_airplanes.png"
TABLE = "a3d_airplanes.md"


@dataclass(frozen=True)
class A3DStudyConfig:
    seeds: int = 3
    a3d_range: str = "[0.016,1]"
    calibration_videos: int = 300
    processes: int = 2
    work: str = str(REPO_ROOT / "runs_local" / "a3d")

    def __post_init__(self) -> None:
        if min(self.seeds, self.processes, self.calibration_videos) < 1:
            raise ValueError("expected at least 1 seed, process and calibration video")
        if self.a3d_range not in A3D_RANGES:
            raise ValueError(f"a3d_range must be one of {tuple(A3D_RANGES)}, got {self.a3d_range!r}")


def run_config(proxy: ProxyConfig, seed: int, out: str, method: str = "standard",
               configuration: Configuration | None = None, a3d_range: str = "[0.016,1]") -> RunConfig:
    """X3D-XS at the proxy's recipe; a baseline at its configuration's input, A3D at the full input."""
    frames, side = (configuration or Configuration()).input_shape(proxy.frames, proxy.size)
    return RunConfig(row=ROW, data=proxy.data, out=out, recipe=proxy.recipe(seed), method=method, frames=frames,
                     res=side, fps=proxy.fps, a3d_range=a3d_range, validate=False, num_workers=0, cache_videos=True,
                     device="cpu", log_every=10_000)


def run_a3d(proxy: ProxyConfig, config: A3DStudyConfig, seed: int, store: Store) -> dict:
    """Train one A3D model and sweep it; its budget table with test top-1."""
    run = run_config(proxy, seed, f"{config.work}/a3d-seed{seed}", "a3d", a3d_range=config.a3d_range)
    summary = train(run)
    record = sweep(summary["last_checkpoint"], proxy.data, store, calibration_videos=config.calibration_videos)
    return {"kind": "a3d", "seed": seed, "budget_table": record["budget_table"],
            "train_time_s": sum(epoch["time_s"] for epoch in summary["history"]), "sweep": record["path"]}


def run_baseline(proxy: ProxyConfig, config: A3DStudyConfig, name: str, seed: int, store: Store) -> dict:
    """Train and test one plain X3D-XS at a configuration's input."""
    configuration = Configuration.parse(name)
    run = run_config(proxy, seed, f"{config.work}/x3d-{name}-seed{seed}", configuration=configuration)
    summary, record = train_and_test(run, store, proxy.precise_bn_videos)
    return {"kind": "x3d", "seed": seed, "configuration": name, "top1": record["top1"],
            "gflops": record["gflops_per_view"], "train_time_s": sum(epoch["time_s"] for epoch in summary["history"]),
            "run": record["path"]}


def _job(kind: str, *args):
    return run_a3d(*args) if kind == "a3d" else run_baseline(*args)


def run_study(store: Store, config: A3DStudyConfig, proxy: ProxyConfig | None = None) -> dict:
    """A3D and the baselines for every seed, two runs at a time; the summary stored, the figure drawn."""
    proxy = proxy or ProxyConfig()
    started = time.perf_counter()
    prepare_data(proxy)
    jobs = [("a3d", proxy, config, seed, store) for seed in range(config.seeds)]
    jobs += [("x3d", proxy, config, name, seed, store) for name in BASELINES for seed in range(config.seeds)]
    runs = map_in_processes(_job, jobs, config.processes, "A3D study")
    summary = {"experiment": "a3d-vs-x3d", "dataset": "warmup-airplanes (synthetic)",
               "config": dataclasses.asdict(config), "proxy": dataclasses.asdict(proxy), "runs": runs,
               "wall_time_s": round(time.perf_counter() - started, 1), **provenance("cpu")}
    summary["path"] = str(write_json(store.new_run_path("a3d-study", "a3d"), summary))
    proxy_summary = store.latest("proxy", "proxy")  # its figure shows the newest A3D study: redrawn
    proxy_outputs = write_proxy_outputs(proxy_summary, store.root) if proxy_summary else []
    summary["outputs"] = [str(path) for path in [*write_outputs(summary, store.root), *proxy_outputs]]
    return summary


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
        f"Command: `{summary['command']}`; commit {summary['git_commit']}; {summary['hardware']}; {summary['date']}; "
        f"{summary['wall_time_s'] / 60:.0f} min in all.",
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
                capsize=3, label="X3D-XS trained at a configuration's input (A3D study; mean, std over seeds)")
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = A3DStudyConfig()
    parser.add_argument("--seeds", type=int, default=defaults.seeds, help="(default: %(default)s)")
    parser.add_argument("--a3d-range", choices=tuple(A3D_RANGES), default=defaults.a3d_range)
    parser.add_argument("--processes", type=int, default=defaults.processes,
                        help="runs in parallel, one torch thread each (default: %(default)s)")


def main(args: argparse.Namespace) -> int:
    summary = run_study(args.store, from_args(A3DStudyConfig, args))
    print(baseline_table(summary).to_string(index=False))
    print("wrote " + ", ".join(summary["outputs"]) + f" and {summary['path']}")
    return 0
