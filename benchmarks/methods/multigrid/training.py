"""Multigrid as a schedule of ``train`` (``--schedule multigrid``): its options, how it samples an epoch's
batches, sub-batch BatchNorm before and during training, and what its checkpoints keep.

The schedule itself (shapes, steps, lr; PySlowFast's definitions) is :mod:`.schedule`; this module is how
the training loop uses it, through the hooks of ``benchmarks.engine.schedules.Schedule``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from benchmarks.data.videos import make_loader
from benchmarks.engine.recipe import Recipe
from benchmarks.engine.schedules import recipe_policy
from benchmarks.methods.multigrid.options import CYCLES, MultigridOptions
from benchmarks.methods.multigrid.schedule import (
    MultigridConfig,
    MultigridSchedule,
    ShapeSampling,
    convert_to_sub_batch_bn,
    load_sub_batch_bn_state,
    set_bn_splits,
    sub_batch_bn_state,
)


def multigrid_config(options: MultigridOptions) -> MultigridConfig:
    """The schedule's hyperparameters at these options (PySlowFast's defaults for the rest)."""
    long_cycle, short_cycle = CYCLES[options.cycles]
    return MultigridConfig(long_cycle=long_cycle, short_cycle=short_cycle, epoch_factor=options.epoch_factor)

class MultigridTraining(MultigridSchedule):
    """``--schedule multigrid``: mini-batch shapes that cycle over fewer frames and smaller sides with
    larger batches and lr, sub-batch BatchNorm over 8 clips, as PySlowFast."""

    name: ClassVar[str] = "multigrid"
    Options: ClassVar[type] = MultigridOptions
    legacy_fields: ClassVar[dict[str, str]] = {"multigrid": "cycles", "multigrid_epoch_factor": "epoch_factor"}

    def __init__(self, *args: Any, options: MultigridOptions | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.options = options or MultigridOptions()

    @classmethod
    def check(cls, options: MultigridOptions, recipe: Recipe) -> None:
        if recipe.accumulate != 1:
            raise ValueError(f"multigrid sets the batch of every step itself: accumulate must be 1, got "
                             f"{recipe.accumulate}")

    @classmethod
    def shortest_clip(cls, options: MultigridOptions, frames: int) -> int:
        """Multigrid's long cycle trains on shorter clips than the row's."""
        if not CYCLES[options.cycles][0]:
            return frames
        return min(int(round(frames * t)) for t, _ in MultigridConfig().long_cycle_factors)

    @classmethod
    def for_run(cls, options: MultigridOptions, recipe: Recipe, frames: int, side: int,
                videos_per_process: int) -> MultigridTraining:
        return cls(multigrid_config(options), recipe_policy(recipe), batch_size=recipe.batch_size, frames=frames,
                   side=side, videos_per_process=videos_per_process, options=options)

    def prepare_model(self, model: nn.Module) -> None:
        convert_to_sub_batch_bn(model)  # BatchNorm statistics over groups of clips, whatever the batch

    def loader(self, dataset: Dataset, sampler: DistributedSampler, epoch: int, first: int, batch_size: int,
               num_workers: int) -> tuple[DataLoader, int]:
        """One batch per step, at the schedule's shape for that step."""
        batches = StepBatchSampler(sampler, self, epoch, first)
        return make_loader(dataset, None, num_workers=num_workers, batch_sampler=batches), self.steps_in_epoch(epoch)

    def before_step(self, models: Sequence[nn.Module], epoch: int, step: int) -> None:
        """Sub-batch BatchNorm groups for this step, in the model and in its EMA copy (whose buffers
        mirror the model's)."""
        for model in models:
            set_bn_splits(model, self.bn_splits(epoch, step))

    def model_state(self, model: nn.Module) -> dict:
        return sub_batch_bn_state(model)

    def load_model_state(self, model: nn.Module, state: dict | None) -> None:
        if state:
            load_sub_batch_bn_state(model, state)

    def record(self, options: MultigridOptions, recipe: Recipe) -> dict[str, Any]:
        """config.json's ``schedule``, with the deviations from PySlowFast's multigrid."""
        deviations = []
        if recipe.optimizer != "sgd":
            deviations.append(f"optimizer {recipe.optimizer} (PySlowFast: SGD with momentum)")
        if recipe.lr_policy != "steps":
            deviations.append(f"lr policy {recipe.lr_policy}: one long cycle over all epochs, no fine-tuning phase, "
                              "lr times the long-cycle batch factor (PySlowFast: step-wise, a long cycle per stage)")
        return {**super().record(options, recipe), "cycles": options.cycles, "epoch_factor": options.epoch_factor,
                "phases": self.describe(), "policy": dataclasses.asdict(self.policy),
                "deviations_from_pyslowfast": deviations}


class StepBatchSampler(Sampler[list]):
    """One batch per optimizer step of ``epoch`` from step ``start`` on, each of the size and clip shape
    the schedule gives that step: ``(index, ShapeSampling)`` pairs for ``VideoDataset``.

    The indices are ``sampler``'s order for the epoch, consumed batch after batch, so every process
    (each with its shard) takes the same steps, and a resumed epoch skips the clips already trained on
    without decoding them."""

    def __init__(self, sampler: DistributedSampler, schedule: MultigridSchedule, epoch: int, start: int = 0) -> None:
        self.sampler, self.schedule, self.epoch, self.start = sampler, schedule, epoch, start

    def _shapes(self) -> list[tuple[int, ShapeSampling]]:
        shapes = [self.schedule.shape(self.epoch, step) for step in range(self.schedule.steps_in_epoch(self.epoch))]
        return [(shape.batch_size, self.schedule.sampling_for(shape)) for shape in shapes]

    def __iter__(self) -> Iterator[list[tuple[int, ShapeSampling]]]:
        self.sampler.set_epoch(self.epoch)
        order = list(self.sampler)
        shapes = self._shapes()
        used = sum(size for size, _ in shapes[:self.start])
        for size, sampling in shapes[self.start:]:
            yield [(i, sampling) for i in order[used:used + size]]
            used += size

    def __len__(self) -> int:
        return max(0, self.schedule.steps_in_epoch(self.epoch) - self.start)
