"""Intermediate-layer GRW-smoothing through forward hooks on any backbone.

Each tapped feature map is pooled over space, normalised by an affine-free BatchNorm over channels,
cut into windows of ``window`` frames, and given the GRW loss; the losses of all taps are summed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import partial

from torch import Tensor, nn

from grw.loss import GrwSmoothingLoss, windows


class IntermediateTaps(nn.Module):
    """GRW-smoothing on the outputs of named modules of ``model`` (names as in ``model.get_submodule``).

    Feature maps are ``[B, C, T, H, W]`` (3D backbones) or ``[B * T, C, H, W]`` (frame-wise 2D
    backbones; then ``frames``, the clip length T, must be set before the forward, as ``GrwModel``
    does). Losses are collected while the taps are enabled and in training mode; ``loss()`` returns
    the sum from the last forward (or ``None``) and clears it. ``remove()`` detaches the hooks.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: list[str],
        window: int = 5,
        alpha: float = 0.5,
        frames: int | None = None,
        enabled: bool = True,
        max_perms: int = 1000,
    ) -> None:
        super().__init__()
        if not layers:
            raise ValueError("expected at least one layer name to tap")
        self.layers = list(layers)
        self.window = window
        self.frames = frames
        self.enabled = enabled
        self.grw_loss = GrwSmoothingLoss(window, alpha, max_perms)
        # One affine-free BatchNorm per tap, sized on first use (the channel count is not known here).
        self.norms = nn.ModuleList(nn.LazyBatchNorm1d(affine=False) for _ in self.layers)
        self._losses: dict[str, Tensor] = {}
        self._handles = [
            model.get_submodule(name).register_forward_hook(partial(self._hook, index))
            for index, name in enumerate(self.layers)
        ]

    def _pooled(self, feature_map: Tensor) -> Tensor:
        """Spatially pooled features ``[B, C, T]``."""
        if feature_map.dim() == 5:
            return feature_map.mean(dim=(3, 4))
        if feature_map.dim() == 4:
            if self.frames is None:
                raise ValueError("frame-wise [B*T, C, H, W] feature maps need `frames` (clip length T) set")
            if feature_map.shape[0] % self.frames:
                raise ValueError(f"batch {feature_map.shape[0]} is not a multiple of frames={self.frames}")
            pooled = feature_map.mean(dim=(2, 3))
            return pooled.reshape(-1, self.frames, pooled.shape[1]).transpose(1, 2)
        shape = tuple(feature_map.shape)
        raise ValueError(f"expected a [B, C, T, H, W] or [B*T, C, H, W] feature map, got shape {shape}")

    def _hook(self, index: int, module: nn.Module, inputs: tuple, output: Tensor) -> None:
        if not (self.enabled and self.training):
            return
        sequence = self.norms[index](self._pooled(output)).transpose(1, 2)  # [B, T, C]
        self._losses[self.layers[index]] = self.grw_loss(windows(sequence, self.window))

    def loss(self) -> Tensor | None:
        """Sum of the taps' GRW losses from the last forward, or ``None`` if none was collected."""
        losses, self._losses = self._losses, {}
        return sum(losses.values()) if losses else None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Run forwards without collecting (and without computing) any tap loss."""
        enabled, self.enabled = self.enabled, False
        try:
            yield
        finally:
            self.enabled = enabled

    def remove(self) -> None:
        """Detach the hooks from the model; the taps collect nothing afterwards."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._losses = {}
