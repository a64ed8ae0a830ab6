"""One A3D model against separately trained X3D models on the CPU proxy's data (``run a3d-study``).

Not Kinetics. On the warm-up airplanes at the proxy's input and recipe (``benchmarks.studies.proxy.ProxyConfig``:
3,000 training videos, 6-frame clips at 32 px, AdamW, 2 epochs), per seed:

- one adaptive X3D-XS trained with ``--method a3d`` (``benchmarks.methods.a3d.model``), then swept: every configuration
  of its range evaluated with BatchNorm recalibrated, the configuration-budget table chosen on the
  validation split, test top-1 reported (``benchmarks.methods.a3d.sweep``);
- plain X3D-XS models trained and tested at the inputs of a few configurations of full width
  (``BASELINES``: the full clip, fewer frames at a smaller side, ...), each with precise BN as in the proxy.

The outputs (``benchmarks.methods.a3d.report``): the figure ``a3d_airplanes.png`` draws test top-1 against fvcore
GFLOPs per clip, each seed's A3D budget table as a line and the separately trained models as points (mean
and std over seeds); the proxy's figure draws them too. ``a3d_airplanes.md`` sets, at each baseline's
input, the separately trained models against the A3D models evaluated at that configuration (their
sweeps). The summary with every run goes to ``runs/a3d/a3d-study-<time>.json``.
"""

from __future__ import annotations

import dataclasses
import time

from benchmarks.core.cli import from_args
from benchmarks.core.store import Store
from benchmarks.engine.config import RunConfig
from benchmarks.engine.train import train
from benchmarks.methods.a3d.model import Configuration
from benchmarks.methods.a3d.options import A3DStudyConfig
from benchmarks.methods.a3d.options import StudyOptions as Options  # declared in __init__: --help reads it there
from benchmarks.methods.a3d.report import baseline_table, write_outputs
from benchmarks.methods.a3d.sweep import sweep
from benchmarks.studies.harness import CPU_RUN, announce, run_jobs, store_summary, training_seconds
from benchmarks.studies.proxy import ProxyConfig, prepare_data, train_and_test

ROW = 5  # X3D-XS
BASELINES = ("1x1x1", "1x0.71x0.5", "1x0.57x0.25")  # inputs of separately trained X3D-XS models (width 1)


def run_config(proxy: ProxyConfig, seed: int, out: str, method: str = "standard",
               configuration: Configuration | None = None, a3d_range: str = "[0.016,1]") -> RunConfig:
    """X3D-XS at the proxy's recipe; a baseline at its configuration's input, A3D at the full input."""
    frames, side = (configuration or Configuration()).input_shape(proxy.frames, proxy.size)
    return RunConfig(row=ROW, data=proxy.data, out=out, recipe=proxy.recipe(seed), method=method, frames=frames,
                     res=side, fps=proxy.fps, method_options={"range": a3d_range} if method == "a3d" else {},
                     **CPU_RUN)


def run_a3d(proxy: ProxyConfig, config: A3DStudyConfig, seed: int, store: Store) -> dict:
    """Train one A3D model and sweep it; its budget table with test top-1."""
    run = run_config(proxy, seed, f"{config.work}/a3d-seed{seed}", "a3d", a3d_range=config.a3d_range)
    summary = train(run)
    record = sweep(summary["last_checkpoint"], proxy.data, store, calibration_videos=config.calibration_videos)
    return {"kind": "a3d", "seed": seed, "budget_table": record["budget_table"],
            "train_time_s": training_seconds(summary), "sweep": record["path"]}


def run_baseline(proxy: ProxyConfig, config: A3DStudyConfig, name: str, seed: int, store: Store) -> dict:
    """Train and test one plain X3D-XS at a configuration's input."""
    configuration = Configuration.parse(name)
    run = run_config(proxy, seed, f"{config.work}/x3d-{name}-seed{seed}", configuration=configuration)
    summary, record = train_and_test(run, store, proxy.precise_bn_videos)
    return {"kind": "x3d", "seed": seed, "configuration": name, "top1": record["top1"],
            "gflops": record["gflops_per_view"], "train_time_s": training_seconds(summary), "run": record["path"]}


def _job(kind: str, *args):
    return run_a3d(*args) if kind == "a3d" else run_baseline(*args)


def run_study(store: Store, config: A3DStudyConfig, proxy: ProxyConfig | None = None) -> dict:
    """A3D and the baselines for every seed, two runs at a time; the summary stored, the figure drawn."""
    proxy = proxy or ProxyConfig()
    started = time.perf_counter()
    prepare_data(proxy)
    jobs = [("a3d", proxy, config, seed, store) for seed in range(config.seeds)]
    jobs += [("x3d", proxy, config, name, seed, store) for name in BASELINES for seed in range(config.seeds)]
    runs = run_jobs(_job, jobs, config.processes, "A3D study")
    return store_summary(store, "a3d-study", "a3d", {
        "experiment": "a3d-vs-x3d", "dataset": "warmup-airplanes (synthetic)", "config": dataclasses.asdict(config),
        "proxy": dataclasses.asdict(proxy)}, runs, started, write_outputs)


def run(options: Options, store: Store) -> int:
    summary = run_study(store, from_args(A3DStudyConfig, options))
    return announce(summary, baseline_table(summary).to_string(index=False))
