"""How to train: the optimisation recipe of a run (``Recipe``), with no method's or schedule's options."""

from __future__ import annotations

from dataclasses import dataclass

AMP_MODES = ("bf16", "fp16", "none")
OPTIMIZERS = ("adamw", "sgd")
LR_POLICIES = ("cosine", "steps")


@dataclass
class Recipe:
    """How to train: AdamW or SGD (no weight decay on biases and norms), per-step linear warmup then a
    cosine decay or step-wise decay (``benchmarks.engine.schedules``), label smoothing, gradient accumulation,
    an EMA of the weights, bf16 autocast or fp16 with a GradScaler on CUDA (CPU trains in float32).
    ``lr`` is for the global batch ``batch_size x accumulate x processes``. ``dropout``/``stochastic_depth``
    None keep the model's defaults; ``ema_decay`` 0 turns the EMA off. SGD is PySlowFast's (momentum 0.9,
    Nesterov), the optimizer multigrid was defined with."""

    epochs: int = 30
    batch_size: int = 8  # per process
    accumulate: int = 1  # micro-batches per optimizer step
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 2.0
    min_lr_ratio: float = 0.01  # the cosine ends at lr * min_lr_ratio
    label_smoothing: float = 0.1
    ema_decay: float = 0.9998  # per optimizer step
    dropout: float | None = None
    stochastic_depth: float | None = None
    amp: str = "bf16"
    seed: int = 0
    crop_min_area: float = 0.25  # training crops: a random area fraction in [crop_min_area, 1]; 1: whole frames
    optimizer: str = "adamw"  # or "sgd"
    lr_policy: str = "cosine"  # or "steps": lr x lr_gamma at each of lr_steps
    lr_steps: tuple[int, ...] = ()  # epochs at which the step policy decays the lr
    lr_gamma: float = 0.1

    def __post_init__(self) -> None:
        self.lr_steps = tuple(int(epoch) for epoch in self.lr_steps)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.lr_policy not in LR_POLICIES:
            raise ValueError(f"lr_policy must be one of {LR_POLICIES}, got {self.lr_policy!r}")
        if self.lr_policy == "steps" and not self.lr_steps:
            raise ValueError("lr_policy 'steps' needs lr_steps (the epochs at which the lr decays, "
                             "e.g. --lr-steps 8,12)")
        if self.lr_policy == "cosine" and self.lr_steps:
            raise ValueError(f"lr_steps {list(self.lr_steps)} given with the cosine lr policy (add --lr-policy steps)")
        bounds = (0, *self.lr_steps, self.epochs + 1)
        if any(b <= a for a, b in zip(bounds, bounds[1:])):
            raise ValueError(f"lr_steps must increase within (0, epochs={self.epochs}], got {list(self.lr_steps)}")
        if not 0 < self.lr_gamma <= 1:
            raise ValueError(f"lr_gamma must be in (0, 1], got {self.lr_gamma}")
        for name in ("epochs", "batch_size", "accumulate"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_epochs < 0:
            raise ValueError(f"need lr > 0, weight_decay >= 0, warmup_epochs >= 0, got "
                             f"{self.lr}, {self.weight_decay}, {self.warmup_epochs}")
        if not 0 < self.crop_min_area <= 1:
            raise ValueError(f"crop_min_area must be in (0, 1], got {self.crop_min_area}")
        if not 0 <= self.ema_decay < 1 or not 0 <= self.label_smoothing < 1 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"ema_decay and label_smoothing must be in [0, 1), min_lr_ratio in [0, 1], got "
                             f"{self.ema_decay}, {self.label_smoothing}, {self.min_lr_ratio}")
        for name in ("dropout", "stochastic_depth"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {self.amp!r}")
