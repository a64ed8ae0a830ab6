"""What a launch is asked for, as plain data (no submitit): the modes, the SLURM resources of each task
(:class:`SlurmOptions`) and the parsing of their command-line values. Light to import, so that the
launching subcommands build their ``--launch`` options without submitit; the launching itself is
``benchmarks.engine.launch``, which uses these.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.core.paths import REPO_ROOT

MODES = ("slurm", "local", "none")
DEFAULT_LOG_DIR = REPO_ROOT / "runs_local" / "submitit"

OnResult = Callable[[str, Any], None]


@dataclass
class SlurmOptions:
    """Resources of each array task, and where submitit keeps logs and pickles.

    ``time`` is minutes (``90`` or ``"90"``) or ``"[D-]HH:MM:SS"``. ``tasks_per_node`` defaults to
    one process per GPU (one without GPUs). SLURM sends the timeout signal ``signal_delay_s``
    seconds before the time limit, which is how a :class:`ResumableTask` gets to checkpoint.
    ``sbatch`` holds extra ``#SBATCH`` options, e.g. ``{"constraint": "a100", "exclusive": True}``.
    """

    partition: str | None = None
    nodes: int = 1
    gpus_per_node: int = 0
    tasks_per_node: int | None = None
    cpus_per_task: int | None = None
    mem: str | None = None  # e.g. "32G"
    time: int | str = 60
    array_parallelism: int = 256
    account: str | None = None
    qos: str | None = None
    signal_delay_s: int = 120
    sbatch: dict[str, str | bool] = field(default_factory=dict)
    log_dir: Path = DEFAULT_LOG_DIR

    def __post_init__(self) -> None:
        self.log_dir = Path(self.log_dir)
        parse_time_minutes(self.time)  # a bad time limit fails here, not at submission
        for name in ("nodes", "array_parallelism"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("gpus_per_node", "signal_delay_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("tasks_per_node", "cpus_per_task"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 when given, got {getattr(self, name)}")

    @property
    def timeout_min(self) -> int:
        return parse_time_minutes(self.time)

    def executor_parameters(self) -> dict[str, Any]:
        """Parameters for ``submitit.AutoExecutor.update_parameters`` (``None`` means unset)."""
        return {
            "timeout_min": self.timeout_min,
            "nodes": self.nodes,
            "gpus_per_node": self.gpus_per_node or None,
            "tasks_per_node": self.tasks_per_node or max(self.gpus_per_node, 1),
            "cpus_per_task": self.cpus_per_task,
            "slurm_partition": self.partition,
            "slurm_mem": self.mem,
            "slurm_account": self.account,
            "slurm_qos": self.qos,
            "slurm_array_parallelism": self.array_parallelism,
            "slurm_signal_delay_s": self.signal_delay_s,
            "slurm_additional_parameters": dict(self.sbatch) or None,
        }


def parse_time_minutes(value: int | str) -> int:
    """Minutes in a SLURM time limit: ``90``, ``"90"``, ``"1:30:00"`` or ``"2-00:00:00"``.

    Seconds round up to the next minute (submitit takes whole minutes).
    """
    text = str(value).strip()
    match = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d\d):(\d\d)", text)
    if match:
        days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
        total = ((days * 24 + hours) * 60 + minutes) + math.ceil(seconds / 60)
    elif text.isdigit():
        total = int(text)
    else:
        raise ValueError(f"time must be minutes (e.g. 90) or [D-]HH:MM:SS (e.g. 1:30:00), got {value!r}")
    if total < 1:
        raise ValueError(f"time must be at least one minute, got {value!r}")
    return total


def parse_sbatch_options(pairs: Sequence[str]) -> dict[str, str | bool]:
    """``["constraint=a100", "exclusive"]`` -> ``{"constraint": "a100", "exclusive": True}``."""
    options: dict[str, str | bool] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().lstrip("-")
        if not key or (sep and not value):
            raise ValueError(f"--sbatch expects KEY=VALUE or a bare flag such as exclusive, got {pair!r}")
        options[key] = value if sep else True
    return options
