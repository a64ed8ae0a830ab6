"""X3D-XS with and without VA-RED2 on the CPU proxy's data, with per-video GFLOPs (``run vared2-study``).

Not Kinetics. On the warm-up airplanes at the proxy's input and recipe (``benchmarks.studies.proxy.ProxyConfig``),
per seed: plain X3D-XS (trained and tested as in the proxy), and X3D-XS with VA-RED2 (``--method vared2``:
the joint stage for the proxy's epochs, then the fine-tuning stage with the efficiency loss from its
weights for ``finetune_epochs``). X3D-M is the same network as X3D-XS at another input, so at the proxy's
input the two are one model. Every model is evaluated on the test split and on the designed splits of one
speed each (``benchmarks.data.airplanes.SPEED_SPLITS``: the airplane standing still, turning slowly, turning
fast): the question is whether the gates spend less on the easy (static, slow) videos than on the fast
ones. The answer is whatever the numbers say.

Outputs (``benchmarks.methods.vared2.report``; the proxy's figure draws the study too): ``vared2_airplanes.md``
(per model and split: top-1, mean/min/max GFLOPs per video, the share of layers at each reduced option,
over seeds), ``vared2_airplanes.png`` (per designed split, the histogram of the GFLOPs its videos spent)
and ``runs/vared2/vared2-study-<time>.json``; each evaluation is a stored run with its per-video CSV
(GFLOPs and each layer's option) and GFLOPs histogram.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pandas as pd

from benchmarks.core.cli import from_args
from benchmarks.core.store import Store
from benchmarks.data.airplanes import SPEED_SPLITS, generate_speed_splits
from benchmarks.engine.config import RunConfig
from benchmarks.engine.evaluate import EvalConfig, evaluate
from benchmarks.engine.train import train
from benchmarks.methods.vared2.options import StudyOptions as Options  # declared in __init__: --help reads it there
from benchmarks.methods.vared2.options import VARED2StudyConfig
from benchmarks.methods.vared2.report import render_markdown, write_outputs
from benchmarks.studies.harness import CPU_RUN, announce, run_jobs, store_summary, training_seconds
from benchmarks.studies.proxy import ProxyConfig, prepare_data, recalibrate_batchnorm

ROW = 5  # X3D-XS
SPLITS = ("test", *SPEED_SPLITS)


def run_config(proxy: ProxyConfig, seed: int, out: str, **changes) -> RunConfig:
    return RunConfig(**{**dict(row=ROW, data=proxy.data, out=out, recipe=proxy.recipe(seed), frames=proxy.frames,
                               res=proxy.size, fps=proxy.fps), **CPU_RUN, **changes})


def trained_checkpoints(proxy: ProxyConfig, config: VARED2StudyConfig, model: str, seed: int) -> dict[str, tuple]:
    """Train one model; per stage worth evaluating, its last checkpoint and the training seconds up to it
    (VA-RED2: the joint stage, ``vared2-joint``, and the fine-tuned model, ``vared2``)."""
    if model == "x3d":
        summary = train(run_config(proxy, seed, f"{config.work}/x3d-seed{seed}"))
        return {"x3d": (summary["last_checkpoint"], training_seconds(summary))}
    joint = train(run_config(proxy, seed, f"{config.work}/vared2-joint-seed{seed}", method="vared2"))
    recipe = dataclasses.replace(proxy.recipe(seed), epochs=config.finetune_epochs)
    tuned = train(run_config(proxy, seed, f"{config.work}/vared2-finetune-seed{seed}", method="vared2",
                             recipe=recipe, method_options={"stage": "finetune", "weight": config.efficiency_weight},
                             init=joint["last_checkpoint"]))
    return {"vared2-joint": (joint["last_checkpoint"], training_seconds(joint)),
            "vared2": (tuned["last_checkpoint"], training_seconds(joint) + training_seconds(tuned))}


def run_model(proxy: ProxyConfig, config: VARED2StudyConfig, model: str, seed: int, store: Store) -> list[dict]:
    """Train one model (precise BN as in the proxy) and evaluate it, stage by stage, on every split."""
    rows = []
    for name, (checkpoint, seconds) in trained_checkpoints(proxy, config, model, seed).items():
        checkpoint = str(recalibrate_batchnorm(checkpoint, proxy.data, videos=proxy.precise_bn_videos))
        for split in SPLITS:
            record = evaluate(EvalConfig(checkpoint=checkpoint, data=proxy.data, split=split, weights_variant="raw",
                                         num_workers=0, device="cpu"), store)
            spent = record.get("gflops_per_video", {"mean": record["gflops"], "min": record["gflops"],
                                                    "max": record["gflops"]})
            rows.append({"model": name, "seed": seed, "split": split, "top1": record["top1"],
                         **{f"gflops_{k}": v for k, v in spent.items()},
                         **(option_shares(pd.read_csv(record["per_video_csv"])) if model == "vared2" else {}),
                         "train_time_s": seconds, "run": Path(record["path"]).name})
    return rows


def option_shares(per_video: pd.DataFrame) -> dict[str, float]:
    """Over every (video, dynamic layer): the share that computed every 2nd frame (R = 2), half the
    channels (r = 0.5), and nothing (no option with a weight)."""
    factors = per_video[[c for c in per_video.columns if c.endswith(" R")]].to_numpy()
    fractions = per_video[[c for c in per_video.columns if c.endswith(" r")]].to_numpy()
    return {"share_R2": float((factors == 2).mean()), "share_r_half": float((fractions == 0.5).mean()),
            "share_skipped": float((factors == 0).mean())}


def run_study(store: Store, config: VARED2StudyConfig, proxy: ProxyConfig | None = None) -> dict:
    proxy = proxy or ProxyConfig()
    started = time.perf_counter()
    prepare_data(proxy)
    generate_speed_splits(proxy.data, config.speed_videos, proxy.video_frames, proxy.size, proxy.fps)
    jobs = [(proxy, config, model, seed, store) for model in ("vared2", "x3d") for seed in range(config.seeds)]
    runs = [row for rows in run_jobs(run_model, jobs, config.processes, "VA-RED2 study") for row in rows]
    return store_summary(store, "vared2-study", "vared2", {
        "experiment": "vared2-vs-x3d", "dataset": "warmup-airplanes (synthetic)",
        "config": dataclasses.asdict(config), "proxy": dataclasses.asdict(proxy)}, runs, started, write_outputs)


def run(options: Options, store: Store) -> int:
    summary = run_study(store, from_args(VARED2StudyConfig, options))
    return announce(summary, render_markdown(summary))
