"""The warm-up experiment's configuration as data (``WarmupConfig``). Light to import, no torch:
``warmup --help`` builds from these defaults; the experiment itself is ``benchmarks.studies.warmup``.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.core.paths import REPO_ROOT

VIDEO_FRAMES = 8  # rendered per video; a clip is ``frames`` consecutive ones


@dataclass(frozen=True)
class WarmupConfig:
    """One warm-up experiment: data (rendered if needed), model, training budget, seeds."""

    data: str = str(REPO_ROOT / "runs_local" / "airplanes")
    train_videos: int = 1000
    val_videos: int = 100
    test_videos: int = 100
    size: int = 32
    frames: int = 6  # clip length
    fps: int = 8
    width: int = 32  # FrameEncoder channels of the first stage (x2, x4, x4 after)
    embed_dim: int = 64  # the head's TransformerParams
    depth: int = 1
    num_heads: int = 4
    mlp_dim: int = 128
    epochs: int = 25
    seeds: int = 5
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    warmup_fraction: float = 0.1  # of all steps, linear, then cosine to 0
    grw_weight: float = 0.1
    grw_window: int = 6
    processes: int = 2  # runs in parallel, one torch thread each
    figure_clips_per_class: int = 3

    def __post_init__(self) -> None:
        if min(self.train_videos, self.test_videos, self.epochs, self.seeds, self.batch_size, self.processes,
               self.figure_clips_per_class) < 1:
            raise ValueError("expected at least 1 train video, test video, epoch, seed, batch item, process and "
                             "figure clip per class")
        if not 3 <= self.frames <= VIDEO_FRAMES:
            raise ValueError(f"frames must be in [3, {VIDEO_FRAMES}], got {self.frames}")
        if not 3 <= self.grw_window <= self.frames:
            raise ValueError(f"expected 3 <= grw_window <= frames, got window {self.grw_window}, frames {self.frames}")
        if self.grw_weight <= 0:
            raise ValueError(f"grw_weight must be > 0 (the comparison arm has weight 0), got {self.grw_weight}")
        if self.lr <= 0 or not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"need lr > 0 and warmup_fraction in [0, 1), got {self.lr}, {self.warmup_fraction}")
