"""Multigrid training (seed 003), checked against PySlowFast's definitions (benchmarks.methods.multigrid.schedule).

The expected numbers below are derived by hand from PySlowFast's definitions (see the comments),
not computed by the code under test. The reference config is PySlowFast's
configs/Kinetics/SLOWFAST_8x8_R50_stepwise_multigrid.yaml at commit
287ec0076846560f44a9327e931a5a2360240533:

    MULTIGRID: LONG_CYCLE True, SHORT_CYCLE True (other MULTIGRID values: defaults.py defaults)
    TRAIN.BATCH_SIZE 64 on NUM_GPUS 8  -> 8 clips per process
    DATA.NUM_FRAMES 32 (the fast pathway; "8x8" names the slow one), DATA.SAMPLING_RATE 2,
    DATA.TRAIN_CROP_SIZE 224, DATA.TRAIN_JITTER_SCALES [256, 320]
    SOLVER: steps_with_relative_lrs, BASE_LR 0.1, STEPS [0, 94, 154, 196], MAX_EPOCH 239,
            LRS [1, 0.1, 0.01, 0.001, ...], GAMMA 0.1 (default), WARMUP_EPOCHS 34, WARMUP_START_LR 0.01
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from benchmarks.data.videos import Sampling
from benchmarks.engine.schedules import StepShape
from benchmarks.methods.multigrid.schedule import (
    LongCyclePhase,
    MultigridConfig,
    MultigridSchedule,
    StepPolicy,
    SubBatchNorm2d,
    SubBatchNorm3d,
    convert_to_sub_batch_bn,
    long_cycle_schedule,
    lr_at_epoch,
    set_bn_splits,
    steps_with_relative_lrs,
)

pytestmark = pytest.mark.usefixtures("one_thread")

SLOWFAST_POLICY = StepPolicy(steps=(0, 94, 154, 196), lrs=(1, 0.1, 0.01, 0.001, 0.0001, 0.00001), max_epoch=239)


def slowfast_schedule(videos: int = 1000, **config) -> MultigridSchedule:
    return MultigridSchedule(MultigridConfig(**config), SLOWFAST_POLICY, batch_size=8, frames=32, side=224,
                             videos_per_process=videos)


# --------------------------------------------------------------------------- long cycle, by hand
#
# Shapes. Default volume T0*S0^2 = 32 * 224^2 = 1,605,632. Long-cycle factors (t, s):
#   (1/4, 1/sqrt2): T = round(8) = 8,   S = round(158.39) = 158
#   (1/2, 1/sqrt2): T = 16,             S = 158
#   (1/2, 1):       T = 16,             S = 224
#   (1, 1):         T = 32,             S = 224
# With the short cycle each long-cycle shape has three shapes, at sides 224/2 = 112, 224/sqrt2 = 158.39
# (unrounded in the schedule) and its own S. Batch factor = round(1,605,632 / (T * S^2)):
#   T=8:  112 -> 16, 158.39 -> 8, 158 -> round(8.04) = 8   mean 32/3
#   T=16: 112 -> 8,  158.39 -> 4, 158 -> round(4.02) = 4   mean 16/3
#   T=16: 112 -> 8,  158.39 -> 4, 224 -> 2                 mean 14/3
#   T=32: 112 -> 4,  158.39 -> 2, 224 -> 1                 mean  7/3      sum of means 69/3 = 23
# Phase epochs. Stage i of the recipe lasts 94, 60, 42 epochs. Each long-cycle shape gets
# stage epochs * mean / 23, which is stage epochs * (32, 16, 14, 7) / 69. Its iterations are
# epochs / mean = stage epochs / 23 for every shape. So there are 4 * 196 / 23 long-cycle
# iterations, and the saving is 196 / (784/23) = 5.75.
# Fine-tuning phase: (239 - 196) / 5.75 * 7/3 = 1204/69 epochs.
# In units of 1/69 epoch the phases are:
#   stage 0: 3008 1504 1316 658 | stage 1: 1920 960 840 420 | stage 2: 1344 672 588 294 | ft: 1204
# Their total is 196*69 + 1204 = 14728. Scaling to 239 * 1.5 = 358.5 epochs multiplies each by
# 358.5 / 14728. The running sums, rounded:
#   3008 -> 73.22 -> 73      4512 -> 109.83 -> 110     5828 -> 141.86 -> 142    6486 -> 157.88 -> 158
#   8406 -> 204.61 -> 205    9366 -> 227.98 -> 228     10206 -> 248.43 -> 248   10626 -> 258.65 -> 259
#   11970 -> 291.37 -> 291   12642 -> 307.72 -> 308    13230 -> 322.04 -> 322   13524 -> 329.19 -> 329
#   14728 -> 358.5 -> 358 (Python rounds the half to even)
# The lr policy has steps [0, ends...], with the last one replaced by (329 + 358) // 2 = 343.
# lrs are 0.1^stage * batch factor of the long-cycle shape: 8 4 2 1 | .8 .4 .2 .1 | .08 .04 .02 .01.
# The fine-tuning phase keeps 0.01 up to epoch 343 and then drops to 0.001. MAX_EPOCH is 358.
# With 8 clips per process at the default shape, the per-process batches are 64, 32, 16, 8, and
# the BN splits are 64/8 = 8, 4, 2, 1.

SLOWFAST_PHASES = [  # (stage, start, end, frames, side, batch factor)
    (0, 0, 73, 8, 158, 8), (0, 73, 110, 16, 158, 4), (0, 110, 142, 16, 224, 2), (0, 142, 158, 32, 224, 1),
    (1, 158, 205, 8, 158, 8), (1, 205, 228, 16, 158, 4), (1, 228, 248, 16, 224, 2), (1, 248, 259, 32, 224, 1),
    (2, 259, 291, 8, 158, 8), (2, 291, 308, 16, 158, 4), (2, 308, 322, 16, 224, 2), (2, 322, 329, 32, 224, 1),
    (3, 329, 358, 32, 224, 1),
]


def test_long_cycle_schedule_of_pyslowfast_slowfast_r50_multigrid_matches_the_hand_derivation():
    phases = long_cycle_schedule(SLOWFAST_POLICY, frames=32, side=224, batch_size=8)
    assert [(p.stage, p.start_epoch, p.end_epoch, p.frames, p.side, p.batch_factor) for p in phases] == SLOWFAST_PHASES
    assert [p.batch_size for p in phases] == [64, 32, 16, 8] * 3 + [8]
    assert [p.finetune for p in phases] == [False] * 12 + [True]

    schedule = slowfast_schedule()
    assert schedule.total_epochs == 358
    assert schedule.policy.steps == (0, 73, 110, 142, 158, 205, 228, 248, 259, 291, 308, 322, 329, 343)
    assert schedule.policy.max_epoch == 358
    assert schedule.policy.lrs == pytest.approx([8, 4, 2, 1, .8, .4, .2, .1, .08, .04, .02, .01, .01, .001])
    assert [schedule.bn_splits(p.start_epoch) for p in schedule.phases] == [8, 4, 2, 1] * 3 + [1]
    # short cycles (per process): 2x and 1x for side 158 ((158/112)^2 = 1.99, (158/158.39)^2 = 0.995),
    # 4x and 2x for side 224
    assert [(s.batch_size, s.frames, s.side) for s in schedule.cycle_shapes(0)] == [(128, 8, 112), (64, 8, 158),
                                                                                   (64, 8, 158)]
    assert [(s.batch_size, s.frames, s.side) for s in schedule.cycle_shapes(73)] == [(64, 16, 112), (32, 16, 158),
                                                                                    (32, 16, 158)]
    assert [(s.batch_size, s.frames, s.side) for s in schedule.cycle_shapes(110)] == [(64, 16, 112), (32, 16, 158),
                                                                                     (16, 16, 224)]
    assert [(s.batch_size, s.frames, s.side) for s in schedule.cycle_shapes(357)] == [(32, 32, 112), (16, 32, 158),
                                                                                     (8, 32, 224)]
    # PySlowFast evaluates (and checkpoints) 3 times per phase, always at its last epoch:
    # phase [0, 73) has period 73 // 3 + 1 = 25, so epochs 22, 47 and 72 are evaluated
    assert [e for e in range(73) if schedule.is_eval_epoch(e)] == [22, 47, 72]
    assert schedule.is_eval_epoch(357)


def test_short_cycle_only_scales_the_recipe_by_the_epoch_factor():
    # int(94 * 1.5) = 141, int(154 * 1.5) = 231, int(196 * 1.5) = 294, int(239 * 1.5) = 358; lrs unchanged
    schedule = slowfast_schedule(long_cycle=False)
    assert schedule.policy.steps == (0, 141, 231, 294) and schedule.total_epochs == 358
    assert schedule.policy.lrs == SLOWFAST_POLICY.lrs
    assert [(s.batch_size, s.frames, s.side, s.lr_factor) for s in schedule.cycle_shapes(0)] == [
        (32, 32, 112, 1.0), (16, 32, 158, 1.0), (8, 32, 224, 1.0)]
    assert schedule.is_eval_epoch(9, eval_period=10) and not schedule.is_eval_epoch(10, eval_period=10)


# --------------------------------------------------------------------------- shapes


def test_every_shape_of_the_slowfast_schedule_conserves_batch_x_frames_x_side_squared():
    schedule = slowfast_schedule()
    volume = 8 * 32 * 224**2
    shapes = {s for e in range(schedule.total_epochs) for s in schedule.cycle_shapes(e)}
    assert len(shapes) == 10  # 3 + 3 + 3 + 3 shapes, two of them repeated within the 158-px cycles
    for s in shapes:  # worst case 158^2 / (224^2 / 2) = 0.995
        assert 0.99 <= s.batch_size * s.frames * s.side**2 / volume <= 1.0, s


@pytest.mark.parametrize("frames,side", [(32, 224), (16, 172), (50, 172), (13, 160), (8, 112)])
def test_batch_sizes_are_the_nearest_integers_that_conserve_the_volume(frames, side):
    schedule = MultigridSchedule(MultigridConfig(), StepPolicy((0, 10, 20), (1, 0.1, 0.01), 25), batch_size=1,
                                 frames=frames, side=side, videos_per_process=10_000)
    volume = frames * side**2
    for phase in schedule.phases:
        # the long-cycle batch factor is the integer nearest to volume / (T * S^2)
        assert abs(phase.batch_factor * phase.frames * phase.side**2 - volume) <= 0.5 * phase.frames * phase.side**2
        cycle = schedule.cycle_shapes(phase.start_epoch)
        assert cycle[-1] == StepShape(phase.batch_size, phase.frames, phase.side, phase.batch_factor)
        for shape, factor in zip(cycle[:2], (0.5, 0.5**0.5)):
            # short-cycle multiplier: the integer nearest to (S / (f * S0))^2; the side is round(f * S0)
            assert shape.side == round(factor * side) and shape.frames == phase.frames
            assert abs(shape.batch_size / phase.batch_size - (phase.side / (factor * side)) ** 2) <= 0.5
            assert 0.9 <= shape.batch_size * shape.frames * shape.side**2 / volume <= 1.1, shape


@pytest.mark.parametrize("short_cycle", [True, False])
def test_the_last_phase_trains_at_the_default_shape(short_cycle):
    schedule = slowfast_schedule(short_cycle=short_cycle)
    last = schedule.phases[-1]
    assert (last.frames, last.side, last.batch_size, last.batch_factor, last.end_epoch) == (32, 224, 8, 1, 358)
    assert schedule.shape(schedule.total_epochs - 1, 2 if short_cycle else 0) == StepShape(8, 32, 224, 1.0)
    assert schedule.phase(10_000) == last  # past the end: the last phase, as PySlowFast


def test_sampling_follows_the_shape():
    schedule = slowfast_schedule()
    # 8 frames of the default 32: the stride grows 32 // 8 = 4 times, so 8 frames at stride 8 span 64 frames,
    # as 32 at stride 2; PySlowFast draws each clip's stride from 2..8
    sampling = schedule.sampling_for(schedule.shape(0, 0))
    assert (sampling.frames, sampling.side, sampling.stride_multiplier) == (8, 112, 4)
    assert schedule.temporal_stride(8, 2) == 8 and schedule.temporal_stride(16, 2) == 4
    assert schedule.temporal_stride(32, 2) == 2
    assert sampling.stride_range(2) == (2, 8)
    rng = np.random.default_rng(0)
    assert {sampling.draw_stride(2, rng) for _ in range(200)} == set(range(2, 9))
    # scale jitter: only the lower bound follows the side, round(256 * 112 / 224) = 128
    assert sampling.jitter_scales((256, 320)) == (128, 320)
    assert schedule.sampling_for(schedule.shape(0, 2)).jitter_scales((256, 320)) == (181, 320)  # 256*158/224
    base = Sampling(frames=32, stride=2, size=224)
    cut = sampling.applied_to(base)
    assert (cut.frames, cut.stride, cut.size) == (8, 8, 112)
    cut = sampling.applied_to(Sampling(frames=32, fps=10, size=224))
    assert (cut.frames, cut.fps, cut.size) == (8, 2.5, 112)


# --------------------------------------------------------------------------- learning rate


def test_steps_with_relative_lrs_follows_pyslowfast():
    steps, lrs = (0, 94, 154, 196), (1, 0.1, 0.01, 0.001, 0.0001)
    assert steps_with_relative_lrs(0.0, steps, lrs, 0.1) == pytest.approx(0.1)
    assert steps_with_relative_lrs(93.99, steps, lrs, 0.1) == pytest.approx(0.1)
    assert steps_with_relative_lrs(94.0, steps, lrs, 0.1) == pytest.approx(0.01)
    assert steps_with_relative_lrs(238.5, steps, lrs, 0.1) == pytest.approx(0.0001)
    assert steps_with_relative_lrs(500.0, steps, lrs, 0.1) == pytest.approx(0.0001)  # last stage holds
    assert steps_with_relative_lrs(5.0, (0, 5, 5, 8), (1, 2, 3, 4), 1.0) == 3  # an empty phase is skipped
    # warmup over 34 epochs from 0.01 to the lr at epoch 34 (phase 1: 0.1 * 8 = 0.8): at 17, halfway
    policy = slowfast_schedule().policy
    assert lr_at_epoch(17.0, policy, 0.1, warmup_epochs=34.0, warmup_start_lr=0.01) == pytest.approx(0.405)
    assert lr_at_epoch(34.0, policy, 0.1, warmup_epochs=34.0, warmup_start_lr=0.01) == pytest.approx(0.8)


def test_learning_rate_is_base_x_stage_decay_x_batch_factor_at_every_step():
    policy = StepPolicy(steps=(0, 4, 7), lrs=(1, 0.1, 0.01), max_epoch=10)
    schedule = MultigridSchedule(MultigridConfig(), policy, batch_size=2, frames=8, side=64, videos_per_process=150)
    phases = schedule.phases
    assert len(phases) == 9 and phases[-1].finetune and phases[-1].stage == 2
    finetune_half = (phases[-2].end_epoch + phases[-1].end_epoch) // 2
    checked = 0
    for epoch in range(schedule.total_epochs):
        phase = next(p for p in phases if p.start_epoch <= epoch < p.end_epoch)
        # the fine-tuning phase keeps the previous stage's decay for its first half
        stage = phase.stage - 1 if phase.finetune and epoch < finetune_half else phase.stage
        for step in range(schedule.steps_in_epoch(epoch)):
            expected = 0.1 * 0.1**stage * phase.batch_factor
            assert schedule.learning_rate(epoch, step, 0.1) == pytest.approx(expected, rel=1e-12), (epoch, step)
            assert schedule.shape(epoch, step).lr_factor == phase.batch_factor  # short cycles are not lr-scaled
            checked += 1
    assert checked == schedule.total_steps > 100


# --------------------------------------------------------------------------- steps per epoch, purity


@pytest.mark.parametrize("drop_last", [True, False])
@pytest.mark.parametrize("short_cycle", [True, False])
def test_steps_in_epoch_cover_the_dataset(drop_last, short_cycle):
    videos = 1000
    schedule = MultigridSchedule(MultigridConfig(short_cycle=short_cycle), SLOWFAST_POLICY, batch_size=8, frames=32,
                                 side=224, videos_per_process=videos, drop_last=drop_last)
    for phase in schedule.phases:
        epoch = phase.start_epoch
        if phase.epochs == 0:
            continue
        sizes = [schedule.shape(epoch, i).batch_size for i in range(schedule.steps_in_epoch(epoch))]
        cycle = schedule.cycle_shapes(epoch)
        if drop_last:
            next_batch = cycle[len(sizes) % len(cycle)].batch_size
            assert sum(sizes) <= videos < sum(sizes) + next_batch  # only an incomplete batch is dropped
        else:
            assert sum(sizes) == videos
        for i, size in enumerate(sizes):
            assert size % schedule.bn_splits(epoch, i) == 0
    # by hand: 1000 videos with batches 128, 64, 64 (256 per cycle): 3 cycles (9 steps, 768 videos),
    # then 128 and 64 (11 steps, 960 videos); 40 videos are left, fewer than the next 64
    if short_cycle:
        assert schedule.steps_in_epoch(0) == (11 if drop_last else 12)
    else:  # 1000 // 64 = 15 (plus a batch of 40)
        assert schedule.steps_in_epoch(0) == (15 if drop_last else 16)


def test_shape_is_a_pure_function_of_epoch_and_step():
    schedule = MultigridSchedule(MultigridConfig(), StepPolicy((0, 4, 7), (1, 0.1, 0.01), 10), batch_size=2,
                                 frames=8, side=64, videos_per_process=150)
    keys = [(e, s) for e in range(schedule.total_epochs) for s in range(schedule.steps_in_epoch(e))]
    forward = [schedule.shape(e, s) for e, s in keys]
    shuffled = keys[:]
    random.Random(0).shuffle(shuffled)
    again = dict(zip(shuffled, [schedule.shape(e, s) for e, s in shuffled]))
    assert [again[k] for k in keys] == forward
    fresh = MultigridSchedule(MultigridConfig(), StepPolicy((0, 4, 7), (1, 0.1, 0.01), 10), batch_size=2,
                              frames=8, side=64, videos_per_process=150)
    assert [fresh.shape(e, s) for e, s in reversed(keys)] == forward[::-1]
    assert [schedule.locate(schedule.global_step(e, s)) for e, s in keys] == keys
    assert schedule.locate(schedule.total_steps) == (schedule.total_epochs, 0)
    assert [s.side for s in forward[:3]] == [32, 45, 45]  # i % 3 within an epoch: 64/2, round(64/sqrt2)
    with pytest.raises(ValueError, match="outside epoch"):
        schedule.shape(0, schedule.steps_in_epoch(0))


def test_bad_settings_are_refused_with_clear_errors():
    with pytest.raises(ValueError, match="long_cycle or short_cycle"):
        MultigridConfig(long_cycle=False, short_cycle=False)
    with pytest.raises(ValueError, match=r"must be \(1, 1\)"):
        MultigridConfig(long_cycle_factors=((0.5, 0.5),))
    with pytest.raises(ValueError, match="two side factors"):
        MultigridConfig(short_cycle_factors=(0.5,))
    with pytest.raises(ValueError, match="epoch_factor"):
        MultigridConfig(epoch_factor=0)
    with pytest.raises(ValueError, match="start at epoch 0"):
        StepPolicy((5, 10), (1, 0.1), 20)
    with pytest.raises(ValueError, match="one relative lr per step"):
        StepPolicy((0, 10), (1,), 20)
    with pytest.raises(ValueError, match="before the last step"):
        StepPolicy((0, 10), (1, 0.1), 5)
    with pytest.raises(ValueError, match="at least one stage"):
        long_cycle_schedule(StepPolicy((0,), (1,), 5), 8, 64, 2)
    with pytest.raises(ValueError, match="do not fill one batch"):
        slowfast_schedule(videos=100)


# --------------------------------------------------------------------------- sub-batch BatchNorm


def _bn_per_split(x: torch.Tensor, splits: list[torch.Tensor], bn: nn.Module) -> torch.Tensor:
    """Plain BatchNorm (training) applied to each index set of ``splits`` separately."""
    out = torch.empty_like(x)
    for index in splits:
        out[index] = nn.functional.batch_norm(x[index], None, None, bn.weight, bn.bias, True, 0.0, bn.eps)
    return out


def _expected_pooled_stats(x: torch.Tensor, splits: list[torch.Tensor], momentum: float):
    """Running stats of every split after one step from (0, 1), pooled as PySlowFast's aggregate_stats."""
    dims = [0, *range(2, x.dim())]
    means, variances = [], []
    for index in splits:
        part = x[index]
        means.append(momentum * part.mean(dims))
        variances.append((1 - momentum) + momentum * part.var(dims, unbiased=True))
    means, variances = torch.stack(means), torch.stack(variances)
    mean = means.mean(0)
    return mean, variances.mean(0) + ((means - mean) ** 2).mean(0)


@pytest.mark.parametrize("kind", ["3d", "2d"])
def test_sub_batch_bn_trains_each_split_separately_and_evaluates_with_pooled_stats(kind):
    torch.manual_seed(0)
    k, n, c = 3, 12, 4
    if kind == "3d":
        bn, x = SubBatchNorm3d(c, num_splits=k, momentum=0.2), torch.randn(n, c, 2, 3, 3) * 2 + 1
        splits = [torch.arange(j, n, k) for j in range(k)]  # clip i in split i % k, as PySlowFast's reshape
        plain = nn.BatchNorm3d(c, momentum=0.2)
    else:
        bn, x = SubBatchNorm2d(c, num_splits=k, momentum=0.2), torch.randn(n, c, 3, 3) * 2 + 1
        splits = [torch.arange(j * n // k, (j + 1) * n // k) for j in range(k)]  # contiguous: whole clips
        plain = nn.BatchNorm2d(c, momentum=0.2)
    x[splits[1]] += 3.0  # make the splits' statistics differ
    with torch.no_grad():
        bn.weight.copy_(torch.rand(c) + 0.5)
        bn.bias.copy_(torch.randn(c))
    bn.train()
    out = bn(x)
    assert torch.allclose(out, _bn_per_split(x, splits, bn), atol=1e-5)
    assert not torch.allclose(out, nn.functional.batch_norm(x, None, None, bn.weight, bn.bias, True, 0.0, bn.eps),
                              atol=1e-2)  # whole-batch statistics would differ
    mean, var = _expected_pooled_stats(x, splits, momentum=0.2)
    assert torch.allclose(bn.running_mean, mean, atol=1e-6) and torch.allclose(bn.running_var, var, atol=1e-5)
    assert bn.num_batches_tracked.item() == 1
    # evaluation is a plain BatchNorm with the pooled statistics, and the state dict is a plain BatchNorm's
    plain.load_state_dict(bn.state_dict())
    bn.eval(), plain.eval()
    y = torch.randn(5, *x.shape[1:])  # any batch size in evaluation
    assert torch.equal(bn(y), plain(y))
    assert torch.allclose(plain.running_mean, mean, atol=1e-6)
    # the gradient reaches the one shared weight and bias
    bn.train()
    bn(x).pow(2).sum().backward()
    assert bn.weight.grad is not None and bn.weight.grad.shape == (c,)


def test_changing_the_number_of_splits_keeps_the_pooled_stats_and_reseeds_the_splits():
    torch.manual_seed(1)
    bn = SubBatchNorm3d(3, num_splits=4, momentum=0.5).train()
    x = torch.randn(8, 3, 2, 2, 2)
    x[::4] += 5.0
    bn(x)
    mean, var = bn.running_mean.clone(), bn.running_var.clone()
    bn.set_num_splits(2)
    assert bn.num_splits == 2 and bn.split_running_mean.shape == (6,)
    assert torch.equal(bn.split_running_mean, mean.repeat(2)) and torch.equal(bn.split_running_var, var.repeat(2))
    bn.aggregate_stats()  # pooling identical splits changes nothing
    assert torch.allclose(bn.running_mean, mean) and torch.allclose(bn.running_var, var)
    with pytest.raises(ValueError, match="cannot be split"):
        bn(torch.randn(5, 3, 2, 2, 2))


def test_converting_a_model_keeps_its_eval_outputs_and_state_dict():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU(),
                          nn.Sequential(nn.Conv3d(4, 4, 1), nn.BatchNorm3d(4)), nn.AdaptiveAvgPool3d(1), nn.Flatten(),
                          nn.Linear(4, 2), nn.BatchNorm1d(2))
    model.train()
    for _ in range(3):  # non-trivial running statistics
        model(torch.randn(4, 3, 2, 4, 4))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_()
    model.eval()
    x = torch.randn(3, 3, 2, 4, 4)
    before, state = model(x), {k: v.clone() for k, v in model.state_dict().items()}
    converted = convert_to_sub_batch_bn(model, num_splits=2)
    assert converted is model
    assert sum(isinstance(m, SubBatchNorm3d) for m in model.modules()) == 2
    assert isinstance(model[7], nn.BatchNorm1d) and not model.training and not model[1].training
    assert torch.equal(model(x), before)
    after = model.state_dict()
    assert after.keys() == state.keys() and all(torch.equal(after[k], state[k]) for k in state)
    assert set_bn_splits(model, 4) == 2 and model[3][1].num_splits == 4
    assert torch.equal(model(x), before)  # re-seeding the splits leaves the pooled statistics alone
    model.train()
    model(torch.randn(8, 3, 2, 4, 4))  # trains with 4 groups of 2 clips


def test_phase_dataclass_exposes_its_lr_factor():
    phase = LongCyclePhase(stage=0, start_epoch=0, end_epoch=73, frames=8, side=158, batch_factor=8, batch_size=64)
    assert phase.epochs == 73 and phase.lr_factor == 8.0


def test_changing_the_number_of_splits_keeps_the_buffer_tensors():
    bn = SubBatchNorm3d(3, num_splits=2)
    before = bn.split_running_mean
    set_bn_splits(bn, 4)
    assert bn.split_running_mean is before and before.shape == (12,)  # DDP keeps references to buffers
    assert dict(bn.named_buffers())["split_running_mean"] is before
