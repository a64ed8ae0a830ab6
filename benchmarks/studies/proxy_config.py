"""The CPU proxy's setting as data: its configuration (``ProxyConfig``) and its models (``VARIANTS``).
Light to import, no torch: ``proxy --help`` builds from these defaults; the proxy itself
(``benchmarks.studies.proxy``) and the studies on its data import them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.core.paths import REPO_ROOT
from benchmarks.engine.recipe import Recipe
from benchmarks.table1.specs import parse_rows


@dataclass(frozen=True)
class ProxyConfig:
    """The proxy's data (the warm-up airplanes), input, budget and GRW settings."""

    data: str = str(REPO_ROOT / "runs_local" / "airplanes")
    work: str = str(REPO_ROOT / "runs_local" / "proxy")  # training run directories
    train_videos: int = 3000
    val_videos: int = 100
    test_videos: int = 100
    video_frames: int = 8
    size: int = 32
    frames: int = 6
    fps: int = 8
    epochs: int | None = None  # None: each variant's own (Variant.epochs)
    seeds: int = 3
    batch_size: int = 16
    lr: float = 2e-3
    warmup_epochs: float = 0.3
    crop_min_area: float = 1.0  # whole frames: with the suite's 0.25, MobileNetV3 + TSM does not learn at 32 px
    grw_weight: float = 0.1
    grw_window: int = 6
    precise_bn: bool = True  # recompute BatchNorm statistics on the training clips before evaluating
    precise_bn_videos: int = 1000  # ... on this many of them
    processes: int = 2  # runs side by side, one torch thread each, decoding in their own process
    num_workers: int = 0

    def __post_init__(self) -> None:
        if min(self.epochs or 1, self.seeds, self.processes, self.train_videos, self.test_videos) < 1:
            raise ValueError("expected at least 1 epoch, seed, process, training video and test video")

    def recipe(self, seed: int = 0, lr: float | None = None, epochs: int | None = None) -> Recipe:
        """The suite's recipe at this budget (``lr``/``epochs`` override the proxy's). No EMA: with a few
        hundred steps it would lag far behind."""
        epochs = self.epochs or epochs or DEFAULT_EPOCHS
        return Recipe(epochs=epochs, batch_size=self.batch_size, lr=self.lr if lr is None else lr,
                      warmup_epochs=self.warmup_epochs, ema_decay=0.0, seed=seed, crop_min_area=self.crop_min_area)


DEFAULT_EPOCHS = 2  # the 3D models: 376 steps of 16 clips on 3,000 videos


@dataclass(frozen=True)
class Variant:
    """One proxy model: a Table 1 row, with GRW on or off (head rows keep their head either way).

    ``epochs``, ``lr``, ``grw_weight``: the family's where they are not the proxy's (``benchmarks.studies.warmup``
    has the measurements behind them): MobileNetV3 needs 3x the steps and a lower learning rate, and its
    GRW taps a lower weight. X3D's taps (three stage outputs) get 0.0005, ten times less than
    MobileNetV3's: a guess, not tuned (in the measured run their weighted term is 0.11-0.13 over the
    first epoch, against a cross-entropy of 1.05-1.14).
    ``minutes``: its training time per run at the defaults, so that the longest runs start first and two
    processes finish together."""

    name: str
    row: int
    grw: bool
    minutes: float
    epochs: int = DEFAULT_EPOCHS
    lr: float | None = None
    grw_weight: float | None = None

    def learning_rate(self, config: ProxyConfig) -> float:
        return self.lr if self.lr is not None else config.lr

    def run_epochs(self, config: ProxyConfig) -> int:
        return config.epochs or self.epochs

    def weight(self, config: ProxyConfig) -> float | None:
        """The GRW weight of this variant's runs (None without GRW)."""
        if not self.grw:
            return None
        return self.grw_weight if self.grw_weight is not None else config.grw_weight


VARIANTS: tuple[Variant, ...] = (
    Variant("MoViNet-A0-S + GRW head", row=1, grw=True, minutes=1.9),
    Variant("MoViNet-A0-S head without GRW", row=1, grw=False, minutes=1.6),
    Variant("MobileNetV3-S, frame-wise (control: sees no motion)", row=3, grw=False, minutes=2.5, epochs=6, lr=1e-3),
    Variant("MobileNetV3-S + TSM", row=4, grw=False, minutes=2.3, epochs=6, lr=1e-3),
    Variant("MobileNetV3-S + TSM + GRW taps", row=4, grw=True, minutes=2.55, epochs=6, lr=1e-3, grw_weight=0.005),
    Variant("X3D-XS", row=5, grw=False, minutes=2.65),
    Variant("X3D-XS + GRW taps", row=5, grw=True, minutes=2.7, grw_weight=0.0005),
)



def select_variants(rows: str | None) -> tuple[Variant, ...]:
    """The variants of the given Table 1 rows (``"1,3"``), all of them for None."""
    if not rows:
        return VARIANTS
    wanted = {spec.row for spec in parse_rows(rows)}
    missing = wanted - {variant.row for variant in VARIANTS}
    if missing:
        raise ValueError(f"no proxy model for row(s) {sorted(missing)}; the proxy covers rows "
                         f"{sorted({variant.row for variant in VARIANTS})}")
    return tuple(variant for variant in VARIANTS if variant.row in wanted)
