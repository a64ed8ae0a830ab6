"""A CPU-scale proxy of Table 1 on synthetic data (``python -m benchmarks.run proxy``).

Not Kinetics-600. Each implemented family of Table 1's first rows (``VARIANTS``) is trained from
scratch on the warm-up airplanes (``benchmarks.data.airplanes``; ``ProxyConfig``: 3,000 training videos,
32 px, 6-frame clips, 3 seeds, GRW over the 6-frame window; the 3D models 2 epochs, MobileNetV3 6 at a
lower learning rate, ``VARIANTS``; every family with and without GRW) with the suite's own ``train``;
its BatchNorm statistics are then recomputed on 1,000 training clips (``recalibrate_batchnorm``: MoViNet
and MobileNetV3 use momentum 0.01, whose running statistics lag far behind the weights after a few hundred
steps, see ``benchmarks.studies.warmup``), and it is evaluated on the test split with the suite's own
``evaluate``. The runs are stored in ``results/runs/`` with dataset ``warmup-airplanes``: Table 1
(Kinetics-600) never shows them. The proxy has its own outputs:

- ``proxy_table1.md``: test top-1 and GFLOPs per clip measured at the proxy input;
- ``proxy_flops.png``: top-1 vs those GFLOPs (``benchmarks.table1.report.pareto_figure``);
- ``runs/proxy/proxy-<timestamp>.json``: the summary both are rendered from (per run: the
  row, GRW, top-1, GFLOPs, parameters, training time, the run file), the setting, provenance.

A frame-wise MobileNetV3 averages per-frame logits: it cannot see motion, and motion is all that
tells the airplane classes apart, so it is the control, expected at chance (33.3%) with or without GRW
taps. Runs go two at a time in their own processes (``--processes``), longest first, each keeping its
decoded training videos in memory and training in channels-last memory (``benchmarks.engine.runs.use_channels_last``).

Why 3,000 videos and not the warm-up's 1,000: MobileNetV3-S + TSM memorises 1,000 training videos
before it learns the motion (``benchmarks.studies.warmup`` has the ablations).

Measured at these defaults (``python -m benchmarks.run proxy``, commit c44f12a, 2 cores, 28.5 min in
all; ``results/runs/proxy/proxy-20261203T153155698956Z.json``; test top-1, mean +/- std over seeds
0-2): MoViNet-A0-S 60.0 +/- 1.0 with the GRW head and 61.3 +/- 4.0 without, MobileNetV3-S + TSM
47.7 +/- 2.1 without GRW and 53.7 +/- 0.6 with GRW taps at weight 0.005, X3D-XS 67.3 +/- 3.1 without
and 66.0 +/- 2.6 with GRW taps at weight 0.0005, the frame-wise control 36.7 +/- 2.5 (chance 33.3). At
the previous defaults (1,000 videos, 6 epochs for all, MobileNetV3 at lr 5e-4, 34 min) TSM was at 39.3
+/- 8.1 and 31.3 +/- 6.4 with taps at weight 0.1.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch
from torch import nn

from baselines.slimmable import recompute_batchnorm
from benchmarks.core.checkpoint import save_checkpoint
from benchmarks.core.store import Store
from benchmarks.data import airplanes
from benchmarks.data.videos import VideoDataset, VideoIndex, evenly_spread, make_loader
from benchmarks.engine.config import RunConfig
from benchmarks.engine.evaluate import EvalConfig, evaluate
from benchmarks.engine.runs import eval_sampling, load_trained
from benchmarks.engine.train import train
from benchmarks.studies.harness import cpu_settings, run_jobs, store_summary, training_seconds
from benchmarks.studies.proxy_config import (  # noqa: F401  (the proxy's setting, also as proxy.*)
    DEFAULT_EPOCHS,
    VARIANTS,
    ProxyConfig,
    Variant,
    select_variants,
)
from benchmarks.studies.proxy_report import (  # noqa: F401  (the proxy's outputs, also as proxy.*)
    CHANCE,
    display_table,
    plot_proxy,
    point_labels,
    proxy_table,
    redraw_latest,
    render_markdown,
    write_outputs,
)
from benchmarks.table1.specs import GrwSettings, get_spec

# --------------------------------------------------------------------------- runs


def prepare_data(config: ProxyConfig) -> Path:
    """The airplanes dataset for this setting (rendered once; a second call with it does nothing)."""
    return airplanes.generate(config.data, config.train_videos, config.val_videos, config.test_videos,
                              config.video_frames, config.size, config.fps)


def train_config(config: ProxyConfig, variant: Variant, seed: int) -> RunConfig:
    """The variant's Table 1 row at the proxy input and recipe. ``grw=False`` on a GRW-head row keeps the
    head with weight 0; ``grw=True`` on another row adds the default intermediate taps."""
    row, grw = variant.row, variant.grw
    return RunConfig(
        row=row,
        data=config.data,
        out=str(Path(config.work) / f"row{row}-{'grw' if grw else 'no-grw'}-seed{seed}"),
        recipe=config.recipe(seed, variant.learning_rate(config), variant.run_epochs(config)),
        frames=config.frames,
        res=config.size,
        fps=config.fps,
        grw=grw,
        grw_weight=variant.weight(config),
        grw_window=config.grw_window if grw else None,
        **cpu_settings(config.num_workers),
    )


@torch.no_grad()
def recalibrate_batchnorm(checkpoint: str | Path, data: str, num_workers: int = 0, batch_size: int = 50,
                          videos: int | None = None) -> Path:
    """Precise BatchNorm: every BatchNorm's running mean and variance recomputed as the plain average
    over the training videos (centred clips, as evaluated), the trained weights fixed; written next to
    ``checkpoint`` as ``precise_bn.pt``. ``videos``: at most this many, evenly spread over the split
    (the classes are stored one after the other), None for all.

    Why: MoViNet and torchvision's MobileNetV3 use BatchNorm momentum 0.01 (TensorFlow's 0.99), so
    after a few hundred steps their running statistics still mostly hold the initial (0, 1) and those
    of the first steps' weights: the network evaluated is not the one trained (``benchmarks.studies.warmup``).
    """
    checkpoint = Path(checkpoint)
    trained = load_trained(checkpoint, "raw")
    model = trained.model
    index = VideoIndex.build(data, "train", classes=trained.classes)
    used = evenly_spread(len(index), videos)
    loader = make_loader(VideoDataset(index, eval_sampling(trained.spec, model, views=False), train=False),
                         batch_size, num_workers=num_workers, sampler=used)
    # only the BatchNorms train: dropout, stochastic depth and GRW taps stay in eval mode
    recompute_batchnorm(model, (clips for clips, labels, _ in loader if len(labels)), model)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    weights = model.state_dict()
    state = dict(trained.checkpoint)
    state["model"] = {key: weights[key] for key in state["model"]}
    state.pop("ema", None)
    state["precise_bn"] = {"from": checkpoint.name, "videos": len(used), "batchnorms": len(norms)}
    return save_checkpoint(checkpoint.with_name("precise_bn.pt"), state)


def train_and_test(run: RunConfig, store: Store, precise_bn_videos: int | None = None) -> tuple[dict, dict]:
    """Train one run with the suite's pipeline, recompute its BatchNorm statistics on ``precise_bn_videos``
    training clips (0: keep them as trained; None: all), evaluate the raw weights on the test split on CPU
    (stored in ``store``); returns (training summary, run record)."""
    summary = train(run)
    if summary["status"] != "completed":
        raise RuntimeError(f"training stopped early ({summary['status']}, signal {summary['signal']})")
    checkpoint = summary["last_checkpoint"]
    if precise_bn_videos != 0:
        checkpoint = str(recalibrate_batchnorm(checkpoint, run.data, run.num_workers, videos=precise_bn_videos))
    record = evaluate(EvalConfig(checkpoint=checkpoint, data=run.data, split="test", weights_variant="raw",
                                 num_workers=run.num_workers, device="cpu"), store)
    summary["evaluated_checkpoint"] = checkpoint
    return summary, record


def train_and_evaluate(config: ProxyConfig, variant: Variant, seed: int, store: Store) -> tuple[dict, dict]:
    """One proxy run: ``train_and_test`` with precise BN on ``config.precise_bn_videos`` clips."""
    return train_and_test(train_config(config, variant, seed), store,
                          config.precise_bn_videos if config.precise_bn else 0)


def setting(config: ProxyConfig) -> dict:
    """What a results file says about how its models were trained."""
    return {
        "dataset": "warmup-airplanes (synthetic)",
        "config": dataclasses.asdict(config),
        "recipe": dataclasses.asdict(config.recipe()) | {
            "seed": list(range(config.seeds)),
            "lr_by_variant": {variant.name: variant.learning_rate(config) for variant in VARIANTS},
            "epochs_by_variant": {variant.name: variant.run_epochs(config) for variant in VARIANTS},
            "grw_weight_by_variant": {variant.name: variant.weight(config) for variant in VARIANTS if variant.grw},
        },
        "grw": {"weight": config.grw_weight, "window": config.grw_window, "alpha": GrwSettings().alpha},
    }


def run_variant(config: ProxyConfig, variant: Variant, seed: int, store: Store) -> dict:
    """Train and evaluate one variant; what the summary keeps of it."""
    summary, record = train_and_evaluate(config, variant, seed, store)
    return {
        "variant": variant.name,
        "row": variant.row,
        "table1_model": get_spec(variant.row).name,
        "grw": variant.grw,
        "seed": seed,
        "lr": variant.learning_rate(config),
        "epochs": variant.run_epochs(config),
        "grw_weight": variant.weight(config),
        "top1": record["top1"],
        "gflops_per_clip": record["gflops_per_view"],
        "params_m": record["params"] / 1e6,
        "train_time_s": training_seconds(summary),
        "run": Path(record["path"]).name,  # in results/runs/
    }


def run_proxy(store: Store, config: ProxyConfig = ProxyConfig(),  # noqa: B008  (frozen)
              variants: tuple[Variant, ...] = VARIANTS) -> dict:
    """Train and evaluate every variant for every seed, store the summary, write the table and figure."""
    started = time.perf_counter()
    prepare_data(config)
    jobs = sorted(((config, variant, seed, store) for variant in variants for seed in range(config.seeds)),
                  key=lambda job: -job[1].minutes)  # longest first; the table keeps the variants' order
    runs = run_jobs(run_variant, jobs, config.processes, "proxy runs")
    runs.sort(key=lambda run: ([variant.name for variant in variants].index(run["variant"]), run["seed"]))
    return store_summary(store, "proxy", "proxy", {"experiment": "table1-proxy", **setting(config)}, runs, started,
                         write_outputs)
