"""One training run's configuration (``RunConfig``): the row, its data and outputs, the recipe, and which
training method and schedule it uses, each with its own options; and one evaluation's (``EvalConfig``,
run by ``benchmarks.engine.evaluate``). Plain data, light to import: ``train`` and ``eval`` build their
flags from these defaults without torch.

``RunConfig`` knows no method and no schedule: ``method_options`` and ``schedule_options`` hold the options of
the chosen ones, checked against their own ``Options`` dataclass (``benchmarks.engine.method.METHODS``,
``benchmarks.engine.schedules.SCHEDULES``) and stored complete (every default written out), so a checkpoint
says exactly how it was trained. Checkpoints written before methods owned their options (their options were
``RunConfig`` fields such as ``a3d_range``) load through each method's and schedule's ``legacy_fields``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from benchmarks.core import options as opts
from benchmarks.engine.method import METHODS, Method, get_method
from benchmarks.engine.recipe import Recipe
from benchmarks.engine.schedules import SCHEDULES, Schedule
from benchmarks.table1.clip_protocol import PROTOCOLS
from benchmarks.table1.specs import get_spec

CHANNELS_LAST_MODES = ("auto", "on", "off")
# RunConfig fields that may change between a run and its resumption (they do not change the result).
RESUMABLE_CHANGES = {"resume", "num_workers", "device", "log_every", "data", "annotations", "out", "channels_last"}


@dataclass
class RunConfig:
    """One training run. ``grw`` None follows the row's spec; the input overrides None keep the spec's."""

    row: int | str  # number or name; stored as the number
    data: str
    out: str
    recipe: Recipe = field(default_factory=Recipe)
    method: str = "standard"  # a registered training method (benchmarks.engine.method.METHODS)
    method_options: dict[str, Any] = field(default_factory=dict)  # the method's own options (its Options)
    schedule: str = "standard"  # how the steps are laid out (benchmarks.engine.schedules.SCHEDULES)
    schedule_options: dict[str, Any] = field(default_factory=dict)  # the schedule's own options
    annotations: str | None = None  # a directory of <split>.csv, or one CSV; default DATA/annotations
    frames: int | None = None
    res: int | None = None
    fps: float | None = None
    grw: bool | None = None
    grw_weight: float | None = None
    grw_window: int | None = None
    validate: bool = True  # evaluate raw and EMA weights on the val split after each epoch
    resume: bool = False
    num_workers: int = 4
    cache_videos: bool = False  # keep the decoded training videos in memory (small datasets, num_workers 0)
    device: str | None = None  # default: CUDA when available
    channels_last: str = "auto"  # convolutions in channels-last memory: "auto" on CPU only (use_channels_last)
    log_every: int = 20  # optimizer steps between log lines
    init: str | None = None  # start from these weights: a catalogue name (public_weights) or a checkpoint file
    init_sha256: str | None = None  # the sha256 of the file ``init`` names, checked when training starts

    def __post_init__(self) -> None:
        self.row = get_spec(self.row).row  # "1", 1 and "MoViNet-A0-S-GRW" are the same run
        method, schedule = METHODS.get(self.method), SCHEDULES.get(self.schedule)
        self.method_options = opts.to_dict(opts.from_dict(method.Options, self.method_options,
                                                          f"method {self.method}"))
        schedule_options = opts.from_dict(schedule.Options, self.schedule_options, f"schedule {self.schedule}")
        self.schedule_options = opts.to_dict(schedule_options)
        schedule.check(schedule_options, self.recipe)
        if self.channels_last not in CHANNELS_LAST_MODES:
            raise ValueError(f"channels_last must be one of {CHANNELS_LAST_MODES}, got {self.channels_last!r}")
        if self.num_workers < 0 or self.log_every < 1:
            raise ValueError(f"need num_workers >= 0 and log_every >= 1, got {self.num_workers}, {self.log_every}")

    def training_method(self) -> Method:
        """The run's method, with its options."""
        return get_method(self.method, self.method_options)

    def schedule_kind(self) -> tuple[type[Schedule], Any]:
        """The run's schedule kind and its options."""
        kind = SCHEDULES.get(self.schedule)
        return kind, opts.from_dict(kind.Options, self.schedule_options, f"schedule {self.schedule}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """The inverse of :meth:`to_dict` (how configs are stored in checkpoints and config.json); also
        reads configs written before methods and schedules owned their options."""
        values = dict(values)
        recipe = Recipe(**values.pop("recipe", {}))
        _move_legacy_fields(values, "method", METHODS.items())
        _move_legacy_fields(values, "schedule", SCHEDULES.items())
        return cls(recipe=recipe, **values)


def _move_legacy_fields(values: dict[str, Any], kind: str, registered) -> None:
    """Options stored as top-level fields by older versions go to ``<kind>_options`` of the chosen
    component; those of components the run did not use are dropped (they were unused defaults)."""
    chosen = values.get(kind, "standard")
    options = dict(values.get(f"{kind}_options") or {})
    for name, component in registered:
        for old, new in component.legacy_fields.items():
            if old in values:
                value = values.pop(old)
                if name == chosen:
                    options.setdefault(new, value)
    values[f"{kind}_options"] = options


@dataclass
class EvalConfig:
    """One evaluation. ``weights_variant`` None: the EMA weights when the checkpoint has them, else raw.
    ``protocol``: ``"suite"`` (the row's own, per video) or ``"authors"`` (``benchmarks.table1.protocols``, GRW
    rows); ``protocol_overrides`` changes the authors' values (``frames``, ``fps``, ``resize``, ``crop``;
    for tests and smoke runs, recorded as deviations)."""

    checkpoint: str
    data: str
    row: int | str | None = None  # when given, must be the checkpoint's row
    split: str = "val"
    annotations: str | None = None  # as in TrainConfig; default DATA/annotations/<split>.csv when present
    weights_variant: str | None = None
    protocol: str = "suite"
    protocol_overrides: dict[str, float] = field(default_factory=dict)
    chunk: int = 8  # frames per streaming call
    compare_whole_clip: bool = False
    dataset_name: str | None = None
    setting: str | None = None  # the method's evaluation setting; default its first
    batch_size: int = 4
    num_workers: int = 4
    device: str | None = None  # default: CUDA when available
    index_cache: str | None = None  # folder for the video index cache; default: next to the data

    def __post_init__(self) -> None:
        if self.weights_variant not in (None, "ema", "raw"):
            raise ValueError(f"weights_variant must be 'ema' or 'raw', got {self.weights_variant!r}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {list(PROTOCOLS)}, got {self.protocol!r}")
        if self.protocol_overrides and self.protocol != "authors":
            raise ValueError("protocol_overrides change the authors' protocol: they need protocol='authors'")
        if self.chunk < 1 or self.batch_size < 1 or self.num_workers < 0:
            raise ValueError(f"chunk and batch_size must be >= 1 and num_workers >= 0, got {self.chunk}, "
                             f"{self.batch_size}, {self.num_workers}")
