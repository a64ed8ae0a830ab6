"""A3D's options as data, and what they choose from: the paper's computation ranges (``A3D_RANGES``), the
method's ``train`` and ``eval`` options, and the options of ``a3d-cost`` and ``a3d-study`` (with the study's
configuration). Light to import, no torch: the folder's ``__init__`` declares them, so the command line
builds its flags from this module alone; the modules that use them import them from here.
"""

from __future__ import annotations

import math
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
class Configuration:
    """(gamma_w, gamma_s, gamma_t) of one sub-network."""

    width: float = 1.0
    spatial: float = 1.0
    temporal: float = 1.0

    def __post_init__(self) -> None:
        for name in ("width", "spatial", "temporal"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"gamma_{name[0]} must be in (0, 1], got {getattr(self, name)}")

    @property
    def name(self) -> str:
        return f"{self.width:g}x{self.spatial:g}x{self.temporal:g}"

    @classmethod
    def parse(cls, text: str) -> Configuration:
        """``"0.5x0.71x0.25"`` (gamma_w x gamma_s x gamma_t) -> a configuration."""
        try:
            width, spatial, temporal = (float(part) for part in text.split("x"))
        except ValueError:
            raise ValueError(f"expected WIDTHxSPATIALxTEMPORAL such as 0.5x0.71x0.25, got {text!r}") from None
        return cls(width, spatial, temporal)

    def input_shape(self, frames: int, side: int) -> tuple[int, int]:
        """(frames, side) of this configuration's clip for a full clip of ``frames`` x ``side``."""
        return max(1, round(frames * self.temporal)), max(1, round(side * self.spatial))

    @property
    def relative_cost(self) -> float:
        """gamma_w^2 gamma_s^2 gamma_t: the paper's Eq. 2 (the sweep measures the real count)."""
        return self.width**2 * self.spatial**2 * self.temporal


def parse_gflops_range(text: str) -> tuple[float, float]:
    """``"LO:HI"`` GFLOPs per clip -> (lo, hi); an empty side is open (``"0.01:"``, ``":0.02"``)."""
    low, colon, high = text.partition(":")
    try:
        if not colon or not (low.strip() or high.strip()):
            raise ValueError
        bounds = (float(low) if low.strip() else 0.0, float(high) if high.strip() else math.inf)
    except ValueError:
        raise ValueError(f"--gflops: expected LO:HI GFLOPs per clip such as 0.01:0.05 (either side may be "
                         f"left empty), got {text!r}") from None
    if bounds[0] < 0 or bounds[0] > bounds[1] or math.isnan(bounds[0] + bounds[1]):
        raise ValueError(f"--gflops: expected 0 <= LO <= HI, got {text!r}")
    return bounds



def parse_pick(text: str) -> int | Configuration:
    """One item of ``--configs``: an index into the range's grid, or a configuration name (``WxSxT``)."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        return Configuration.parse(text)
    except ValueError:
        raise ValueError(f"--configs: expected configuration indices or names such as 0.5x0.71x0.25, "
                         f"got {text!r}") from None



CLIP_MEMORY_MB = 2048  # for clips held in memory, by default: ~100 clips of 16 x 224 px (counted twice)


@dataclass(frozen=True)
class A3DEvalOptions:
    sweep: bool = option(False, "every width x side x frames configuration of the run's range, BatchNorm "
                         "recalibrated per configuration, on the val and test splits; stores the configuration-budget "
                         "table (chosen on val) in runs/a3d/")
    config: str | None = option(None, "one configuration, e.g. 0.5x0.71x0.25 (gamma_w x gamma_s x gamma_t), on "
                                "--split", metavar="WxSxT")
    budget: float | None = option(None, "the configuration the latest complete stored sweep of this checkpoint "
                                  "chose for this many GFLOPs per clip, evaluated on --split", metavar="GFLOPS")
    calibration_videos: int = option(200, "training videos the BatchNorm statistics of a configuration are "
                                     "recomputed on")
    configs: tuple[str, ...] | None = option(None, "with --sweep: only these configurations, comma-separated: "
                                            "indices into the range's grid (0-95 for [0.016,1]; a sweep's index "
                                            "column) or names such as 0.5x0.71x0.25", metavar="I|WxSxT,...")
    gflops: str | None = option(None, "with --sweep: only the configurations (of --configs, else of the range) whose "
                                "GFLOPs per clip lie in LO:HI; either side may be left empty (0.01: or :0.02). "
                                "Each one's GFLOPs are counted first", metavar="LO:HI")
    threads: int | None = option(None, "torch CPU threads while evaluating (default: as they are, one per core); on "
                                 "a small machine that other jobs share, 1 avoids threads waiting on each other "
                                 "(docs/methods/a3d.md)")
    clip_memory_mb: float = option(CLIP_MEMORY_MB, "MiB for decoded clips held in memory across configurations "
                                   "(each split counted twice: decoded and cut to one input); a split beyond it "
                                   "is decoded again for every configuration", metavar="MIB")

    def __post_init__(self) -> None:
        if sum((self.sweep, self.config is not None, self.budget is not None)) > 1:
            raise ValueError("give one of --sweep, --config and --budget")
        if self.clip_memory_mb < 0:
            raise ValueError(f"--clip-memory-mb must be >= 0, got {self.clip_memory_mb:g}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {self.threads}")
        if not self.sweep and (self.configs is not None or self.gflops is not None):
            raise ValueError("--configs and --gflops choose the configurations of --sweep")
        if self.configs is not None or self.gflops is not None:
            if self.configs is not None and not self.configs:
                raise ValueError("--configs: give at least one configuration")
            for pick in self.configs or ():
                parse_pick(pick)  # the form here, the range once the checkpoint is read
            if self.gflops is not None:
                parse_gflops_range(self.gflops)

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
