"""A training method defined outside ``benchmarks/``: cross-entropy with its own label smoothing.

It proves that a method is one folder (here, one module) plus one registration: importing this module
(or naming it in ``$GRW_BENCH_PLUGINS``) adds ``--method label-smoothing`` and its ``--smoothing`` flag
to ``train``, and runs record it in their checkpoints. Nothing under ``benchmarks/`` names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.core.options import option
from benchmarks.engine.method import METHODS, Method


@dataclass(frozen=True)
class SmoothingOptions:
    smoothing: float = option(0.2, "label smoothing of this method's cross-entropy (the recipe's is ignored)")

    def __post_init__(self) -> None:
        if not 0 <= self.smoothing < 1:
            raise ValueError(f"--smoothing must be in [0, 1), got {self.smoothing}")


class LabelSmoothing(Method):
    name: ClassVar[str] = "label-smoothing"
    terms: ClassVar[tuple[str, ...]] = ("loss", "ce", "grw", "smoothing")
    Options: ClassVar[type] = SmoothingOptions

    def loss(self, model: nn.Module, videos: Tensor, labels: Tensor,
             criterion: Callable[[Tensor, Tensor], Tensor]) -> tuple[Tensor, dict[str, float]]:
        output = model(videos)
        logits, aux = output if isinstance(output, tuple) else (output, {})
        ce = F.cross_entropy(logits.float(), labels, label_smoothing=self.options.smoothing)
        grw = sum((term.float() for term in aux.values()), torch.zeros((), device=ce.device))
        loss = ce + grw
        return loss, {"loss": loss.item(), "ce": ce.item(), "grw": grw.item(), "smoothing": self.options.smoothing}


METHODS.register(LabelSmoothing.name, LabelSmoothing)
