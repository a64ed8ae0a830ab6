"""Temporal Shift Module (Lin et al., ICCV 2019) on the frame-wise MobileNetV3.

TSM mixes information across neighbouring frames at zero cost: a fraction of the channels is moved
one frame along time, the vacated frame is filled with zeros, and no parameters or multiply-adds are
added.

Where the shift goes (the paper's *residual shift*): inside the residual branch of every inverted
residual block that has an identity shortcut, before the block's first conv. The shortcut keeps the
unshifted activations, so each block still sees the current frame in full. Blocks without a shortcut
(stride 2 or a change of width) are left alone, as in the paper's MobileNetV2 model.

* bidirectional (offline, default): 1/8 of the channels come from the next frame, 1/8 from the
  previous frame, the other 3/4 are unchanged;
* causal (online): 1/8 of the channels come from the previous frame only, so frame t never sees a
  frame after t and the model can run frame by frame.

Module names are those of :mod:`baselines.mobilenet` (a shifted block keeps its torchvision ``block``
child; the shift itself is a parameter-free ``shift`` child), so the state dict and the GRW tap
points are unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models.mobilenetv3 import InvertedResidual

from baselines.mobilenet import VARIANTS, MobileNetV3Video, mobilenet_v3_backbone


def temporal_shift(x: Tensor, num_frames: int, fold_div: int = 8, causal: bool = False) -> Tensor:
    """Shift ``1 / fold_div`` of the channels of ``[N * num_frames, C, H, W]`` along time, zero filled.

    Channels ``[0, C/fold_div)`` move: bidirectional, frame t takes them from frame t+1; causal,
    frame t takes them from frame t-1. Bidirectional also moves ``[C/fold_div, 2C/fold_div)`` so that
    frame t takes them from frame t-1. Frames at the clip boundary get zeros.
    """
    if x.ndim != 4 or x.shape[0] % num_frames:
        raise ValueError(f"expected [N * {num_frames} frames, C, H, W], got {list(x.shape)}")
    video = x.unflatten(0, (-1, num_frames))  # [N, T, C, H, W]
    fold = x.shape[1] // fold_div
    out = torch.zeros_like(video)
    if causal:
        out[:, 1:, :fold] = video[:, :-1, :fold]  # from the previous frame
        out[:, :, fold:] = video[:, :, fold:]
    else:
        out[:, :-1, :fold] = video[:, 1:, :fold]  # from the next frame
        out[:, 1:, fold : 2 * fold] = video[:, :-1, fold : 2 * fold]  # from the previous frame
        out[:, :, 2 * fold :] = video[:, :, 2 * fold :]
    return out.flatten(0, 1)


class TemporalShift(nn.Module):
    """:func:`temporal_shift` as a module. ``num_frames`` is set by the video model before each forward."""

    def __init__(self, fold_div: int = 8, causal: bool = False) -> None:
        super().__init__()
        if fold_div < 2 or (not causal and fold_div < 3):
            raise ValueError(f"fold_div must leave some channels unshifted, got {fold_div}")
        self.fold_div = fold_div
        self.causal = causal
        self.num_frames: int | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.num_frames is None:
            raise RuntimeError("TemporalShift.num_frames is not set; run it inside MobileNetV3TSM")
        return temporal_shift(x, self.num_frames, self.fold_div, self.causal)

    def extra_repr(self) -> str:
        return f"fold_div={self.fold_div}, causal={self.causal}"


class ShiftedInvertedResidual(nn.Module):
    """A torchvision ``InvertedResidual`` (with identity shortcut) whose residual branch is shifted first."""

    def __init__(self, block: InvertedResidual, shift: TemporalShift) -> None:
        super().__init__()
        if not block.use_res_connect:
            raise ValueError("residual shift needs a block with an identity shortcut")
        self.shift = shift
        self.block = block.block  # same child name as torchvision's block: weights and taps unchanged
        self.out_channels = block.out_channels

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(self.shift(x))


def insert_temporal_shift(features: nn.Sequential, fold_div: int = 8, causal: bool = False) -> int:
    """Wrap, in place, every residual ``InvertedResidual`` of ``features``; returns how many were wrapped."""
    wrapped = 0
    for index, module in enumerate(features):
        if isinstance(module, InvertedResidual) and module.use_res_connect:
            features[index] = ShiftedInvertedResidual(module, TemporalShift(fold_div, causal))
            wrapped += 1
    return wrapped


class MobileNetV3TSM(MobileNetV3Video):
    """Frame-wise MobileNetV3 with residual temporal shifts; same interface as :class:`MobileNetV3Video`."""

    def _frames(self, x: Tensor) -> Tensor:
        for module in self.modules():
            if isinstance(module, TemporalShift):
                module.num_frames = x.shape[2]
        return super()._frames(x)


def mobilenet_v3_tsm(
    variant: str, num_classes: int = 600, dropout: float = 0.2, causal: bool = False, fold_div: int = 8
) -> MobileNetV3TSM:
    """MobileNetV3 ("small" or "large") + TSM; ``causal=True`` gives the online (forward-only) shift."""
    backbone = mobilenet_v3_backbone(variant, num_classes, dropout)
    insert_temporal_shift(backbone.features, fold_div, causal)
    return MobileNetV3TSM(backbone, tap_points=VARIANTS[variant].tap_points)
