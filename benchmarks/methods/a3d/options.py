"""A3D's options as data, and what they choose from: the paper's computation ranges (``A3D_RANGES``), the
method's ``train`` and ``eval`` options, and the options of ``a3d-cost`` and ``a3d-study`` (with the study's
configuration). Light to import, no torch: the folder's ``__init__`` declares them, so the command line
builds its flags from this module alone; the modules that use them import them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.core.cli import default
from benchmarks.core.options import option
from benchmarks.core.paths import REPO_ROOT


@dataclass(frozen=True)
class A3DRange:
    """A computation range of the paper: how sub-networks are drawn in training and the grid evaluated."""

    name: str
    width_min: float  # gamma_w ~ U[width_min, 1]; the smallest sub-network's width
    spatial: tuple[float, ...]  # gamma_s
    temporal: tuple[float, ...]  # gamma_t
    eval_widths: tuple[float, ...]  # gamma_w of the configurations evaluated after training


A3D_RANGES: dict[str, A3DRange] = {
    "[0.016,1]": A3DRange("[0.016,1]", 0.5, (0.57, 0.71, 0.86, 1.0), (0.25, 0.5, 0.75, 1.0),
                          (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)),
    "[0.06,1]": A3DRange("[0.06,1]", 0.63, (0.63, 0.80, 1.0), (0.4, 0.63, 1.0), (0.63, 0.73, 0.83, 0.93, 1.0)),
}


@dataclass(frozen=True)
class A3DOptions:
    range: str = option("[0.016,1]", "the paper's computation range; [0.016,1]: width ~ U[0.5, 1], side x "
                        "{0.57, 0.71, 0.86, 1}, frames x {0.25, 0.5, 0.75, 1}; [0.06,1]: U[0.63, 1], "
                        "{0.63, 0.8, 1}, {0.4, 0.63, 1}", flag="--a3d-range", choices=A3D_RANGES)


@dataclass(frozen=True)
class A3DEvalOptions:
    sweep: bool = option(False, "every width x side x frames configuration of the run's range, BatchNorm "
                         "recalibrated per configuration, on the val and test splits; stores the configuration-budget "
                         "table (chosen on val) in runs/a3d/")
    config: str | None = option(None, "one configuration, e.g. 0.5x0.71x0.25 (gamma_w x gamma_s x gamma_t), on "
                                "--split", metavar="WxSxT")
    budget: float | None = option(None, "the configuration the latest stored sweep of this checkpoint chose for "
                                  "this many GFLOPs per clip, evaluated on --split", metavar="GFLOPS")
    calibration_videos: int = option(200, "training videos the BatchNorm statistics of a configuration are "
                                     "recomputed on")

    def __post_init__(self) -> None:
        if sum((self.sweep, self.config is not None, self.budget is not None)) > 1:
            raise ValueError("give one of --sweep, --config and --budget")

    def __bool__(self) -> bool:
        """Whether an evaluation of A3D's own was asked for."""
        return self.sweep or self.config is not None or self.budget is not None


@dataclass(frozen=True)
class CostOptions:
    """``a3d-cost``: the row, its input and the A3D range to measure, and the training steps to time."""

    row: int = option(13, "an X3D row of Table 1 (default: %(default)s, X3D-M)")
    frames: int | None = option(None, "clip frames (default: the row's)")
    res: int | None = option(None, "clip side (default: the row's)")
    a3d_range: str = option("[0.016,1]", "", choices=tuple(A3D_RANGES))
    batch_size: int = option(4, "clips per timed training step (default: %(default)s)")
    steps: int = option(3, "timed training steps each (default: %(default)s)")


@dataclass(frozen=True)
class A3DStudyConfig:
    """The study's seeds, range, BatchNorm calibration, processes and work folder (``a3d-study``)."""

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


@dataclass(frozen=True)
class StudyOptions:
    """``a3d-study``: what of :class:`A3DStudyConfig` the command line sets."""

    seeds: int = option(default(A3DStudyConfig, "seeds"), "(default: %(default)s)")
    a3d_range: str = option(default(A3DStudyConfig, "a3d_range"), "", choices=tuple(A3D_RANGES))
    processes: int = option(default(A3DStudyConfig, "processes"), "runs in parallel, one torch thread each "
                            "(default: %(default)s)")
