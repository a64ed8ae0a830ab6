"""VA-RED2's options as data: the method's ``train`` options, and the options of ``vared2-cost`` and
``vared2-study`` (with the study's configuration). Light to import, no torch: the folder's ``__init__``
declares them, so the command line builds its flags from this module alone; the modules that use them
import them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.core.cli import default
from benchmarks.core.options import option
from benchmarks.core.paths import REPO_ROOT

STAGES = ("joint", "finetune")


@dataclass(frozen=True)
class VARED2Options:
    stage: str = option("joint", "joint (accuracy loss only) or finetune (start from the joint run with --init "
                        "OUT/last.pt; adds the efficiency loss)", flag="--stage", choices=STAGES)
    weight: float = option(0.8, "--stage finetune: lambda_e of the efficiency loss (the paper's 0.8)",
                           flag="--efficiency-weight")

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError(f"vared2_weight must be >= 0, got {self.weight}")


DEFAULT_ROWS = (5, 13)  # X3D-XS, X3D-M


@dataclass(frozen=True)
class CostOptions:
    """``vared2-cost``: the X3D rows to measure."""

    rows: tuple[int, ...] = option(DEFAULT_ROWS, "comma-separated X3D rows of Table 1, each at its own input "
                                   "(default: %(default)s)")


@dataclass(frozen=True)
class VARED2StudyConfig:
    """The study's seeds, fine-tuning, designed videos, processes and work folder (``vared2-study``)."""

    seeds: int = 3
    finetune_epochs: int = 1
    efficiency_weight: float = 0.8  # the paper's lambda_e
    speed_videos: int = 60  # per designed split
    processes: int = 2
    work: str = str(REPO_ROOT / "runs_local" / "vared2")

    def __post_init__(self) -> None:
        if min(self.seeds, self.processes, self.speed_videos, self.finetune_epochs) < 1:
            raise ValueError("expected at least 1 seed, process, designed video and fine-tuning epoch")


@dataclass(frozen=True)
class StudyOptions:
    """``vared2-study``: what of :class:`VARED2StudyConfig` the command line sets."""

    seeds: int = option(default(VARED2StudyConfig, "seeds"), "(default: %(default)s)")
    processes: int = option(default(VARED2StudyConfig, "processes"), "runs in parallel, one torch thread each "
                            "(default: %(default)s)")
