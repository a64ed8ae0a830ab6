"""Training and evaluation methods: the one interface through which a run differs from plain training.

A run's ``method`` (``RunConfig.method``, ``--method``) is looked up in :data:`METHODS`. GRW is not a
method: it is a property of the row (its spec), and works with any method. The training loop and the
evaluation call only this interface, so a method is added by writing a class, not by branching the loop:

- ``prepare(model, spec)``: the network the method trains (e.g. slimmable layers for A3D, dynamic
  convolutions and gates for VA-RED2); standard returns it as is.
- ``loss(model, videos, labels, criterion)``: the training loss of one micro-batch and its named
  terms (floats for the logs). A3D runs the full network and sampled sub-networks and adds its
  distillation term; VA-RED2 adds the efficiency loss on the gates; standard is cross-entropy plus
  the model's own auxiliary (GRW) terms.
- ``eval_settings()`` / ``setting(model, name)``: the configurations a trained model is evaluated
  at (A3D: width x side x frames budgets; standard: one, ``"default"``), and a context manager that
  puts the model in one; ``predict`` returns the logits and, per video, any measured extras (VA-RED2:
  the GFLOPs its gates chose).

``standard`` and ``a3d`` (seed 002, ``benchmarks.a3d``) are implemented; VA-RED2 (seed 004) plugs in
through the same interface. How the steps are laid out (plain or multigrid, seed 003: shapes, batch
sizes, steps per epoch, lr) is not a method but the run's schedule (``RunConfig.schedule``,
``benchmarks.schedules``), so it combines with any method.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from baselines.slimmable import make_slimmable
from benchmarks.a3d import A3D_RANGES, a3d_loss, x3d_of

if TYPE_CHECKING:
    from benchmarks.runs import RunConfig
    from benchmarks.specs import RowSpec

DEFAULT_A3D_RANGE = "[0.016,1]"


def logits_of(output: Tensor | tuple[Tensor, dict]) -> Tensor:
    """GRW models return ``(logits, aux)``, baselines return logits."""
    return output[0] if isinstance(output, tuple) else output


class Method:
    """Plain supervised training and evaluation: the interface's default behaviour."""

    name = "standard"
    terms: tuple[str, ...] = ("loss", "ce", "grw")  # what ``loss`` reports, logged per step and epoch

    def __init__(self, run: RunConfig | None = None) -> None:
        """``run``: the run's configuration, for methods with options of their own."""

    def prepare(self, model: nn.Module, spec: RowSpec) -> nn.Module:
        return model

    def loss(self, model: nn.Module, videos: Tensor, labels: Tensor,
             criterion: Callable[[Tensor, Tensor], Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Cross-entropy plus the model's auxiliary losses (GRW models return them already weighted)."""
        output = model(videos)
        logits, aux = output if isinstance(output, tuple) else (output, {})
        ce = criterion(logits.float(), labels)
        grw = sum((term.float() for term in aux.values()), torch.zeros((), device=ce.device))
        loss = ce + grw
        return loss, {"loss": loss.item(), "ce": ce.item(), "grw": grw.item()}

    def eval_settings(self) -> tuple[str, ...]:
        """The configurations a trained model can be evaluated at; the first is the default."""
        return ("default",)

    def setting(self, model: nn.Module, name: str) -> AbstractContextManager:
        """A context in which ``model`` runs in configuration ``name``."""
        if name not in self.eval_settings():
            raise ValueError(f"method {self.name!r} has no evaluation setting {name!r}; "
                             f"settings: {', '.join(self.eval_settings())}")
        return contextlib.nullcontext()

    def predict(self, model: nn.Module, videos: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Logits of a batch and per-video extras (none for standard)."""
        return logits_of(model(videos)), {}


class A3DMethod(Method):
    """A3D (seed 002, ``benchmarks.a3d``): the X3D made slimmable, trained with the full network and two
    sampled sub-networks per step (CE + the distillation of Eq. 3). Evaluated as trained at the full
    configuration; every other configuration is evaluated by the sweep (``benchmarks.a3d_sweep``),
    which recomputes BatchNorm statistics per configuration."""

    name = "a3d"
    terms = ("loss", "ce", "distill")

    def __init__(self, run: RunConfig | None = None) -> None:
        self.range = A3D_RANGES[run.a3d_range if run is not None else DEFAULT_A3D_RANGE]

    def prepare(self, model: nn.Module, spec: RowSpec) -> nn.Module:
        try:
            make_slimmable(x3d_of(model))
        except ValueError as error:
            raise ValueError(f"--method a3d needs an X3D row; row {spec.row} ({spec.name}) is {spec.model}") from error
        return model

    def loss(self, model: nn.Module, videos: Tensor, labels: Tensor,
             criterion: Callable[[Tensor, Tensor], Tensor]) -> tuple[Tensor, dict[str, float]]:
        loss, terms, _ = a3d_loss(model, videos, labels, criterion, self.range, logits_of)
        return loss, terms


METHODS: dict[str, type[Method]] = {"standard": Method, "a3d": A3DMethod}


def get_method(name: str, run: RunConfig | None = None) -> Method:
    """The method ``name``; ``run`` gives it the run's options (A3D's range)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; implemented: {', '.join(METHODS)}")
    return METHODS[name](run)
