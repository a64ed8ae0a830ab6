"""The warm-up airplanes experiment at CPU scale (``python -m benchmarks.run warmup``).

The GRW poster's warm-up: videos of an airplane spinning in yaw, pitch or roll from a random initial
pose (``benchmarks.airplanes``), where a single frame says nothing about the class and only the
motion does. One small video model is trained on the same data with the same seeds twice, without
and with GRW-smoothing, and its per-frame embeddings are compared.

Model: Table 1 row 1, the stream MoViNet-A0 with ``grw.TemporalHead``, at 32 px on 6-frame clips
(consecutive frames of 8-frame videos: the data index skips videos shorter than 8 frames; training
takes a random 6-frame window, evaluation the centred one). "Without GRW" keeps the head and sets
the GRW weight to 0, so the two models differ only in the loss. GRW settings (``GRW``): one window
over the whole clip, T = 6 (all 5! = 120 orderings), as in the published 6-frame figure; alpha = 0.5
as in the paper; weight 0.1 rather than the suite's 1.0, because unweighted the GRW term starts near
70-120 here (the velocity prior of 256-d LayerNorm outputs) against a cross-entropy of 1.1; 0.1 keeps
the cross-entropy from being drowned at the start. Not tuned; the val split is left for that.
Budget: 3 epochs x 2 models x 3 seeds fit in 15 minutes on 2 shared CPU cores with one torch thread.

Training and evaluation are the suite's own, ``benchmarks.train.train`` and
``benchmarks.evaluate.evaluate``: every run is stored in the results store's ``runs/`` with its provenance.
This module adds the embedding smoothness, the summary over seeds and the figure:

- ``results/runs/warmup/warmup-<timestamp>.json``: the configuration, per-seed test top-1 and
  smoothness, their mean and standard deviation (over seeds, ddof=1), the run files, provenance.
  (A subfolder: ``results/runs/*.json`` are read as accuracy runs by ``benchmarks.store``.)
- ``results/warmup_embeddings.png``: as the published figure, the per-frame embeddings of one test
  video per class on their first two principal components, without and with GRW (first seed),
  points labelled by frame index.

Smoothness is the mean embedding acceleration: the mean over test clips of the mean over t of
``||z_{t+2} - 2 z_{t+1} + z_t||^2``, with ``z_t`` the normalised per-frame embeddings the GRW loss
sees (the head's LayerNorm output). A straight, evenly spaced trajectory scores 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from tabulate import tabulate  # noqa: E402
from torch import Tensor  # noqa: E402
from tqdm import tqdm  # noqa: E402

from benchmarks import airplanes  # noqa: E402
from benchmarks.cli import from_args  # noqa: E402
from benchmarks.data import VideoDataset, VideoIndex, make_loader  # noqa: E402
from benchmarks.evaluate import EvalConfig, evaluate  # noqa: E402
from benchmarks.paths import REPO_ROOT  # noqa: E402
from benchmarks.runs import Recipe, RunConfig, eval_sampling, load_trained  # noqa: E402
from benchmarks.specs import GrwSettings, RowSpec  # noqa: E402
from benchmarks.store import Store, atomic_path, provenance, write_json  # noqa: E402
from benchmarks.train import train  # noqa: E402
from grw import GrwModel  # noqa: E402

ROW = 1  # MoViNet-A0-S with the GRW temporal head
MIN_VIDEO_FRAMES = 8  # VideoIndex.build skips videos shorter than this
GRW = dict(weight=0.1, window=6)  # alpha stays at the paper's (GrwSettings.alpha)
# A short schedule: a few epochs of 1,000 videos. No EMA: with ~200 steps it would lag far behind.
RECIPE = dict(batch_size=16, lr=2e-3, warmup_epochs=0.3, ema_decay=0.0)
CLASS_COLOURS = {"yaw": "tab:green", "pitch": "tab:blue", "roll": "tab:red"}  # as in the published figure
VARIANTS = {"without GRW": False, "with GRW": True}


@dataclass(frozen=True)
class WarmupConfig:
    """One warm-up experiment: data (generated if needed), model input, training budget."""

    data: str = str(REPO_ROOT / "runs_local" / "airplanes")
    work: str = str(REPO_ROOT / "runs_local" / "warmup")  # training run directories (checkpoints, metrics)
    train_videos: int = 1000
    val_videos: int = 100
    test_videos: int = 100
    size: int = 32
    frames: int = 6  # clip length
    fps: int = 8
    epochs: int = 3
    seeds: int = 3
    grw_weight: float = GRW["weight"]
    grw_window: int = GRW["window"]
    num_workers: int = 1
    figure_clips_per_class: int = 1

    def __post_init__(self) -> None:
        if min(self.train_videos, self.test_videos, self.epochs, self.seeds, self.figure_clips_per_class) < 1:
            raise ValueError("expected at least 1 train video, test video, epoch, seed and figure clip per class, "
                             f"got {self.train_videos}, {self.test_videos}, {self.epochs}, {self.seeds}, "
                             f"{self.figure_clips_per_class}")
        if not 3 <= self.grw_window <= self.frames:
            raise ValueError(f"expected 3 <= grw_window <= frames, got window {self.grw_window}, frames {self.frames}")
        if self.grw_weight <= 0:
            raise ValueError(f"grw_weight must be > 0 (the comparison run has weight 0), got {self.grw_weight}")

    @property
    def video_frames(self) -> int:
        return max(self.frames, MIN_VIDEO_FRAMES)


# --------------------------------------------------------------------------- the metric


def embedding_acceleration(z: Tensor) -> float:
    """Mean over clips of the mean squared second difference of per-frame embeddings ``[N, T, D]``."""
    return _mean_squared_differences(z, order=2).mean().item()


def relative_acceleration(z: Tensor) -> float:
    """Mean over clips of (mean squared acceleration / mean squared velocity): the acceleration in
    units of the clip's own speed, which shrinking the embeddings cannot lower. 0 for a straight,
    evenly spaced line; 3 in expectation for independent random points."""
    ratio = _mean_squared_differences(z, order=2) / _mean_squared_differences(z, order=1).clamp_min(1e-12)
    return ratio.mean().item()


def _mean_squared_differences(z: Tensor, order: int) -> Tensor:
    """Per clip ``[N]``: the mean over t of the squared norm of the ``order``-th difference along time."""
    if z.dim() != 3 or z.shape[1] < 3:
        raise ValueError(f"expected embeddings [clips, frames >= 3, dim], got shape {tuple(z.shape)}")
    return z.diff(n=order, dim=1).pow(2).sum(dim=-1).mean(dim=1)


def principal_components(points: np.ndarray, k: int = 2) -> np.ndarray:
    """``points`` ``[n, d]`` projected on their first ``k`` principal components ``[n, k]``."""
    centred = points - points.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    return centred @ components[:k].T


def mean_std(values: Sequence[float]) -> dict:
    """Mean and sample standard deviation (None for a single value) of per-seed results."""
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
            "values": [float(v) for v in values]}


# --------------------------------------------------------------------------- runs


def train_config(config: WarmupConfig, row: int, grw: bool, seed: int) -> RunConfig:
    """A Table 1 row at the warm-up input and recipe. ``grw=False`` on a GRW-head row keeps the head
    with weight 0; ``grw=True`` on another row adds the default intermediate taps."""
    return RunConfig(
        row=row,
        data=config.data,
        out=str(Path(config.work) / f"row{row}-{'grw' if grw else 'no-grw'}-seed{seed}"),
        recipe=Recipe(epochs=config.epochs, seed=seed, **RECIPE),
        frames=config.frames,
        res=config.size,
        fps=config.fps,
        grw=grw,
        grw_weight=config.grw_weight if grw else None,
        grw_window=config.grw_window if grw else None,
        validate=False,  # the val split is for choosing settings (README), not part of a run's budget
        num_workers=config.num_workers,
        device="cpu",
        log_every=100,
    )


def train_and_evaluate(config: WarmupConfig, row: int, grw: bool, seed: int, store: Store) -> tuple[dict, dict]:
    """Train with the suite's pipeline, evaluate the last checkpoint on the test split (stored in
    ``store``); returns (training summary, run record)."""
    summary = train(train_config(config, row, grw, seed))
    if summary["status"] != "completed":
        raise RuntimeError(f"training stopped early ({summary['status']}, signal {summary['signal']})")
    record = evaluate(EvalConfig(checkpoint=summary["last_checkpoint"], data=config.data, split="test",
                                 weights_variant="raw", num_workers=config.num_workers, device="cpu"), store)
    return summary, record


@torch.no_grad()
def normalised_embeddings(model: GrwModel, videos: Tensor) -> Tensor:
    """The per-frame embeddings the GRW loss sees, ``[B, T, D]``: the head's normalised projection."""
    head = model.head
    return head.norm(head.proj(model.backbone.frame_embeddings(videos)))


def split_embeddings(model: GrwModel, spec: RowSpec, data: str, classes: Sequence[str],
                     split: str = "test") -> tuple[Tensor, Tensor]:
    """Embeddings ``[N, T, D]`` and labels ``[N]`` of a split, centred clips as evaluated, in index order."""
    index = VideoIndex.build(data, split, classes=classes)
    loader = make_loader(VideoDataset(index, eval_sampling(spec, model, views=False), train=False), batch_size=16)
    embeddings, labels = [], []
    for videos, batch_labels, _ in loader:
        embeddings.append(normalised_embeddings(model, videos))
        labels.append(batch_labels)
    return torch.cat(embeddings), torch.cat(labels)


def run_one(config: WarmupConfig, grw: bool, seed: int, store: Store) -> tuple[dict, Tensor, Tensor, tuple[str, ...]]:
    """One warm-up run: (result, test embeddings ``[N, T, D]``, test labels, class order)."""
    summary, record = train_and_evaluate(config, ROW, grw, seed, store)
    trained = load_trained(summary["last_checkpoint"], "raw")
    classes = trained.classes
    embeddings, labels = split_embeddings(trained.model, trained.spec, config.data, classes)
    result = {
        "seed": seed,
        "grw": grw,
        "top1": record["top1"],
        "acceleration": embedding_acceleration(embeddings),
        "relative_acceleration": relative_acceleration(embeddings),
        "final_train_terms": {name: summary["history"][-1][name] for name in ("train_ce", "train_grw")},
        "run": Path(record["path"]).name,  # in results/runs/
        "train_dir": str(Path(summary["last_checkpoint"]).parent),
    }
    return result, embeddings, labels, classes


# --------------------------------------------------------------------------- figure


def figure_clips(labels: Tensor, classes: Sequence[str], per_class: int) -> list[int]:
    """The first ``per_class`` test clips of each class, classes in the published order (yaw, pitch, roll)."""
    order = [name for name in airplanes.CLASSES if name in classes]
    return [i for name in order for i in (labels == classes.index(name)).nonzero().flatten()[:per_class].tolist()]


def plot_embeddings(panels: dict[str, Tensor], labels: Tensor, classes: Sequence[str], path: Path,
                    per_class: int = 1) -> Path:
    """One panel per model: the chosen clips' per-frame embeddings on their first two principal
    components, a line per clip coloured by class, points labelled with the frame index."""
    clips = figure_clips(labels, classes, per_class)
    names = [classes[labels[i]] for i in clips]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 5.5))
    for ax, (title, embeddings) in zip(np.atleast_1d(axes), panels.items()):
        z = embeddings[clips].numpy()
        points = principal_components(z.reshape(-1, z.shape[-1])).reshape(len(clips), z.shape[1], 2)
        labelled = set()
        for trajectory, name in zip(points, names):
            colour = CLASS_COLOURS.get(name, "tab:gray")
            ax.plot(trajectory[:, 0], trajectory[:, 1], color=colour, lw=1, alpha=0.5)
            ax.scatter(trajectory[:, 0], trajectory[:, 1], color=colour, s=25, zorder=2,
                       label=None if name in labelled else name)
            labelled.add(name)
            for t, (x, y) in enumerate(trajectory):
                ax.annotate(str(t), (x, y), textcoords="offset points", xytext=(3, 4), fontsize=8)
        ax.set_xlabel("principal component 1")
        ax.set_ylabel("principal component 2")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Warm-up airplanes: per-frame embeddings of test videos (synthetic data)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=150)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- the experiment


def prepare_data(config: WarmupConfig) -> Path:
    """The airplanes dataset for this setting (rendered once; a second call with it does nothing)."""
    return airplanes.generate(config.data, config.train_videos, config.val_videos, config.test_videos,
                              config.video_frames, config.size, config.fps)


def setting(config: WarmupConfig) -> dict:
    """What a results file says about how its models were trained."""
    return {
        "dataset": "warmup-airplanes (synthetic)",
        "config": dataclasses.asdict(config),
        "recipe": dataclasses.asdict(Recipe(epochs=config.epochs, **RECIPE)) | {"seed": list(range(config.seeds))},
        "grw": {"weight": config.grw_weight, "window": config.grw_window, "alpha": GrwSettings().alpha},
    }


def run_warmup(config: WarmupConfig, store: Store) -> dict:
    """Generate the data if needed, train and evaluate both models for every seed, write the summary and figure."""
    started = time.perf_counter()
    prepare_data(config)
    jobs = [(name, seed) for name in VARIANTS for seed in range(config.seeds)]
    results: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    panels: dict[str, Tensor] = {}
    for name, seed in tqdm(jobs, desc="warmup runs", unit="run", file=sys.stderr):
        result, embeddings, labels, classes = run_one(config, VARIANTS[name], seed, store)
        results[name].append(result)
        if seed == 0:
            title = f"{name} (seed 0): test top-1 {result['top1']:.0f}%, acceleration {result['acceleration']:.3g}"
            panels[title] = embeddings

    figure = plot_embeddings(panels, labels, classes, store.root / "warmup_embeddings.png",
                             config.figure_clips_per_class)
    summary = {
        "experiment": "warmup",
        "row": ROW,
        **setting(config),
        "metrics": {"top1": "test top-1 (%), last checkpoint",
                    "acceleration": "mean over test clips of mean_t ||z[t+2] - 2 z[t+1] + z[t]||^2, z = the "
                                    "head's normalised per-frame embeddings",
                    "relative_acceleration": "mean over test clips of mean_t ||acceleration||^2 / "
                                             "mean_t ||velocity||^2 (scale-free)"},
        "variants": {name: {**{metric: mean_std([r[metric] for r in runs])
                               for metric in ("top1", "acceleration", "relative_acceleration")},
                            "runs": runs} for name, runs in results.items()},
        "figure": str(figure),
        "wall_time_s": round(time.perf_counter() - started, 1),
        **provenance("cpu"),
    }
    summary["path"] = str(write_json(store.new_run_path("warmup", "warmup"), summary))
    return summary


def summary_table(summary: dict) -> str:
    """Mean ± std over seeds of each model's test top-1 and embedding smoothness (GitHub markdown)."""
    rows = [[name, format_mean_std(v["top1"], ".1f"), format_mean_std(v["acceleration"], ".3g"),
             format_mean_std(v["relative_acceleration"], ".3g"), len(v["top1"]["values"])]
            for name, v in summary["variants"].items()]
    headers = ["model", "test top-1 (%)", "embedding acceleration", "relative acceleration", "seeds"]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def format_mean_std(stats: dict, fmt: str) -> str:
    return f"{stats['mean']:{fmt}}" + ("" if stats["std"] is None else f" ± {stats['std']:{fmt}}")


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = WarmupConfig()
    parser.add_argument("--data", default=defaults.data, help="airplanes dataset root, generated if needed "
                        "(default: runs_local/airplanes)")
    parser.add_argument("--work", default=defaults.work, help="training run directories (default: runs_local/warmup)")
    parser.add_argument("--train", dest="train_videos", type=int, default=defaults.train_videos, metavar="N",
                        help="training videos (default: %(default)s)")
    parser.add_argument("--val", dest="val_videos", type=int, default=defaults.val_videos, metavar="N",
                        help="validation videos, generated for choosing settings (default: %(default)s)")
    parser.add_argument("--test", dest="test_videos", type=int, default=defaults.test_videos, metavar="N",
                        help="test videos (default: %(default)s)")
    parser.add_argument("--size", type=int, default=defaults.size, metavar="PX",
                        help=f"frame size, even; decord cannot read 16, 24, 48 or 72 (default: {defaults.size})")
    parser.add_argument("--frames", type=int, default=defaults.frames, metavar="T",
                        help=f"clip length (default: {defaults.frames})")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, metavar="E", help="(default: %(default)s)")
    parser.add_argument("--seeds", type=int, default=defaults.seeds, metavar="K",
                        help="seeds 0..K-1 per model (default: %(default)s)")
    parser.add_argument("--grw-weight", type=float, default=defaults.grw_weight, help="(default: %(default)s)")
    parser.add_argument("--grw-window", type=int, default=defaults.grw_window,
                        help="frames per GRW window, at most --frames (default: %(default)s)")
    parser.add_argument("--num-workers", type=int, default=defaults.num_workers, help="data loader processes")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on 2 shared cores more threads spin against each other)")


def main(args: argparse.Namespace) -> int:
    config = from_args(WarmupConfig, args)
    torch.set_num_threads(args.threads)
    summary = run_warmup(config, args.store)
    print(summary_table(summary))
    print(f"wrote {summary['figure']} and {summary['path']} ({summary['wall_time_s']:.0f} s)")
    return 0
