"""Multigrid's options as data: the schedule's ``train`` options, and the options of ``multigrid-study``
(with the study's configuration). Light to import, no torch: the folder's ``__init__`` declares them, so
the command line builds its flags from this module alone; the modules that use them import them from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.core.cli import default
from benchmarks.core.options import option
from benchmarks.core.paths import REPO_ROOT
from benchmarks.engine.recipe import Recipe

CYCLES = {"long,short": (True, True), "long": (True, False), "short": (False, True)}


@dataclass(frozen=True)
class MultigridOptions:
    cycles: str = option("long,short", "multigrid's cycles", flag="--multigrid", choices=CYCLES,
                         metavar="long,short|long|short")
    epoch_factor: float = option(1.5, "multigrid trains this many times --epochs, in fewer steps (PySlowFast's)",
                                 flag="--multigrid-epoch-factor")

    def __post_init__(self) -> None:
        if self.cycles not in CYCLES:
            raise ValueError(f"multigrid cycles must be one of {tuple(CYCLES)}, got {self.cycles!r}")
        if not self.epoch_factor > 0:
            raise ValueError(f"multigrid_epoch_factor must be > 0, got {self.epoch_factor}")


def lr_steps(epochs: int, lr_decays: Sequence[float]) -> tuple[int, ...]:
    """The epochs after which the lr drops x0.1: the ``lr_decays`` fractions of ``epochs``."""
    return tuple(sorted({min(epochs, max(1, round(f * epochs))) for f in lr_decays}))


@dataclass(frozen=True)
class StudyConfig:
    """The data, input, recipe and budget of the comparison."""

    data: str = str(REPO_ROOT / "runs_local" / "airplanes16x64")
    work: str = str(REPO_ROOT / "runs_local" / "multigrid")  # training run directories
    row: int = 5  # X3D-XS
    train_videos: int = 900
    val_videos: int = 30
    test_videos: int = 150
    video_frames: int = 16
    size: int = 64
    frames: int = 16
    fps: int = 8
    seeds: int = 3
    epochs: int = 6  # multigrid trains epochs x epoch_factor
    batch_size: int = 8  # per step at the default shape; multigrid's long cycle up to 64 (8 BatchNorm groups)
    lr: float = 0.05
    lr_decays: tuple[float, ...] = (0.6, 0.85)  # the lr x 0.1 after these fractions of the epochs
    warmup_epochs: float = 0.5
    weight_decay: float = 5e-5
    epoch_factor: float = 1.5
    precise_bn_videos: int = 900
    processes: int = 2

    def __post_init__(self) -> None:
        if min(self.seeds, self.processes, self.train_videos, self.test_videos, self.epochs) < 1:
            raise ValueError("expected at least 1 seed, process, training video, test video and epoch")

    @property
    def lr_steps(self) -> tuple[int, ...]:
        return lr_steps(self.epochs, self.lr_decays)

    def recipe(self, seed: int) -> Recipe:
        """PySlowFast's kind of recipe: SGD with Nesterov momentum, step-wise decay, linear warm-up; no EMA."""
        return Recipe(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, optimizer="sgd", lr_policy="steps",
                      lr_steps=self.lr_steps, warmup_epochs=self.warmup_epochs, weight_decay=self.weight_decay,
                      ema_decay=0.0, seed=seed, crop_min_area=1.0)


@dataclass(frozen=True)
class StudyOptions:
    """``multigrid-study``: what of :class:`StudyConfig` the command line sets."""

    seeds: int = option(default(StudyConfig, "seeds"), "seeds 0..K-1 per schedule (default: %(default)s)")
    epochs: int = option(default(StudyConfig, "epochs"), "standard epochs; multigrid trains epochs x the epoch "
                         "factor (default: %(default)s)")
    processes: int = option(default(StudyConfig, "processes"), "runs in parallel, one torch thread each "
                            "(default: %(default)s)")
