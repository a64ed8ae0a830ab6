"""Training and evaluation methods: the one interface through which a run differs from plain training.

A run's ``method`` (``RunConfig.method``, ``--method``) is looked up in :data:`METHODS`. GRW is not a
method: it is a property of the row (its spec), and works with any method. The training loop and the
evaluation call only this interface, so a method is added by writing a class in its own folder
(``benchmarks/methods/<name>/``) and registering it, not by branching the loop:

- ``Options``: a dataclass of the method's own options (``benchmarks.core.options.option`` fields; they
  become ``train`` flags and are stored in the run config as ``method_options``); ``legacy_fields`` maps
  the ``RunConfig`` fields older checkpoints stored them in.
- ``prepare(model, spec)``: the network the method trains (e.g. slimmable layers for A3D, dynamic
  convolutions and gates for VA-RED2); standard returns it as is.
- ``loss(model, videos, labels, criterion)``: the training loss of one micro-batch and its named
  terms (floats for the logs). A3D runs the full network and sampled sub-networks and adds its
  distillation term; VA-RED2 adds the efficiency loss on the gates; standard is cross-entropy plus
  the model's own auxiliary (GRW) terms.
- ``eval_settings()`` / ``setting(model, name)``: the configurations a trained model is evaluated
  at (standard: one, ``"default"``), and a context manager that puts the model in one; ``predict``
  returns the logits and, per video, any measured extras (VA-RED2: the GFLOPs its gates chose).
- ``EvalOptions`` and ``evaluate(options, config, store)``: evaluations of the method's own (A3D's sweep
  over configurations); their options become ``eval`` flags.

How the steps are laid out (plain or multigrid: shapes, batch sizes, steps per epoch, lr) is not a
method but the run's schedule (``RunConfig.schedule``, ``benchmarks.engine.schedules``), so it combines
with any method.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar

from benchmarks.core.options import NoOptions, from_dict
from benchmarks.core.registry import Registry
from benchmarks.core.store import DEFAULT_SETTING

if TYPE_CHECKING:  # torch is imported where it is used: the command line reads METHODS without it
    from torch import Tensor, nn

    from benchmarks.core.store import Store
    from benchmarks.table1.specs import RowSpec


def logits_of(output: Tensor | tuple[Tensor, dict]) -> Tensor:
    """GRW models return ``(logits, aux)``, baselines return logits."""
    return output[0] if isinstance(output, tuple) else output


class Method:
    """Plain supervised training and evaluation: the interface's default behaviour."""

    name: ClassVar[str] = "standard"
    terms: ClassVar[tuple[str, ...]] = ("loss", "ce", "grw")  # what ``loss`` reports, logged per step and epoch
    Options: ClassVar[type] = NoOptions
    EvalOptions: ClassVar[type] = NoOptions
    legacy_fields: ClassVar[dict[str, str]] = {}  # RunConfig fields of older checkpoints -> option names

    def __init__(self, options: Any = None) -> None:
        self.options = options if options is not None else self.Options()

    def prepare(self, model: nn.Module, spec: RowSpec) -> nn.Module:
        return model

    def loss(self, model: nn.Module, videos: Tensor, labels: Tensor,
             criterion: Callable[[Tensor, Tensor], Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Cross-entropy plus the model's auxiliary losses (GRW models return them already weighted)."""
        import torch

        output = model(videos)
        logits, aux = output if isinstance(output, tuple) else (output, {})
        ce = criterion(logits.float(), labels)
        grw = sum((term.float() for term in aux.values()), torch.zeros((), device=ce.device))
        loss = ce + grw
        return loss, {"loss": loss.item(), "ce": ce.item(), "grw": grw.item()}

    def eval_settings(self) -> tuple[str, ...]:
        """The configurations a trained model can be evaluated at; the first is the default."""
        return (DEFAULT_SETTING,)

    def setting(self, model: nn.Module, name: str) -> AbstractContextManager:
        """A context in which ``model`` runs in configuration ``name``."""
        if name not in self.eval_settings():
            raise ValueError(f"method {self.name!r} has no evaluation setting {name!r}; "
                             f"settings: {', '.join(self.eval_settings())}")
        return contextlib.nullcontext()

    def predict(self, model: nn.Module, videos: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Logits of a batch and per-video extras (none for standard)."""
        return logits_of(model(videos)), {}

    def evaluate(self, options: Any, config: Any, store: Store) -> dict:
        """The method's own evaluation of one checkpoint (``config``: an ``EvalConfig``) with its
        ``EvalOptions``; returns the stored record (with ``path`` and ``table``: rows to print)."""
        raise NotImplementedError(f"method {self.name!r} has no evaluation of its own")


METHODS: Registry[type[Method]] = Registry("method")
METHODS.register(Method.name, Method)


def get_method(name: str, options: dict[str, Any] | None = None) -> Method:
    """The method ``name`` with ``options`` (a dict, as stored in run configs; defaults for the rest)."""
    cls = METHODS.get(name)
    return cls(from_dict(cls.Options, options, f"method {name}"))

