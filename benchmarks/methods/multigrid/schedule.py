"""Multigrid training (Wu, Girshick, He, Feichtenhofer, Kraehenbuehl, CVPR 2020; seed 003): the parts
that do not depend on the training loop, following the authors' PySlowFast implementation.

Reference: facebookresearch/SlowFast at commit ``PYSLOWFAST_COMMIT`` (``slowfast/utils/multigrid.py``,
``slowfast/datasets/multigrid_helper.py``, ``slowfast/utils/lr_policy.py``,
``slowfast/models/batchnorm_helper.py``, ``slowfast/datasets/kinetics.py``, ``tools/train_net.py``).
Everything below is written for this suite; only the behaviour is PySlowFast's.

Multigrid trains on mini-batches of several shapes (clips B x frames T x side S) while keeping
B * T * S^2 roughly equal to the default shape's, so smaller clips come in bigger batches and an epoch
takes fewer steps.

Long cycle. ``MultigridConfig.long_cycle_factors`` lists (T, S) factors relative to the default shape,
coarse to fine; the last is (1, 1). A long-cycle shape has T = round(T0 * t), S = round(S0 * s) and
batch factor round(T0 * S0^2 / (T * S^2)). The long cycle runs once inside every stage of the
recipe's step-wise lr policy (``StepPolicy.steps``), then a fine-tuning phase at the default shape
covers the recipe's epochs after the last step. The length of each phase is proportional to its shape's
mean batch factor (counted over its short cycle), so every phase gets the same number of iterations.
The fine-tuning phase saves iterations at the same rate as the rest. Its epochs are
(max_epoch - steps[-1]) / saving * mean batch factor of the default shape. Here saving = steps[-1] /
(long-cycle iterations), measured in default-shape epochs. All phase lengths are then scaled so that
they add up to ``max_epoch * epoch_factor``, and the running sum is rounded to whole epochs. Python's
round is used, so halves round to even. Phases can round to zero epochs; those are kept and never
used. See ``long_cycle_schedule``.

Short cycle. Inside every long-cycle shape, step i of an epoch uses short-cycle position i % 3. The
first two positions keep T and use sides round(S0 * f) for ``short_cycle_factors`` f (1/2 and
1/sqrt(2)). Their batch is the long-cycle batch times round((S / (f * S0))^2). The third position is
the long-cycle shape itself. PySlowFast keeps the short cycle on in the fine-tuning phase as well.

Epoch factor. Multigrid is given ``epoch_factor`` (1.5) times the recipe's epochs: it passes over the
data more often but takes fewer iterations in all. With the long cycle the rescaling is part of the
schedule. With only the short cycle, the step epochs and ``max_epoch`` are multiplied by it and
truncated to integers.

Learning rate. The long cycle scales the lr linearly with the batch. The policy is rewritten as steps
[0, end of phase 1, ..., end of phase n], with the lr of phase i equal to gamma^stage * batch factor.
Here gamma is ``StepPolicy.gamma``; the recipe's ``lrs`` are not used, which is the same thing when
they are powers of gamma. The fine-tuning phase is split in two: its first half, up to
(end of phase n-1 + end of phase n) // 2, keeps the lr of the last long-cycle phase (gamma^(stage-1)).
Its second half decays to gamma^stage. Short-cycle steps are not lr-scaled: PySlowFast's
``train_epoch`` sets the lr from the epoch position only, whatever the batch. With only the short
cycle, the recipe's relative lrs are kept. ``StepShape.lr_factor`` is the long-cycle batch factor (the
part this suite's loop multiplies into its own schedule). ``MultigridSchedule.learning_rate`` is
PySlowFast's full lr, including its linear warmup.

Sampling. When a shape has fewer frames, PySlowFast raises the temporal sampling rate (stride in
native frames) so that a clip can still span the default time: the maximum rate is
``rate * (T0 // T)``. For every clip it draws the rate uniformly from the integers
[rate, rate * (T0 // T)], so clips span between T/T0 of the default time and all of it. Spatially,
the crop side is the shape's side. The lower bound of the short-side scale jitter is multiplied by
side / S0, so a smaller crop comes from a proportionally smaller frame (a coarser grid over a similar
field of view); the upper bound is not scaled. See ``ShapeSampling``.

Sub-batch BatchNorm. BN statistics are computed over groups of ``bn_base_size`` (8) clips. A
process's batch is split into num_splits = batch // bn_base_size groups, and each group is normalised
with its own statistics and running averages. For evaluation, the running averages of the groups are
pooled: the mean is the mean of the group means, and the variance is the mean of the group variances
plus the variance of the group means. ``num_splits`` follows the long-cycle batch. Short-cycle steps
keep it, so their groups hold 2x or 4x ``bn_base_size`` clips. See ``SubBatchNorm3d``.

What PySlowFast rebuilds at a long-cycle change. When the shape changes at the start of an epoch,
``train_net.py`` rebuilds the model (for the new BN split count), the optimizer, the train, val and
precise-BN loaders and the meters. It then reloads the checkpoint written at the end of the previous
epoch, with the optimizer state. Its checkpoint rule makes sure that the last epoch of every phase
writes one. Validation during training therefore runs at the current long-cycle shape, not the default
one. Here the model is not rebuilt: ``set_bn_splits`` changes the split count in place (see below).

Where this suite deviates from PySlowFast, and why:

- Sizes are per process. ``batch_size`` is the clips per process at the default shape, and
  ``videos_per_process`` is the samples one process sees per epoch (a DistributedSampler gives each
  rank ceil(N / world)). All ranks then compute the same steps.
- Long cycle without the short cycle: at this commit PySlowFast raises IndexError, because the
  fine-tuning shape is taken as ``shapes[2]`` of a one-shape list. Here that case uses the default
  shape, which is the evident intent.
- The per-process long-cycle batch can be smaller than ``bn_base_size``. PySlowFast then synchronises
  BN across int(bs_factor^-1) GPUs (NaiveSyncBatchNorm3d); here a process normalises its whole batch
  (1 split). When batch // bn_base_size does not divide the batch, PySlowFast's reshape fails; here
  the largest divisor of the batch that is not above it is used. Where PySlowFast runs, the two agree.
- Steps per epoch: ``steps_in_epoch`` counts the batches the short-cycle sampler really yields.
  PySlowFast's ``ShortCycleBatchSampler.__len__`` returns floor(N / mean batch), which can be one
  more. PySlowFast uses that length only for the fractional epoch of the lr.
- Sub-batch BN stays a ``BatchNorm3d``/``BatchNorm2d`` subclass with BatchNorm's state-dict layout.
  Its pooled running statistics are refreshed after every training step, not just before evaluation.
  A state dict therefore always holds what PySlowFast's checkpoints hold (``sub_to_normal_bn``), and
  loading one seeds every group with the pooled statistics, as PySlowFast's ``normal_to_sub_bn`` does.
  ``set_bn_splits`` does the same seeding, in place, when the split count changes.
- Frame-wise models (``BatchNorm2d`` on ``[B * T, C, H, W]``, clip-major) use ``SubBatchNorm2d``. It
  splits the batch axis into contiguous chunks, so whole clips stay in one group when the clips divide
  evenly. ``SubBatchNorm3d`` groups clips by index modulo num_splits, as PySlowFast's reshape does.
- Training clips are cut by ``ShapeSampling.cut``: PySlowFast's random stride per clip for a row sampled
  by stride (X3D); a row sampled by frame rate (MoViNet, 5 fps) gets its rate divided by a random whole
  multiplier in 1..T0 // T, the same spans in coarser steps. ``ShapeSampling.applied_to`` gives the
  span-preserving (maximum) stride. The crop is the suite's random resized crop by area fraction,
  resized to the shape's side: like PySlowFast's scaled jitter, a smaller side covers a similar field
  of view on a coarser grid.
- Integration (``benchmarks.engine.train``, ``train --schedule multigrid``): the schedule is rebuilt from the
  run config when a run starts or resumes; a batch sampler gives each step its clips and shape; the
  model is not rebuilt at a phase change (``set_bn_splits`` before every step, on the EMA copy too);
  checkpoints store the groups' running statistics (``sub_batch_bn_state``) so that a run resumed
  mid-phase continues exactly; validation runs at the default shape; multigrid needs ``accumulate``
  1, since it sets every step's batch itself.
- ``drop_last`` defaults to True, as PySlowFast's training loader. With False, the final partial
  batch is one more step; its BN split count is gcd(splits, batch).
- At this commit PySlowFast cannot run short cycles as shipped. On one GPU, ``create_sampler`` returns
  None, which ``ShortCycleBatchSampler`` rejects. Since the 2022 "unsup" change, ``Kinetics.__getitem__``
  unpacks the sampler's (index, short-cycle position) pairs as (index, num_yielded). The behaviour
  followed here is the sampler's evident intent: the short-cycle position of every clip is its
  batch's i % 3.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.core.cli import UsageError
from benchmarks.engine.schedules import Schedule, StepPolicy, StepShape, lr_at_epoch, steps_with_relative_lrs

PYSLOWFAST_REPO = "https://github.com/facebookresearch/SlowFast"
PYSLOWFAST_COMMIT = "287ec0076846560f44a9327e931a5a2360240533"


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class MultigridConfig:
    """Multigrid hyperparameters; the defaults are PySlowFast's ``_C.MULTIGRID`` values.

    PySlowFast's config defaults have both cycles off (that is its off switch); its multigrid configs
    and the paper's default turn both on, as here.
    """

    long_cycle: bool = True
    short_cycle: bool = True
    # (temporal, spatial) factors relative to the default shape, coarse to fine; the last must be (1, 1)
    long_cycle_factors: tuple[tuple[float, float], ...] = ((0.25, 0.5**0.5), (0.5, 0.5**0.5), (0.5, 1.0), (1.0, 1.0))
    # the two extra short-cycle sides relative to the default side
    short_cycle_factors: tuple[float, float] = (0.5, 0.5**0.5)
    epoch_factor: float = 1.5  # how many times the recipe's epochs multigrid trains for
    bn_base_size: int = 8  # clips per BatchNorm group
    eval_freq: int = 3  # evaluations (and checkpoints) per long-cycle phase

    def __post_init__(self) -> None:
        # normalise lists (e.g. from JSON) to tuples, keeping the dataclass hashable
        object.__setattr__(self, "long_cycle_factors", tuple(tuple(f) for f in self.long_cycle_factors))
        object.__setattr__(self, "short_cycle_factors", tuple(self.short_cycle_factors))
        if not (self.long_cycle or self.short_cycle):
            raise ValueError("multigrid needs long_cycle or short_cycle (or both); with neither, train normally")
        if not self.long_cycle_factors:
            raise ValueError("long_cycle_factors is empty; PySlowFast's default is "
                             "((0.25, 0.5**0.5), (0.5, 0.5**0.5), (0.5, 1), (1, 1))")
        for pair in self.long_cycle_factors:
            if len(pair) != 2 or not all(0 < f <= 1 for f in pair):
                raise ValueError(f"each long-cycle factor is a (temporal, spatial) pair in (0, 1], got {pair}")
        if tuple(self.long_cycle_factors[-1]) != (1, 1):
            raise ValueError("the last long-cycle factor must be (1, 1): the fine-tuning phase trains at the "
                             f"default shape, got {self.long_cycle_factors[-1]}")
        if len(self.short_cycle_factors) != 2 or not all(0 < f <= 1 for f in self.short_cycle_factors):
            raise ValueError("short_cycle_factors must be two side factors in (0, 1] (the short cycle has three "
                             f"shapes, the third is the long-cycle shape), got {self.short_cycle_factors}")
        if not self.epoch_factor > 0:
            raise ValueError(f"epoch_factor must be > 0, got {self.epoch_factor}")
        if int(self.bn_base_size) != self.bn_base_size or self.bn_base_size < 1:
            raise ValueError(f"bn_base_size must be an integer >= 1, got {self.bn_base_size}")
        if int(self.eval_freq) != self.eval_freq or self.eval_freq < 1:
            raise ValueError(f"eval_freq must be an integer >= 1, got {self.eval_freq}")


# --------------------------------------------------------------------------- long cycle


@dataclass(frozen=True)
class LongCyclePhase:
    """Epochs ``[start_epoch, end_epoch)`` trained at one long-cycle shape.

    ``stage`` is the index of the recipe's lr stage; the fine-tuning phase has ``len(steps) - 1``.
    ``batch_factor`` is the batch relative to the default batch, which is also the long cycle's lr
    factor. ``batch_size = batch_factor * default batch``.
    """

    stage: int
    start_epoch: int
    end_epoch: int
    frames: int
    side: int
    batch_factor: int
    batch_size: int
    finetune: bool = False

    @property
    def epochs(self) -> int:
        return self.end_epoch - self.start_epoch

    @property
    def lr_factor(self) -> float:
        return float(self.batch_factor)


def _batch_factor(default_volume: float, frames: float, side: float) -> int:
    """Nearest integer to T0 * S0^2 / (T * S^2), with PySlowFast's order of operations."""
    return int(round(default_volume / (frames * side * side)))


def long_cycle_schedule(policy: StepPolicy, frames: int, side: int, batch_size: int,
                        config: MultigridConfig | None = None) -> list[LongCyclePhase]:
    """The long-cycle phases for a step-wise recipe, as PySlowFast's ``get_long_cycle_schedule``.

    Float operations are done in PySlowFast's order, so every epoch boundary rounds the same way.
    ``frames``, ``side`` and ``batch_size`` give the default shape. The last phase is the fine-tuning
    phase at the default shape.
    """
    config = config or MultigridConfig()
    steps = policy.steps
    if len(steps) < 2 or steps[-1] <= 0:
        raise ValueError("the long cycle is laid out over the recipe's lr stages: it needs steps [0, s1, ...] "
                         f"with at least one stage of > 0 epochs, got {list(steps)} (a recipe without steps can "
                         "use steps=(0, max_epoch))")
    for name, value in (("frames", frames), ("side", side), ("batch_size", batch_size)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value}")

    default_volume = float(frames * side**2)
    cycles: list[list[tuple[int, int, float]]] = []  # per long-cycle shape: its (B factor, T, S) short cycle
    for t_factor, s_factor in config.long_cycle_factors:
        base_t = int(round(frames * t_factor))
        base_s = int(round(side * s_factor))
        if base_t < 1 or base_s < 1:
            raise ValueError(f"long-cycle factor ({t_factor}, {s_factor}) gives {base_t} frames x {base_s} px "
                             f"from the default {frames} x {side}")
        # the extra short-cycle sides are not rounded here (they are when clips are cut)
        cycle = [(base_t, side * f) for f in config.short_cycle_factors] if config.short_cycle else []
        cycle.append((base_t, base_s))
        cycles.append([(_batch_factor(default_volume, t, s), t, s) for t, s in cycle])
    for cycle in cycles:
        if any(b < 1 for b, _, _ in cycle):
            raise ValueError(f"a multigrid shape of {cycle} rounds to a batch factor of 0")
    mean_batch = [sum(b for b, _, _ in cycle) / len(cycle) for cycle in cycles]

    # phase lengths before the epoch factor: each long-cycle shape gets the same number of iterations
    iterations = 0.0
    raw: list[tuple[int, float, tuple[int, int, float]]] = []  # (stage, epochs, long-cycle shape)
    for stage in range(len(steps) - 1):
        stage_epochs = steps[stage + 1] - steps[stage]
        for cycle, mean in zip(cycles, mean_batch):
            epochs = stage_epochs * mean / sum(mean_batch)
            iterations += epochs / mean
            raw.append((stage, epochs, cycle[-1]))
    saving = steps[-1] / iterations
    finetune_epochs = (policy.max_epoch - steps[-1]) / saving * mean_batch[-1]
    raw.append((len(steps) - 1, finetune_epochs, cycles[-1][-1]))

    scale = policy.max_epoch * config.epoch_factor / sum(epochs for _, epochs, _ in raw)
    phases, total, start = [], 0.0, 0
    for i, (stage, epochs, (factor, t, s)) in enumerate(raw):
        total += epochs * scale
        end = int(round(total))
        phases.append(LongCyclePhase(stage=stage, start_epoch=start, end_epoch=end, frames=t, side=int(s),
                                     batch_factor=factor, batch_size=factor * batch_size,
                                     finetune=i == len(raw) - 1))
        start = end
    return phases


def multigrid_policy(policy: StepPolicy, phases: Sequence[LongCyclePhase] | None,
                     config: MultigridConfig | None = None) -> StepPolicy:
    """The lr policy PySlowFast trains multigrid with (``MultigridSchedule.init_multigrid``).

    With long-cycle ``phases``, there is one stage per phase at gamma^stage * batch factor, and the
    fine-tuning phase is split in halves (see the module docstring). Without them (short cycle only),
    the recipe's steps and max_epoch are multiplied by the epoch factor and truncated.
    """
    config = config or MultigridConfig()
    if phases:
        ends = [p.end_epoch for p in phases]
        steps = [0, *ends]
        steps[-1] = (steps[-2] + steps[-1]) // 2
        lrs = [policy.gamma**p.stage * p.batch_factor for p in phases]
        lrs = lrs[:-1] + [lrs[-2], lrs[-1]]
        return StepPolicy(tuple(steps), tuple(lrs), ends[-1], policy.gamma)
    return StepPolicy(tuple(int(s * config.epoch_factor) for s in policy.steps), policy.lrs,
                      int(policy.max_epoch * config.epoch_factor), policy.gamma)


def short_cycle_batch_factors(side: int, default_side: int, config: MultigridConfig) -> tuple[int, int, int]:
    """Batch multipliers of the three short-cycle positions at long-cycle side ``side``.

    This is PySlowFast's ``ShortCycleBatchSampler`` rule: round((side / (f * S0))^2) for each factor f,
    and then 1.
    """
    first, second = (int(round((float(side) / (f * default_side)) ** 2)) for f in config.short_cycle_factors)
    return first, second, 1


def largest_divisor_at_most(n: int, bound: int) -> int:
    """The largest divisor of ``n`` that is <= ``bound`` (at least 1)."""
    for d in range(max(1, min(n, bound)), 0, -1):
        if n % d == 0:
            return d
    return 1


# --------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class ShapeSampling:
    """How clips are cut for one step shape (PySlowFast's ``Kinetics.__getitem__`` under multigrid).

    ``stride_multiplier`` is T0 // T, the factor by which the temporal stride can grow so that a clip
    spans the default time. ``side_ratio`` is side / S0, the factor PySlowFast applies to the lower
    bound of its short-side scale jitter.
    """

    frames: int
    side: int
    stride_multiplier: int
    side_ratio: float

    def temporal_stride(self, stride: int) -> int:
        """The span-preserving stride for a default stride of ``stride`` native frames."""
        return stride * self.stride_multiplier

    def stride_range(self, stride: int) -> tuple[int, int]:
        """The strides PySlowFast draws from (inclusive) for a default stride of ``stride``."""
        return stride, stride * self.stride_multiplier

    def draw_stride(self, stride: int, rng: np.random.Generator) -> int:
        """One clip's stride, uniform over ``stride_range`` (PySlowFast's ``get_random_sampling_rate``)."""
        low, high = self.stride_range(stride)
        return int(rng.integers(low, high + 1))

    def jitter_scales(self, scales: tuple[int, int]) -> tuple[int, int]:
        """PySlowFast's short-side resize range for this side: only the lower bound is scaled."""
        return int(round(float(scales[0]) * self.side_ratio)), scales[1]

    def applied_to(self, base: Any) -> Any:
        """``base`` (a ``benchmarks.data.videos.Sampling`` at the default shape) cut at this shape.

        The frames and size become this shape's. The stride (or the frame rate) is set so that a clip
        spans the default time, which is the largest of PySlowFast's random strides.
        """
        if getattr(base, "stride", None) is not None:
            return dataclasses.replace(base, frames=self.frames, size=self.side,
                                       stride=self.temporal_stride(base.stride))
        return dataclasses.replace(base, frames=self.frames, size=self.side, fps=base.fps / self.stride_multiplier)

    def cut(self, base: Any, rng: np.random.Generator) -> Any:
        """How one training clip is cut at this shape (``benchmarks.data.videos.VideoDataset`` calls it with the
        clip's own RNG): this shape's frames and side, and a stride drawn as PySlowFast draws it. A
        ``base`` given by frame rate (MoViNet's 5 fps) gets its rate divided by a multiplier drawn
        uniformly from 1..T0 // T: the same spans, in steps of whole default strides."""
        if getattr(base, "stride", None) is not None:
            return dataclasses.replace(base, frames=self.frames, size=self.side,
                                       stride=self.draw_stride(base.stride, rng))
        multiplier = int(rng.integers(1, self.stride_multiplier + 1))
        return dataclasses.replace(base, frames=self.frames, size=self.side, fps=base.fps / multiplier)


# --------------------------------------------------------------------------- the schedule


class MultigridSchedule(Schedule):
    """Step shapes, steps per epoch, BN splits and lr of multigrid training, as pure functions of
    (epoch, step in epoch).

    ``batch_size``, ``frames`` and ``side`` give the default shape, with ``batch_size`` in clips per
    process. ``videos_per_process`` is the number of samples one process draws per epoch. ``policy`` is
    the recipe's step-wise lr policy; multigrid trains ``total_epochs`` epochs under
    ``self.policy``, the rewritten policy.
    """

    def __init__(self, config: MultigridConfig, policy: StepPolicy, *, batch_size: int, frames: int, side: int,
                 videos_per_process: int, drop_last: bool = True) -> None:
        if int(videos_per_process) != videos_per_process or videos_per_process < 1:
            raise ValueError(f"videos_per_process must be an integer >= 1, got {videos_per_process}")
        self.config, self.recipe = config, policy
        self.batch_size, self.frames, self.side = batch_size, frames, side
        self.videos_per_process, self.drop_last = int(videos_per_process), drop_last
        if config.long_cycle:
            phases = long_cycle_schedule(policy, frames, side, batch_size, config)
            self.policy = multigrid_policy(policy, phases, config)
        else:
            for name, value in (("frames", frames), ("side", side), ("batch_size", batch_size)):
                if int(value) != value or value < 1:
                    raise ValueError(f"{name} must be an integer >= 1, got {value}")
            self.policy = multigrid_policy(policy, None, config)
            phases = [LongCyclePhase(stage=0, start_epoch=0, end_epoch=self.policy.max_epoch, frames=frames,
                                     side=side, batch_factor=1, batch_size=batch_size)]
        self.phases: tuple[LongCyclePhase, ...] = tuple(phases)
        self._ends = [p.end_epoch for p in self.phases]
        self._cycles = tuple(self._cycle(p) for p in self.phases)
        self._splits = tuple(self._phase_splits(p) for p in self.phases)
        self._steps = tuple(self._count_steps(c) for c in self._cycles)
        if min(self._steps) < 1:
            raise UsageError(f"{videos_per_process} videos per process do not fill one batch of "
                             f"{max(s.batch_size for c in self._cycles for s in c)} clips of the multigrid "
                             "cycle: give more training videos or a smaller --batch-size")

    # -- shapes
    def _cycle(self, phase: LongCyclePhase) -> tuple[StepShape, ...]:
        base = StepShape(phase.batch_size, phase.frames, phase.side, phase.lr_factor)
        if not self.config.short_cycle:
            return (base,)
        factors = short_cycle_batch_factors(phase.side, self.side, self.config)
        sides = [int(round(f * self.side)) for f in self.config.short_cycle_factors] + [phase.side]
        return tuple(StepShape(phase.batch_size * b, phase.frames, s, phase.lr_factor) for b, s in zip(factors, sides))

    def _phase_splits(self, phase: LongCyclePhase) -> int:
        return largest_divisor_at_most(phase.batch_size, phase.batch_size // self.config.bn_base_size)

    def _count_steps(self, cycle: tuple[StepShape, ...]) -> int:
        """Batches a short-cycle sampler yields from ``videos_per_process`` samples."""
        sizes = [s.batch_size for s in cycle]
        rounds, left = divmod(self.videos_per_process, sum(sizes))
        steps = rounds * len(sizes)
        for size in sizes:
            if left < size:
                break
            steps, left = steps + 1, left - size
        return steps + (1 if left and not self.drop_last else 0)

    def _phase_index(self, epoch: int) -> int:
        if int(epoch) != epoch or epoch < 0:
            raise ValueError(f"epoch must be an integer >= 0, got {epoch}")
        return min(bisect.bisect_right(self._ends, epoch), len(self.phases) - 1)

    def phase(self, epoch: int) -> LongCyclePhase:
        """The long-cycle phase of ``epoch``; past the end, the last phase (as PySlowFast)."""
        return self.phases[self._phase_index(epoch)]

    def cycle_shapes(self, epoch: int) -> tuple[StepShape, ...]:
        """The nominal shapes of the short cycle in ``epoch`` (one without the short cycle)."""
        return self._cycles[self._phase_index(epoch)]

    def steps_in_epoch(self, epoch: int) -> int:
        """Optimizer steps in ``epoch``: the full batches of the cycle's sizes in ``videos_per_process``
        (plus the partial last batch unless ``drop_last``)."""
        return self._steps[self._phase_index(epoch)]

    def shape(self, epoch: int, step: int) -> StepShape:
        """The shape of step ``step`` of ``epoch``: short-cycle position ``step % 3`` of the epoch's
        long-cycle shape, with the lr factor of the long cycle; ``batch_size`` is the number of clips
        this step really has (the remainder for a partial last batch)."""
        index = self._phase_index(epoch)
        steps = self._steps[index]
        if int(step) != step or not 0 <= step < steps:
            raise ValueError(f"step {step} is outside epoch {epoch}, which has {steps} steps")
        cycle = self._cycles[index]
        nominal = cycle[step % len(cycle)]
        rounds, position = divmod(step, len(cycle))
        used = rounds * sum(s.batch_size for s in cycle) + sum(s.batch_size for s in cycle[:position])
        clips = min(nominal.batch_size, self.videos_per_process - used)
        return dataclasses.replace(nominal, batch_size=clips) if clips != nominal.batch_size else nominal

    def bn_splits(self, epoch: int, step: int = 0) -> int:
        """Sub-batch BN groups for this step: long-cycle batch // bn_base_size (at least 1; reduced to a
        divisor of the batch), the same for all short-cycle positions; for a partial last batch, the
        gcd with its size."""
        splits = self._splits[self._phase_index(epoch)]
        return math.gcd(splits, self.shape(epoch, step).batch_size)

    # -- epochs and steps
    @property
    def total_epochs(self) -> int:
        return self.policy.max_epoch

    def learning_rate(self, epoch: int, step: int, base_lr: float, warmup_epochs: float = 0.0,
                      warmup_start_lr: float = 0.0) -> float:
        """PySlowFast's lr at this step: the multigrid policy at epoch + step / steps_in_epoch, after the
        linear warmup."""
        position = epoch + step / self.steps_in_epoch(epoch)
        return lr_at_epoch(position, self.policy, base_lr, warmup_epochs, warmup_start_lr)

    def relative_lr(self, epoch: int, step: int) -> float:
        """The multigrid policy's lr at this step relative to the base lr, without warm-up: gamma^stage x
        long-cycle batch factor (what ``benchmarks.engine.schedules.lr_factor`` uses for ``lr_policy="steps"``)."""
        position = epoch + step / self.steps_in_epoch(epoch)
        return steps_with_relative_lrs(position, self.policy.steps, self.policy.lrs, 1.0)

    def is_eval_epoch(self, epoch: int, eval_period: int = 1) -> bool:
        """PySlowFast's evaluation (and checkpoint) rule. With the long cycle, the model is evaluated
        ``eval_freq`` times per phase, always at its last epoch. Otherwise it is evaluated every
        ``eval_period`` epochs. The last epoch is always evaluated."""
        if epoch + 1 == self.total_epochs:
            return True
        if self.config.long_cycle:
            previous = 0
            for phase in self.phases:
                if epoch < phase.end_epoch:
                    period = max((phase.end_epoch - previous) // self.config.eval_freq + 1, 1)
                    return (phase.end_epoch - 1 - epoch) % period == 0
                previous = phase.end_epoch
        return (epoch + 1) % eval_period == 0

    # -- sampling
    def temporal_stride(self, frames: int, stride: int = 1) -> int:
        """The stride (native frames) at which ``frames`` frames span what ``self.frames`` frames at
        ``stride`` span: ``stride * (T0 // frames)``, PySlowFast's ``LONG_CYCLE_SAMPLING_RATE``."""
        if frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        return stride * max(1, self.frames // frames)

    def sampling_for(self, shape: StepShape) -> ShapeSampling:
        """How to cut the clips of a step of this shape."""
        return ShapeSampling(shape.frames, shape.side, self.temporal_stride(shape.frames), shape.side / self.side)

    def describe(self) -> list[dict[str, Any]]:
        """One JSON-friendly row per phase (for run logs)."""
        return [{**dataclasses.asdict(p), "steps_per_epoch": n, "bn_splits": k,
                 "cycle": [[s.batch_size, s.frames, s.side] for s in c]}
                for p, n, k, c in zip(self.phases, self._steps, self._splits, self._cycles)]


# --------------------------------------------------------------------------- sub-batch BatchNorm


class _SubBatchNorm:
    """BatchNorm whose training statistics are computed per group of the batch (see the module
    docstring); mixed into ``nn.BatchNorm3d``/``nn.BatchNorm2d``, whose buffers hold the pooled
    running statistics used in evaluation (and saved in state dicts)."""

    num_features: int
    eps: float
    momentum: float | None
    affine: bool
    track_running_stats: bool
    training: bool
    weight: nn.Parameter | None
    bias: nn.Parameter | None
    running_mean: Tensor | None
    running_var: Tensor | None
    num_batches_tracked: Tensor | None

    def _init_splits(self, num_splits: int) -> None:
        _check_splits(num_splits)
        self.num_splits = int(num_splits)
        if self.track_running_stats:
            self.register_buffer("split_running_mean", self.running_mean.repeat(num_splits), persistent=False)
            self.register_buffer("split_running_var", self.running_var.repeat(num_splits), persistent=False)
        else:
            self.split_running_mean = self.split_running_var = None

    def _group(self, x: Tensor, k: int) -> Tensor:
        raise NotImplementedError

    def _ungroup(self, y: Tensor, k: int) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return super().forward(x)  # plain BatchNorm with the pooled statistics
        self._check_input_dim(x)
        k = self.num_splits
        if x.shape[0] % k:
            raise ValueError(f"a batch of {x.shape[0]} cannot be split into {k} equal BatchNorm groups")
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average, as nn.BatchNorm
                momentum = 1.0 / float(self.num_batches_tracked)
        weight = self.weight.repeat(k) if self.affine else None
        bias = self.bias.repeat(k) if self.affine else None
        y = F.batch_norm(self._group(x, k), self.split_running_mean, self.split_running_var, weight, bias,
                         True, momentum, self.eps)
        if self.track_running_stats:
            self.aggregate_stats()
        return self._ungroup(y, k)

    @torch.no_grad()
    def aggregate_stats(self) -> None:
        """Pool the groups' running statistics into ``running_mean``/``running_var`` (PySlowFast's
        ``SubBatchNorm3d.aggregate_stats``; done after every training step here)."""
        if not self.track_running_stats:
            return
        k = self.num_splits
        means = self.split_running_mean.view(k, -1)
        mean = means.sum(0) / k
        var = self.split_running_var.view(k, -1).sum(0) / k + ((means - mean) ** 2).sum(0) / k
        self.running_mean.copy_(mean)
        self.running_var.copy_(var)

    @torch.no_grad()
    def set_num_splits(self, num_splits: int) -> None:
        """Change the number of groups; when it changes, each new group's running statistics start from
        the pooled ones (what PySlowFast's checkpoint save and reload does at a shape change). A copy of the
        model that mirrors its buffers (an EMA with ``use_buffers``) needs the same call."""
        _check_splits(num_splits)
        if num_splits == self.num_splits:
            return
        self.num_splits = int(num_splits)
        self._seed_splits()

    @torch.no_grad()
    def _seed_splits(self) -> None:
        # resized in place: the buffers stay the same tensors, so DDP's buffer broadcast (which holds them
        # from its construction) keeps working when the number of splits changes
        if self.track_running_stats:
            self.split_running_mean.resize_(self.num_splits * self.num_features).copy_(
                self.running_mean.repeat(self.num_splits))
            self.split_running_var.resize_(self.num_splits * self.num_features).copy_(
                self.running_var.repeat(self.num_splits))

    def reset_running_stats(self) -> None:
        super().reset_running_stats()
        if getattr(self, "split_running_mean", None) is not None:
            self._seed_splits()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        self._seed_splits()  # a state dict holds pooled statistics, as a plain BatchNorm's

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_splits={self.num_splits}"


def _check_splits(num_splits: int) -> None:
    if isinstance(num_splits, bool) or int(num_splits) != num_splits or num_splits < 1:
        raise ValueError(f"num_splits must be an integer >= 1, got {num_splits}")


class SubBatchNorm3d(_SubBatchNorm, nn.BatchNorm3d):
    """``BatchNorm3d`` over ``[N, C, T, H, W]`` with statistics per group of N / num_splits clips in
    training. Clip i is in group i % num_splits, as in PySlowFast's reshape to
    ``[N / k, k * C, T, H, W]``. Evaluation is a plain ``BatchNorm3d`` with the pooled statistics.
    The weight and bias are shared by all groups."""

    def __init__(self, num_features: int, num_splits: int = 1, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None, dtype=None) -> None:
        nn.BatchNorm3d.__init__(self, num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self._init_splits(num_splits)

    def _group(self, x: Tensor, k: int) -> Tensor:
        n, c = x.shape[:2]
        return x.reshape(n // k, k * c, *x.shape[2:])

    def _ungroup(self, y: Tensor, k: int) -> Tensor:
        m, kc = y.shape[:2]
        return y.reshape(m * k, kc // k, *y.shape[2:])


class SubBatchNorm2d(_SubBatchNorm, nn.BatchNorm2d):
    """``BatchNorm2d`` over ``[B * T, C, H, W]`` (frame-wise models, clip-major) with statistics per
    contiguous chunk of N / num_splits frames in training. These are whole clips when num_splits
    divides B. Evaluation is a plain ``BatchNorm2d`` with the pooled statistics."""

    def __init__(self, num_features: int, num_splits: int = 1, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None, dtype=None) -> None:
        nn.BatchNorm2d.__init__(self, num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self._init_splits(num_splits)

    def _group(self, x: Tensor, k: int) -> Tensor:
        n, c = x.shape[:2]
        return x.reshape(k, n // k, c, *x.shape[2:]).transpose(0, 1).reshape(n // k, k * c, *x.shape[2:])

    def _ungroup(self, y: Tensor, k: int) -> Tensor:
        m, kc = y.shape[:2]
        return y.reshape(m, k, kc // k, *y.shape[2:]).transpose(0, 1).reshape(m * k, kc // k, *y.shape[2:])


_SUB_BN = {nn.BatchNorm3d: SubBatchNorm3d, nn.BatchNorm2d: SubBatchNorm2d}


def convert_to_sub_batch_bn(model: nn.Module, num_splits: int = 1, include_2d: bool = True) -> nn.Module:
    """Replace every ``nn.BatchNorm3d`` (and, with ``include_2d``, ``nn.BatchNorm2d``) in ``model`` by its
    sub-batch version, keeping its parameters, statistics, settings and mode. Subclasses such as
    SyncBatchNorm are left alone. The model changes in place; the return value is the model, or the
    new module when ``model`` itself is a BatchNorm. Evaluation outputs do not change."""
    _check_splits(num_splits)
    kinds = _SUB_BN if include_2d else {nn.BatchNorm3d: SubBatchNorm3d}

    def convert(bn: nn.Module) -> nn.Module:
        ref = bn.running_mean if bn.running_mean is not None else bn.weight
        sub = kinds[type(bn)](bn.num_features, num_splits, bn.eps, bn.momentum, bn.affine, bn.track_running_stats,
                              device=None if ref is None else ref.device, dtype=None if ref is None else ref.dtype)
        sub.load_state_dict(bn.state_dict())
        if bn.affine:
            sub.weight.requires_grad_(bn.weight.requires_grad)
            sub.bias.requires_grad_(bn.bias.requires_grad)
        return sub.train(bn.training)

    if type(model) in kinds:
        return convert(model)
    for child in list(model.modules()):
        for attr, sub in list(child.named_children()):
            if type(sub) in kinds:
                setattr(child, attr, convert(sub))
    return model


def set_bn_splits(model: nn.Module, num_splits: int) -> int:
    """Set the number of BN groups of every sub-batch BN in ``model`` (call before each step with
    ``MultigridSchedule.bn_splits``; a no-op when it is unchanged); returns how many modules there are."""
    modules = [m for m in model.modules() if isinstance(m, _SubBatchNorm)]
    for m in modules:
        m.set_num_splits(num_splits)
    return len(modules)


def sub_batch_bn_state(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Every sub-batch BN's group count and per-group running statistics, by module name. A state dict
    holds only the pooled statistics; a checkpoint written in the middle of a phase stores these too, so
    the resumed run continues with the groups' own statistics, as an uninterrupted one does."""
    return {name: {"num_splits": m.num_splits,
                   "mean": None if m.split_running_mean is None else m.split_running_mean.detach().clone(),
                   "var": None if m.split_running_var is None else m.split_running_var.detach().clone()}
            for name, m in model.named_modules() if isinstance(m, _SubBatchNorm)}


@torch.no_grad()
def load_sub_batch_bn_state(model: nn.Module, state: dict[str, dict[str, Any]]) -> None:
    """Restore what ``sub_batch_bn_state`` saved (after ``load_state_dict``, which reseeds the groups)."""
    modules = {name: m for name, m in model.named_modules() if isinstance(m, _SubBatchNorm)}
    if set(modules) != set(state):
        raise ValueError(f"sub-batch BN modules differ: saved {sorted(set(state) - set(modules))[:3]}..., "
                         f"model {sorted(set(modules) - set(state))[:3]}...")
    for name, saved in state.items():
        module = modules[name]
        module.set_num_splits(saved["num_splits"])
        if saved["mean"] is not None:
            module.split_running_mean.copy_(saved["mean"])
            module.split_running_var.copy_(saved["var"])
