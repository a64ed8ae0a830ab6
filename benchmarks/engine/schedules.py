"""How a run's optimizer steps are laid out: their shapes, their number per epoch, and the learning rate.

A :class:`Schedule` answers, as pure functions of (epoch, step in epoch): the mini-batch shape of the
step (:class:`StepShape`: clips per process, frames, side, and the lr factor that goes with them), how
many steps an epoch has, the relative lr of a step-wise policy at that step, and the number of
sub-batch BatchNorm groups (None: plain BatchNorm). Because nothing depends on history, every DDP
process agrees on every step and a run resumed in the middle of an epoch continues exactly.

- :class:`ConstantSchedule`: plain training, one shape, the same number of steps every epoch.
- ``benchmarks.methods.multigrid.schedule.MultigridSchedule``: multigrid training (seed 003), whose shape, batch and
  steps per epoch change along its long and short cycles.

Learning-rate policies (``Recipe.lr_policy``, :func:`lr_factor`):

- ``cosine``: linear warm-up over ``warmup_epochs``, then cosine decay to ``min_lr_ratio``, over the
  schedule's global steps; times the step's ``StepShape.lr_factor`` (multigrid's long-cycle batch factor).
- ``steps``: PySlowFast's ``steps_with_relative_lrs`` (:class:`StepPolicy`): the lr is multiplied by
  ``lr_gamma`` at each of ``lr_steps``, after the same linear warm-up. Multigrid rewrites the policy
  itself (one stage per long-cycle phase, batch factor included; ``multigrid.multigrid_policy``).
  PySlowFast's warm-up starts at ``WARMUP_START_LR``; here it starts near 0, as for the cosine.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from benchmarks.core.options import NoOptions
from benchmarks.core.registry import Registry
from benchmarks.engine.recipe import Recipe

if TYPE_CHECKING:  # torch and the loaders are imported where they are used: the command line reads SCHEDULES
    from torch import nn
    from torch.utils.data import DataLoader, Dataset, DistributedSampler


@dataclass(frozen=True)
class StepShape:
    """The mini-batch one optimizer step trains on, and its learning-rate factor (multiplied into
    the recipe's cosine schedule)."""

    batch_size: int  # clips per process and micro-batch
    frames: int
    side: int
    lr_factor: float = 1.0


# --------------------------------------------------------------------------- step-wise lr policy


@dataclass(frozen=True)
class StepPolicy:
    """PySlowFast's ``steps_with_relative_lrs`` recipe (``SOLVER.STEPS``, ``LRS``, ``MAX_EPOCH``, ``GAMMA``).

    ``steps`` are the epochs at which lr stages begin, starting at 0. Stage i's lr is
    ``lrs[i] * base_lr`` and runs until ``steps[i + 1]``; the last stage runs to ``max_epoch``.
    ``gamma`` is the decay per stage that the long cycle uses in place of ``lrs``.
    """

    steps: tuple[int, ...]
    lrs: tuple[float, ...]
    max_epoch: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))
        object.__setattr__(self, "lrs", tuple(float(lr) for lr in self.lrs))
        _check_steps(self.steps, self.lrs)
        if self.max_epoch < self.steps[-1]:
            raise ValueError(f"max_epoch ({self.max_epoch}) is before the last step ({self.steps[-1]})")
        if not self.gamma > 0:
            raise ValueError(f"gamma must be > 0, got {self.gamma}")

    @classmethod
    def decaying(cls, decay_epochs: Sequence[int], max_epoch: int, gamma: float = 0.1) -> StepPolicy:
        """Stages starting at 0 and at each of ``decay_epochs``, the lr times ``gamma`` at each."""
        steps = (0, *decay_epochs)
        return cls(steps, tuple(gamma**i for i in range(len(steps))), max_epoch, gamma)


def _check_steps(steps: Sequence[int], lrs: Sequence[float]) -> None:
    if not steps or steps[0] != 0:
        raise ValueError(f"steps must start at epoch 0 (PySlowFast's SOLVER.STEPS), got {list(steps)}")
    if any(int(s) != s for s in steps) or any(b < a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"steps must be non-decreasing integer epochs, got {list(steps)}")
    if len(lrs) < len(steps):
        raise ValueError(f"need one relative lr per step: {len(steps)} steps, {len(lrs)} lrs")


def steps_with_relative_lrs(epoch: float, steps: Sequence[float], lrs: Sequence[float], base_lr: float) -> float:
    """The lr at (fractional) ``epoch``: ``lrs[i] * base_lr`` for the last ``steps[i] <= epoch``.

    Same behaviour as PySlowFast's ``lr_func_steps_with_relative_lrs``. The last stage holds past
    ``max_epoch``. Repeated steps (empty phases) are skipped.
    """
    _check_steps(steps, lrs)
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    stage = bisect.bisect_right(list(steps), epoch) - 1
    return lrs[stage] * base_lr


def lr_at_epoch(epoch: float, policy: StepPolicy, base_lr: float, warmup_epochs: float = 0.0,
                warmup_start_lr: float = 0.0) -> float:
    """``steps_with_relative_lrs`` with PySlowFast's linear warmup (``get_lr_at_epoch``).

    Before ``warmup_epochs``, the lr goes linearly from ``warmup_start_lr`` to the policy's lr at
    ``warmup_epochs``.
    """
    lr = steps_with_relative_lrs(epoch, policy.steps, policy.lrs, base_lr)
    if epoch < warmup_epochs:
        end = steps_with_relative_lrs(warmup_epochs, policy.steps, policy.lrs, base_lr)
        lr = epoch * (end - warmup_start_lr) / warmup_epochs + warmup_start_lr
    return lr


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """LR factor at optimizer step ``step``: linear warmup to 1, then cosine decay to ``min_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


# --------------------------------------------------------------------------- schedules


class Schedule:
    """Step shapes, steps per epoch and step-wise lr as pure functions of (epoch, step in epoch).

    Subclasses give ``total_epochs``, ``steps_in_epoch``, ``shape`` and ``relative_lr``; counting
    global steps is shared. A schedule registered in :data:`SCHEDULES` is a subclass with a ``name``, its
    ``Options`` dataclass (``benchmarks.core.options.option`` fields, which become ``train`` flags) and the
    class methods ``check``, ``shortest_clip`` and ``for_run``; the training loop calls only the hooks
    below (``prepare_model``, ``loader``, ``before_step``, ``model_state``, ``load_model_state``, ``record``),
    so a schedule that changes the data or the model (multigrid) does so without a branch in the loop.
    """

    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    legacy_fields: ClassVar[dict[str, str]] = {}  # RunConfig fields of older checkpoints -> option names
    total_epochs: int

    # -- choosing and building the schedule of a run (class methods: no schedule exists yet)

    @classmethod
    def check(cls, options: Any, recipe: Recipe) -> None:
        """Raise ``ValueError`` when ``options`` do not go with ``recipe``."""

    @classmethod
    def shortest_clip(cls, options: Any, frames: int) -> int:
        """The fewest frames a training clip has when the row's clip has ``frames``."""
        return frames

    @classmethod
    def for_run(cls, options: Any, recipe: Recipe, frames: int, side: int, videos_per_process: int) -> Schedule:
        raise NotImplementedError

    # -- what the training loop asks of it

    def prepare_model(self, model: nn.Module) -> None:
        """Change the model before training (multigrid: sub-batch BatchNorm); nothing by default."""

    def loader(self, dataset: Dataset, sampler: DistributedSampler, epoch: int, first: int, batch_size: int,
               num_workers: int) -> tuple[DataLoader, int]:
        """The epoch's training micro-batches from micro-batch ``first`` on, and how many the epoch has:
        this process's shard in the sampler's order, in batches of ``batch_size``."""
        from benchmarks.data.videos import ResumeSampler, make_loader

        loader = make_loader(dataset, batch_size, num_workers=num_workers,
                             sampler=ResumeSampler(sampler, first * batch_size))
        return loader, math.ceil(len(sampler) / batch_size)

    def before_step(self, models: Sequence[nn.Module], epoch: int, step: int) -> None:
        """Prepare ``models`` (the model and its EMA copy) for a step; nothing by default."""

    def model_state(self, model: nn.Module) -> dict | None:
        """What a checkpoint must keep about the model beyond its state dict (None: nothing)."""
        return None

    def load_model_state(self, model: nn.Module, state: dict | None) -> None:
        """Restore what :meth:`model_state` kept."""

    def record(self, options: Any, recipe: Recipe) -> dict[str, Any]:
        """What the run's config.json says about its schedule."""
        return {"name": self.name, "total_epochs": self.total_epochs, "total_steps": self.total_steps}

    def steps_in_epoch(self, epoch: int) -> int:
        raise NotImplementedError

    def shape(self, epoch: int, step: int) -> StepShape:
        raise NotImplementedError

    def relative_lr(self, epoch: int, step: int) -> float:
        """The step-wise policy's lr at this step, relative to the base lr (``lr_policy="steps"``)."""
        raise NotImplementedError

    def bn_splits(self, epoch: int, step: int = 0) -> int | None:
        """Sub-batch BatchNorm groups for this step; None: plain BatchNorm."""
        return None

    @cached_property
    def _epoch_starts(self) -> tuple[int, ...]:
        starts = [0]
        for epoch in range(self.total_epochs):
            starts.append(starts[-1] + self.steps_in_epoch(epoch))
        return tuple(starts)

    @property
    def total_steps(self) -> int:
        return self._epoch_starts[-1]

    def global_step(self, epoch: int, step: int) -> int:
        """Optimizer steps taken before (``epoch``, ``step``)."""
        if not 0 <= epoch <= self.total_epochs:
            raise ValueError(f"epoch must be in [0, {self.total_epochs}], got {epoch}")
        return self._epoch_starts[epoch] + step

    def locate(self, global_step: int) -> tuple[int, int]:
        """(epoch, step in epoch) of a global optimizer step; ``total_steps`` maps to (total_epochs, 0)."""
        if not 0 <= global_step <= self.total_steps:
            raise ValueError(f"global step must be in [0, {self.total_steps}], got {global_step}")
        epoch = bisect.bisect_right(self._epoch_starts, global_step) - 1
        return epoch, global_step - self._epoch_starts[epoch]

    def steps_until(self, epochs: float) -> int:
        """Global steps in the first ``epochs`` (fractional) epochs, at most ``total_steps``."""
        whole = min(int(epochs), self.total_epochs)
        if whole == self.total_epochs:
            return self.total_steps
        return self._epoch_starts[whole] + round((epochs - whole) * self.steps_in_epoch(whole))


@dataclass(frozen=True, eq=False)
class ConstantSchedule(Schedule):
    """Plain training (``--schedule standard``): every step has the run's own shape; ``policy`` is the
    recipe's step-wise lr policy (None with the cosine)."""

    name: ClassVar[str] = "standard"
    step_shape: StepShape
    steps_per_epoch: int
    total_epochs: int
    policy: StepPolicy | None = None

    def steps_in_epoch(self, epoch: int) -> int:
        return self.steps_per_epoch

    def shape(self, epoch: int, step: int) -> StepShape:
        return self.step_shape

    def relative_lr(self, epoch: int, step: int) -> float:
        if self.policy is None:
            raise ValueError("this schedule has no step-wise lr policy (the recipe's lr_policy is the cosine)")
        return steps_with_relative_lrs(epoch + step / self.steps_per_epoch, self.policy.steps, self.policy.lrs, 1.0)


    @classmethod
    def for_run(cls, options: NoOptions, recipe: Recipe, frames: int, side: int,
                videos_per_process: int) -> ConstantSchedule:
        micro_batches = math.ceil(videos_per_process / recipe.batch_size)
        return cls(StepShape(recipe.batch_size, frames, side), math.ceil(micro_batches / recipe.accumulate),
                   recipe.epochs, recipe_policy(recipe) if recipe.lr_policy == "steps" else None)


SCHEDULES: Registry[type[Schedule]] = Registry("schedule")
SCHEDULES.register(ConstantSchedule.name, ConstantSchedule)


def recipe_policy(recipe: Recipe) -> StepPolicy:
    """The recipe's step-wise lr policy (``lr_steps``, ``lr_gamma`` over ``epochs``). With the cosine,
    which has no stages, one stage over all epochs: how multigrid lays its long cycle over a cosine."""
    if recipe.lr_policy == "steps":
        return StepPolicy.decaying(recipe.lr_steps, recipe.epochs, recipe.lr_gamma)
    return StepPolicy((0, recipe.epochs), (1.0, 1.0), recipe.epochs, recipe.lr_gamma)


def lr_factor(recipe: Recipe, schedule: Schedule, global_step: int) -> float:
    """The lr of global step ``global_step`` relative to ``recipe.lr`` (see the module docstring)."""
    total = schedule.total_steps
    warmup_steps = min(total, schedule.steps_until(recipe.warmup_epochs))
    epoch, step = schedule.locate(min(global_step, total))
    if recipe.lr_policy == "cosine":
        return (warmup_cosine(global_step, warmup_steps, total, recipe.min_lr_ratio)
                * schedule.shape(epoch, step).lr_factor)
    warmup = (global_step + 1) / warmup_steps if global_step < warmup_steps else 1.0
    return warmup * schedule.relative_lr(epoch, step)
