"""The evaluation protocols by name, and the values of the GRW authors' per-clip protocol
(:class:`ClipProtocol`, :func:`authors_protocol`): plain data, light to import, so that ``eval --help``
builds without torch. What the authors' protocol is and how its clips are laid out and read:
``benchmarks.table1.protocols``, which uses these.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from benchmarks.table1.specs import AUTHORS_EVALUATION, AUTHORS_REPO

PROTOCOLS = ("suite", "authors")
SUITE_PROTOCOL = ("the suite's per-video protocol: the row's clips x crops at its fps, short side resized "
                  "keeping the aspect ratio, logits averaged over the views, top-1 over videos")
PER_VIDEO_AGGREGATION = "mean of the clips' logits"


@dataclass(frozen=True)
class ClipProtocol:
    """Every ``frames``-frame clip of a video resampled to ``fps``; frames squashed to ``resize`` x
    ``resize`` (aspect ratio not kept), centre-cropped to ``crop``, scaled to [0, 1]."""

    frames: int
    fps: float
    resize: int
    crop: int

    def __post_init__(self) -> None:
        if self.frames < 1 or self.fps <= 0 or self.crop < 1 or self.resize < self.crop:
            raise ValueError(f"need frames >= 1, fps > 0 and resize >= crop >= 1, got {self}")

    @property
    def clip_shape(self) -> tuple[int, int, int, int, int]:
        """Input of one clip: ``[1, 3, frames, crop, crop]``."""
        return (1, 3, self.frames, self.crop, self.crop)


OVERRIDABLE = tuple(field.name for field in dataclasses.fields(ClipProtocol))


def authors_protocol(row: int, overrides: Mapping[str, float] | None = None) -> tuple[ClipProtocol, dict[str, dict]]:
    """The authors' protocol of a GRW row and the deviations ``overrides`` make from it
    (``{field: {"authors": value, "used": value}}``); ValueError for a row they did not evaluate."""
    if row not in AUTHORS_EVALUATION:
        raise ValueError(f"the authors' protocol exists only for the GRW rows {sorted(AUTHORS_EVALUATION)} "
                         f"(their released models), not row {row}")
    unknown = sorted(set(overrides or {}) - set(OVERRIDABLE))
    if unknown:
        raise ValueError(f"unknown protocol override(s) {unknown}; known: {list(OVERRIDABLE)}")
    authors = AUTHORS_EVALUATION[row]
    theirs = {name: getattr(authors, name) for name in OVERRIDABLE}
    used = {**theirs, **(overrides or {})}
    used = {name: float(value) if name == "fps" else int(value) for name, value in used.items()}
    deviations = {name: {"authors": theirs[name], "used": used[name]} for name in OVERRIDABLE
                  if used[name] != theirs[name]}
    return ClipProtocol(**used), deviations


def describe(protocol: ClipProtocol) -> str:
    """One line for tables and logs."""
    return (f"the GRW authors' per-clip protocol ({AUTHORS_REPO}): every {protocol.frames}-frame clip at "
            f"{protocol.fps:g} fps, {protocol.resize}x{protocol.resize} resize, {protocol.crop} centre crop, "
            "top-1 over clips")
