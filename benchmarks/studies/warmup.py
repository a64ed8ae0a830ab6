"""The warm-up airplanes experiment at CPU scale (``python -m benchmarks.run warmup``).

The GRW poster's warm-up: videos of an airplane spinning in yaw, pitch or roll from a random initial
pose (``benchmarks.data.airplanes``), where a single frame says nothing about the class and only the
motion does. One model is trained on the same data with the same seeds twice, without and with
GRW-smoothing (the two arms differ only in the GRW term of the loss), and compared on test top-1
and on the geometry of its per-frame embeddings (``benchmarks.studies.geometry``), with a 95 % interval over
seeds for each arm and for the difference between arms (paired by seed).

Model (``warmup_model``): the poster's final-layer architecture, backbone -> affine -> light-weight
transformer, GRW on the affine output ``Z``. The backbone is a small frame-wise CNN
(``FrameEncoder``: four 3x3 stride-2 conv-BN-ReLU stages, 32 -> 2 px, global average pool); the head is
``grw.TemporalHead``, the GRW authors' head, at a small width. Motion is seen only by the head, from
the sequence of per-frame embeddings, which is exactly where GRW acts. GRW: one window over the whole
6-frame clip (T = 6, all 5! = 120 orderings, as in the published 6-frame figure), alpha = 0.5 as in
the paper, weight 0.1 (the weighted term averages ~0.3 over the first epoch and ~0.2 after, against
a cross-entropy that starts at 1.1).

Why not Table 1 row 1 (MoViNet-A0-S + the GRW head), as before
----------------------------------------------------------------
Measured in this suite with the suite's ``train``/``evaluate`` on the same data (32 px, 6 frames,
batch 16, AdamW, one seed; test top-1 on 100 videos, chance 33.3 %, one video = 1 point):

==========================================================  ===========  ==============
setting (3 epochs)                                           test top-1   train CE (ln 3 = 1.10)
==========================================================  ===========  ==============
MoViNet-A0-S head, no GRW, lr 2e-3, BN statistics as trained  34          1.009
  same weights, BN statistics recomputed on the train set     47          1.009
  lr 1e-3, recomputed BN statistics                           54          1.000
MoViNet-A0-S + GRW head (w 0.1), lr 1e-3, recomputed BN       45          1.069
MobileNetV3-S + TSM, lr 2e-3 / 5e-3 (8 epochs), 32 or 64 px   26-40       1.100
X3D-XS (suite pipeline, lr 2e-3), 4 / 6 epochs                63 / 78
==========================================================  ===========  ==============

1. BatchNorm statistics put MoViNet and MobileNetV3/TSM at exactly chance at test: both use
   momentum 0.01 (TensorFlow's 0.99), so after ~190 steps the running statistics still hold ~15 % of
   their initial (0, 1) and lag the weights; recomputing them lifts the same MoViNet weights from 34 %
   to 47-54 %. X3D uses PyTorch's 0.1 and was never affected. (The proxy recomputes them:
   ``benchmarks.studies.proxy``.)
2. The CPU budget is a few hundred optimizer steps, and these backbones learn the task slowly from
   scratch: MoViNet's cross-entropy is ~1.0 after 3 epochs at every lr in {5e-4 .. 1e-2}; lr >= 5e-3
   is unstable. At 32 px the stride-32 backbones end on a 1 x 1 map. MobileNetV3-S + TSM (row 4, no
   GRW, 6 epochs, seed 0 unless said) does not fit even its training clips with the suite's random
   crops of 25-100 % of the area: training cross-entropy 1.096 at lr 5e-4, 1.100 at 5e-3
   (``python -m benchmarks.run train --row 4 --frames 6 --res 32 --fps 8 --epochs 6 --batch-size 16
   --warmup-epochs 0.3 --ema-decay 0 --lr LR``), 1.097-1.102 at 2e-3 (the proxy at commit abbb08c,
   seeds 0-2). On whole frames (the same with ``--crop-min-area 1``): 1.081 at 2e-3, 1.007 at 1e-3,
   0.90-0.94 at 5e-4 (the proxy at cd9bee4, seeds 0-2): it fits its clips, but by memorising them. The
   proxy therefore trains on whole frames.
3. A small frame-wise CNN with the clips held in memory trains in about a minute per run (25 epochs
   of 1,000 clips; ``train_time_s`` 50-73 s in ``results/runs/warmup``) and learns: 91.0 % without GRW
   and 93.4 % with, mean over 5 seeds.
4. MobileNetV3-S + TSM memorises 1,000 training videos before it learns the motion; more videos and
   more steps fix it. Whole frames, one run each through the proxy's pipeline
   (``benchmarks.studies.proxy.train_and_evaluate``), test top-1 (final training cross-entropy): 6 epochs on
   1,000 videos at lr 5e-4: 39.3 +/- 8.1 over 3 seeds (0.90-0.94; 12 epochs: 39.0 +/- 6.2, 0.69-0.78);
   the same clips upsampled to 64 px: 37 (0.81); the airplanes rendered at 64 px: 37 (0.76), so the
   1 x 1 final map at 32 px is not the cause; 3,000 videos for 2 epochs (376 steps, as 1,000 for 6): 37
   (1.074); 3,000 videos for 6 epochs at lr 1e-3: 49 and 49 (seeds 0 and 1; 0.978, 0.973).
   MoViNet-A0-S + GRW head on 3,000 videos for 2 epochs at the proxy's lr 2e-3: 59 (55.3 +/- 1.5 on
   1,000 for 6). The proxy therefore uses 3,000 videos, 2 epochs for the 3D models and 6 at lr 1e-3
   for MobileNetV3. GRW taps: at weight 0.1 the taps' term (summed over three taps and over channels)
   is 62 after the first epoch and still 5 after twelve against a cross-entropy of 1.1 that never
   falls (`proxy --rows 4 --epochs 12` at 6cd9f00): it swamps the classification loss;
   the proxy's TSM + GRW taps therefore uses weight 0.005: 53.7 +/- 0.6 against 47.7 +/- 2.1 without
   GRW (3 seeds, ``python -m benchmarks.run proxy`` at 76cc3a6; the term 1.4-1.7 in the first epoch,
   0.11-0.13 in the sixth).
5. Training speed: PyTorch's CPU backward of depthwise convolutions is slow in the default memory
   layout; channels-last makes a training step of X3D-XS 2.8x, MoViNet-A0-S 2.5x and MobileNetV3-S +
   TSM 3.0x faster (``benchmarks.engine.runs.use_channels_last``).

Decoding is done once; the clips stay in memory as uint8. Runs go in
parallel processes (``--processes``, one torch thread each). Outputs:

- ``runs/warmup/warmup-<timestamp>.json``: the setting, per run (arm, seed) the test top-1, the
  training curve and the geometry of the test embeddings; per arm the mean, sample std and 95 %
  Student-t interval over seeds; the with-minus-without difference paired by seed; provenance.
- ``warmup_embeddings.png``: the published figure's panels for each arm, from the run with the median
  test top-1: several test videos per class, ``Z`` of each frame on the first two principal components
  (of the plotted points), frame indices; the run's metrics in the titles.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from tabulate import tabulate  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from benchmarks.core.statistics import format_ci, mean_ci, paired_difference  # noqa: E402
from benchmarks.core.store import Store, atomic_path  # noqa: E402
from benchmarks.data import airplanes  # noqa: E402
from benchmarks.data.videos import decode_video  # noqa: E402
from benchmarks.engine.schedules import warmup_cosine  # noqa: E402
from benchmarks.engine.train import param_groups  # noqa: E402
from benchmarks.studies.geometry import (  # noqa: E402
    METRICS,
    principal_components,
    trajectory_metrics,
)
from benchmarks.studies.harness import run_jobs, store_summary  # noqa: E402
from benchmarks.studies.warmup_config import VIDEO_FRAMES, WarmupConfig  # noqa: E402
from grw import GrwModel, TemporalHead  # noqa: E402

CLASS_COLOURS = {"yaw": "tab:green", "pitch": "tab:blue", "roll": "tab:red"}  # as in the published figure
ARMS = {"without GRW": False, "with GRW": True}
PERCENT = ("top1", "direction_accuracy")
METRIC_LABELS = {"top1": "test top-1 (%)", "relative_acceleration": "rel. acceleration",
                 "straightness": "straightness", "spacing_cv": "spacing CV",
                 "direction_accuracy": "direction top-1 (%)"}


# --------------------------------------------------------------------------- model


class FrameEncoder(nn.Module):
    """A small frame-wise CNN: ``frame_embeddings(x [B, 3, T, H, W]) -> [B, T, 4 * width]``."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        channels = (3, width, 2 * width, 4 * width, 4 * width)
        self.stages = nn.Sequential(*(
            nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out),
                          nn.ReLU(inplace=True))
            for c_in, c_out in zip(channels, channels[1:])
        ))
        self.num_features = channels[-1]

    def frame_embeddings(self, x: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        return self.stages(frames).mean(dim=(2, 3)).reshape(b, t, -1)


def warmup_model(config: WarmupConfig, grw: bool, num_classes: int = len(airplanes.CLASSES)) -> GrwModel:
    """The same network for both arms; ``grw=False`` keeps the head and sets the GRW weight to 0."""
    encoder = FrameEncoder(config.width)
    head = TemporalHead(encoder.num_features, num_classes, embed_dim=config.embed_dim, depth=config.depth,
                        num_heads=config.num_heads, mlp_dim=config.mlp_dim, window=config.grw_window)
    return GrwModel(encoder, head, grw_weight=config.grw_weight if grw else 0.0)


# --------------------------------------------------------------------------- data


@dataclass
class Clips:
    """A split decoded once: ``videos`` uint8 ``[N, T, H, W, 3]``, ``labels`` ``[N]`` (``airplanes.CLASSES`` order)."""

    videos: Tensor
    labels: Tensor


def prepare_data(config: WarmupConfig) -> Path:
    """The airplanes dataset for this setting (rendered once; a second call with it does nothing)."""
    return airplanes.generate(config.data, config.train_videos, config.val_videos, config.test_videos,
                              VIDEO_FRAMES, config.size, config.fps)


def decode_split(root: str | Path, split: str) -> Clips:
    """Every video of ``ROOT/split/<class>/*.mp4``, all frames."""
    videos, labels = [], []
    for label, name in enumerate(airplanes.CLASSES):
        for path in sorted((Path(root) / split / name).glob("*.mp4")):
            videos.append(decode_video(path)[0])
            labels.append(label)
    if not videos:
        raise FileNotFoundError(f"no videos under {Path(root) / split}")
    return Clips(torch.stack(videos), torch.tensor(labels))


def channel_stats(videos: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std of uint8 videos ``[N, T, H, W, 3]`` in [0, 1], shaped for ``[B, 3, T, H, W]``."""
    pixels = videos.reshape(-1, 3).float() / 255
    return pixels.mean(0).view(1, 3, 1, 1, 1), pixels.std(0).view(1, 3, 1, 1, 1)


def clip_batch(videos: Tensor, starts: Tensor, frames: int, mean: Tensor, std: Tensor) -> Tensor:
    """``frames`` consecutive frames from each video's start, normalised: ``[B, 3, frames, H, W]``."""
    index = starts[:, None] + torch.arange(frames)
    clips = videos[torch.arange(len(videos))[:, None], index]  # [B, frames, H, W, 3]
    return (clips.permute(0, 4, 1, 2, 3).float() / 255 - mean) / std


# --------------------------------------------------------------------------- one run


def run_one(config: WarmupConfig, grw: bool, seed: int, train: Clips, test: Clips) -> dict:
    """Train one arm with one seed on clips in memory; its test top-1, curve and test embeddings ``Z``."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = warmup_model(config, grw)
    mean, std = channel_stats(train.videos)
    steps_per_epoch = math.ceil(len(train.labels) / config.batch_size)
    total = config.epochs * steps_per_epoch
    optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(
        step, max(1, int(config.warmup_fraction * total)), total, 0.0))
    spare = train.videos.shape[1] - config.frames
    curve, started = [], time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        sums = {"ce": 0.0, "grw": 0.0}
        for batch in torch.randperm(len(train.labels), generator=generator).split(config.batch_size):
            starts = torch.randint(0, spare + 1, (len(batch),), generator=generator)
            logits, aux = model(clip_batch(train.videos[batch], starts, config.frames, mean, std))
            ce = F.cross_entropy(logits, train.labels[batch], label_smoothing=config.label_smoothing)
            loss = ce + sum(aux.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            sums["ce"] += ce.item()
            sums["grw"] += aux["grw"].item() if "grw" in aux else 0.0
        curve.append({"epoch": epoch, "train_ce": sums["ce"] / steps_per_epoch,
                      "train_grw_weighted": sums["grw"] / steps_per_epoch})
    train_time = time.perf_counter() - started
    logits, z = test_outputs(model, test, config, mean, std)
    top1 = 100.0 * (logits.argmax(1) == test.labels).float().mean().item()
    return {"grw": grw, "seed": seed, "top1": top1, "train_time_s": round(train_time, 1), "curve": curve,
            **trajectory_metrics(z, test.labels), "embeddings": z.numpy()}


@torch.no_grad()
def test_outputs(model: GrwModel, test: Clips, config: WarmupConfig, mean: Tensor, std: Tensor
                 ) -> tuple[Tensor, Tensor]:
    """Logits and ``Z`` ``[N, frames, embed_dim]`` (the head's affine output, what GRW sees) of the centred clips."""
    model.eval()
    starts = torch.full((len(test.labels),), (test.videos.shape[1] - config.frames) // 2)
    z = model.head.embed(model.backbone.frame_embeddings(clip_batch(test.videos, starts, config.frames, mean, std)))
    return model.head.classify(z), z


# --------------------------------------------------------------------------- the experiment


def run_warmup(config: WarmupConfig, store: Store) -> dict:
    """Render the data if needed, train both arms for every seed, store the summary and the figure."""
    started = time.perf_counter()
    prepare_data(config)
    train, test = decode_split(config.data, "train"), decode_split(config.data, "test")
    jobs = [(grw, seed) for grw in ARMS.values() for seed in range(config.seeds)]
    runs = run_all(config, jobs, train, test)
    embeddings = {(run["grw"], run["seed"]): run.pop("embeddings") for run in runs}
    arms = {name: [run for run in runs if run["grw"] == grw] for name, grw in ARMS.items()}
    shown = {name: median_run(arm) for name, arm in arms.items()}
    figure = plot_embeddings({figure_title(name, run): embeddings[(run["grw"], run["seed"])]
                              for name, run in shown.items()},
                             test.labels, store.root / "warmup_embeddings.png", config.figure_clips_per_class)
    fields = {
        "experiment": "warmup",
        "dataset": "warmup-airplanes (synthetic)",
        "videos": {"train": len(train.labels), "test": len(test.labels), "skipped": 0},
        "config": dataclasses.asdict(config),
        "model": {"backbone": f"FrameEncoder(width={config.width})",
                  "head": {"embed_dim": config.embed_dim, "depth": config.depth, "num_heads": config.num_heads,
                           "mlp_dim": config.mlp_dim},
                  "params": sum(p.numel() for p in warmup_model(config, True).parameters())},
        "metrics": {"top1": "test top-1 (%), centred clip, after the last epoch",
                    **{name: f"benchmarks.studies.geometry.{name} of Z (the head's affine output) over the test clips"
                       for name in METRICS}},
        "arms": {name: {metric: mean_ci([run[metric] for run in arm]) for metric in METRIC_LABELS}
                 for name, arm in arms.items()},
        "difference_with_minus_without": {
            metric: paired_difference([run[metric] for run in arms["with GRW"]],
                                      [run[metric] for run in arms["without GRW"]])
            for metric in METRIC_LABELS},
        "figure": {"path": str(figure), "runs": {name: run["seed"] for name, run in shown.items()}},
    }
    return store_summary(store, "warmup", "warmup", fields, runs, started, lambda summary, root: [figure])


def run_all(config: WarmupConfig, jobs: Sequence[tuple[bool, int]], train: Clips, test: Clips) -> list[dict]:
    """``run_one`` for every (grw, seed), ``config.processes`` at a time."""
    return run_jobs(run_one, [(config, grw, seed, train, test) for grw, seed in jobs], config.processes, "warmup runs")


def median_run(runs: Sequence[dict]) -> dict:
    """The run with the median test top-1 (the lower middle one for an even count; ties by seed)."""
    ordered = sorted(runs, key=lambda run: (run["top1"], run["seed"]))
    return ordered[(len(ordered) - 1) // 2]


def figure_title(arm: str, run: dict) -> str:
    return (f"{arm} (seed {run['seed']}, median top-1): test top-1 {run['top1']:.0f}%\n"
            f"rel. acceleration {run['relative_acceleration']:.2f}, straightness {run['straightness']:.2f}, "
            f"spacing CV {run['spacing_cv']:.2f}, direction top-1 {run['direction_accuracy']:.0f}%")


# --------------------------------------------------------------------------- figure and table


def figure_clips(labels: Tensor, per_class: int, classes: Sequence[str] = airplanes.CLASSES) -> list[int]:
    """The first ``per_class`` test clips of each class, classes in the published order (yaw, pitch, roll)."""
    order = [name for name in airplanes.CLASSES if name in classes]
    return [i for name in order for i in (labels == classes.index(name)).nonzero().flatten()[:per_class].tolist()]


def plot_embeddings(panels: dict[str, np.ndarray], labels: Tensor, path: Path, per_class: int = 3) -> Path:
    """One panel per arm: the chosen clips' per-frame embeddings on their first two principal
    components, a line per clip coloured by class, points labelled with the frame index."""
    clips = figure_clips(labels, per_class)
    names = [airplanes.CLASSES[labels[i]] for i in clips]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 6))
    for ax, (title, embeddings) in zip(np.atleast_1d(axes), panels.items()):
        z = np.asarray(embeddings)[clips]
        points = principal_components(z.reshape(-1, z.shape[-1])).reshape(len(clips), z.shape[1], 2)
        labelled = set()
        for trajectory, name in zip(points, names):
            colour = CLASS_COLOURS[name]
            ax.plot(trajectory[:, 0], trajectory[:, 1], color=colour, lw=1, alpha=0.6)
            ax.scatter(trajectory[:, 0], trajectory[:, 1], color=colour, s=22, zorder=2,
                       label=None if name in labelled else name)
            labelled.add(name)
            for t, (x, y) in enumerate(trajectory):
                ax.annotate(str(t), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
        ax.set_xlabel("principal component 1")
        ax.set_ylabel("principal component 2")
        ax.set_title(title, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Warm-up airplanes (synthetic): Z of each frame, {per_class} test videos per class")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=150)
    plt.close(fig)
    return path


def summary_table(summary: dict) -> str:
    """Per arm and for the difference: mean ± std [95 % interval] over seeds (GitHub markdown)."""
    difference = summary["difference_with_minus_without"]
    rows = [[name, *(format_ci(stats[metric], ".1f" if metric in PERCENT else ".3f") for metric in METRIC_LABELS),
             stats["top1"]["n"]] for name, stats in [*summary["arms"].items(), ("with - without (paired)", difference)]]
    return tabulate(rows, headers=["arm", *METRIC_LABELS.values(), "seeds"], tablefmt="github",
                    disable_numparse=True)
