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

``standard``, ``a3d`` (seed 002, ``benchmarks.methods.a3d.model``) and ``vared2`` (seed 004, ``baselines.vared2``)
are implemented. How the steps are laid out (plain or multigrid, seed 003: shapes, batch
sizes, steps per epoch, lr) is not a method but the run's schedule (``RunConfig.schedule``,
``benchmarks.engine.schedules``), so it combines with any method.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from baselines import vared2
from baselines.slimmable import make_slimmable
from benchmarks.core.counting import count_gflops
from benchmarks.methods.a3d.model import A3D_RANGES, a3d_loss, x3d_of

if TYPE_CHECKING:
    from benchmarks.engine.runs import RunConfig
    from benchmarks.table1.specs import RowSpec

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
    """A3D (seed 002, ``benchmarks.methods.a3d.model``): the X3D made slimmable, trained with the full network and two
    sampled sub-networks per step (CE + the distillation of Eq. 3). Evaluated as trained at the full
    configuration; every other configuration is evaluated by the sweep (``benchmarks.methods.a3d.sweep``),
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


class VARED2Method(Method):
    """VA-RED2 (seed 004, ``baselines.vared2``): the X3D's pointwise convolutions (``conv_a`` and ``conv_c``
    of every block) become dynamic convolutions with a gate. Stage ``joint`` trains with the accuracy loss
    alone; stage ``finetune`` (from the joint run's weights, ``--init``) adds the efficiency loss with
    weight ``vared2_weight`` (the paper's lambda_e 0.8). ``predict`` reports each video's GFLOPs (the
    static layers plus what its gates chose; gates and cheap operations excluded) and each dynamic layer's
    option (R, r)."""

    name = "vared2"
    terms = ("loss", "ce", "efficiency")

    def __init__(self, run: RunConfig | None = None) -> None:
        finetune = run is not None and run.vared2_stage == "finetune"
        self.efficiency_weight = run.vared2_weight if finetune else 0.0

    def prepare(self, model: nn.Module, spec: RowSpec) -> nn.Module:
        try:
            net = x3d_of(model)
        except ValueError as error:
            raise ValueError(f"--method vared2 needs an X3D row; row {spec.row} ({spec.name}) "
                             f"is {spec.model}") from error
        layers = [name for name, m in net.named_modules() if name.endswith(("conv_a.0", "conv_c.0"))
                  and isinstance(m, nn.Conv3d)]
        net.vared2_macs = vared2.convert(net, layers, (1, 3, spec.frames, spec.res, spec.res))
        return model

    def loss(self, model: nn.Module, videos: Tensor, labels: Tensor,
             criterion: Callable[[Tensor, Tensor], Tensor]) -> tuple[Tensor, dict[str, float]]:
        logits = logits_of(model(videos))
        ce = criterion(logits.float(), labels)
        net = x3d_of(model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model)
        efficiency = vared2.efficiency_loss(net, net.vared2_macs, logits.argmax(1) == labels)
        loss = ce + self.efficiency_weight * efficiency
        return loss, {"loss": loss.item(), "ce": ce.item(), "efficiency": efficiency.item()}

    def predict(self, model: nn.Module, videos: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        net = x3d_of(model)
        if not hasattr(net, "vared2_static_gflops"):  # fvcore of the layers that are not dynamic, at this input
            with vared2.full_option(net):
                total = count_gflops(net, (1, *videos.shape[1:]))
            net.vared2_static_gflops = total - sum(net.vared2_macs.values()) / 1e9
        logits = logits_of(model(videos))  # after the count: its forward pass sets what each layer spent
        gflops = vared2.spent_gflops(net, net.vared2_macs, net.vared2_static_gflops)
        return logits, {"gflops": gflops, **vared2.chosen_options(net)}


METHODS: dict[str, type[Method]] = {"standard": Method, "a3d": A3DMethod, "vared2": VARED2Method}


def get_method(name: str, run: RunConfig | None = None) -> Method:
    """The method ``name``; ``run`` gives it the run's options (A3D's range)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; implemented: {', '.join(METHODS)}")
    return METHODS[name](run)
