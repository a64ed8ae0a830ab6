"""Slimmable layers for A3D (Zhu, Yang, Mendieta, Chen, "A3D: Adaptive 3D Networks for Video Action
Recognition"; seed 002): one network whose narrower configurations compute on the leading slice of
every layer's weights.

A layer runs on the first channels of its weights: a convolution takes as many input channels as its
input has and produces ``active_out`` output channels (all when None); a depthwise convolution keeps
one group per active channel; BatchNorm and the classifier's first linear layer follow their input.
The convolution really is narrower (``F.conv3d`` on the weight slice), so fvcore counts, and the CPU
spends, fewer multiply-adds; nothing is masked. At full width every layer is the plain torch layer.

Which channels a configuration keeps is decided once for a whole network by :func:`set_width`: each
convolution keeps the output channels of the same layer in a freshly built network of that width
(``narrow_model(width)``), so a sliced configuration has exactly the layer shapes, and the fvcore
count, of the narrow network. BatchNorm running statistics are shared between configurations (the
leading slice for narrower ones); A3D recomputes them per configuration before evaluating one
(:func:`recompute_batchnorm`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SlimmableConv3d(nn.Conv3d):
    """``nn.Conv3d`` on its first ``active_out`` filters and its input's channels (a depthwise
    convolution: one group per active channel)."""

    active_out: int | None = None

    def forward(self, x: Tensor) -> Tensor:
        out = self.active_out or self.out_channels
        if out == self.out_channels and x.shape[1] == self.in_channels:
            return super().forward(x)
        depthwise = self.groups == self.in_channels == self.out_channels and self.groups > 1
        if depthwise:
            if x.shape[1] != out:
                raise ValueError(f"depthwise convolution with {out} active channels got {x.shape[1]} input channels")
            weight, groups = self.weight[:out], out
        elif self.groups == 1:
            weight, groups = self.weight[:out, : x.shape[1]], 1
        else:
            raise ValueError("slimmable grouped convolutions other than depthwise are not supported")
        bias = self.bias[:out] if self.bias is not None else None
        return F.conv3d(x, weight, bias, self.stride, self.padding, self.dilation, groups)


class SlimmableBatchNorm3d(nn.BatchNorm3d):
    """``nn.BatchNorm3d`` on its input's channels: the leading slice of its affine parameters and
    running statistics (updated in place in training)."""

    def forward(self, x: Tensor) -> Tensor:
        channels = x.shape[1]
        if channels == self.num_features:
            return super().forward(x)
        self._check_input_dim(x)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        use_batch_stats = self.training or self.running_mean is None
        return F.batch_norm(
            x,
            self.running_mean[:channels] if self.running_mean is not None else None,
            self.running_var[:channels] if self.running_var is not None else None,
            self.weight[:channels] if self.affine else None,
            self.bias[:channels] if self.affine else None,
            use_batch_stats, momentum, self.eps,
        )


class SlimmableLinear(nn.Linear):
    """``nn.Linear`` on its input's features (the leading columns of its weight); all outputs."""

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] == self.in_features:
            return super().forward(x)
        return F.linear(x, self.weight[:, : x.shape[-1]], self.bias)


_SLIMMABLE: dict[type[nn.Module], type[nn.Module]] = {
    nn.Conv3d: SlimmableConv3d,
    nn.BatchNorm3d: SlimmableBatchNorm3d,
    nn.Linear: SlimmableLinear,
}


def _slimmable_copy(module: nn.Module) -> nn.Module:
    kind = _SLIMMABLE[type(module)]
    with torch.device("meta"):
        if isinstance(module, nn.Conv3d):
            new = kind(module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding,
                       module.dilation, module.groups, module.bias is not None, module.padding_mode)
        elif isinstance(module, nn.BatchNorm3d):
            new = kind(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        else:
            new = kind(module.in_features, module.out_features, module.bias is not None)
    new.load_state_dict(module.state_dict(), assign=True)
    return new.train(module.training)


def make_slimmable(model: nn.Module, skip: Callable[[str], bool] = lambda name: False) -> nn.Module:
    """Replace every ``Conv3d``, ``BatchNorm3d`` and ``Linear`` of ``model`` (except those whose name
    ``skip`` accepts) by its slimmable version, in place, keeping parameters, buffers and mode: the
    state dict and, at full width, the outputs are those of the plain model."""
    for parent_name, parent in list(model.named_modules()):
        for name, child in list(parent.named_children()):
            full_name = f"{parent_name}.{name}" if parent_name else name
            if type(child) in _SLIMMABLE and not skip(full_name):
                setattr(parent, name, _slimmable_copy(child))
    return model


def set_active_channels(model: nn.Module, channels: dict[str, int]) -> None:
    """Give each slimmable convolution of ``model`` its active output channels (by module name; a
    convolution not named keeps all of them)."""
    for name, module in model.named_modules():
        if isinstance(module, SlimmableConv3d):
            out = channels.get(name, module.out_channels)
            if not 1 <= out <= module.out_channels:
                raise ValueError(f"{name}: {out} active channels of {module.out_channels}")
            module.active_out = None if out == module.out_channels else out


def conv_channels(model: nn.Module) -> dict[str, int]:
    """Output channels of every 3D convolution of ``model``, by module name."""
    return {name: m.out_channels for name, m in model.named_modules() if isinstance(m, nn.Conv3d)}


@contextmanager
def active_channels(model: nn.Module, channels: dict[str, int]) -> Iterator[nn.Module]:
    """Run ``model`` with these active channels inside the block; afterwards the channels it had before
    (full width outside any block: a nested block must not widen the outer one's network)."""
    before = {name: module.active_out or module.out_channels for name, module in model.named_modules()
              if isinstance(module, SlimmableConv3d)}
    set_active_channels(model, channels)
    try:
        yield model
    finally:
        set_active_channels(model, before)


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, batches: Iterable[Tensor], forward: Callable[[Tensor], object]) -> int:
    """BatchNorm statistics for the configuration ``forward`` runs: every BatchNorm's running mean and
    variance reset and recomputed as the plain average over ``batches`` (momentum None), the weights
    and every other layer's mode unchanged; returns the number of batches used. Slimmable BatchNorms
    fill the leading slice of their statistics (the configuration's channels)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [(m.momentum, m.training) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    count = 0
    try:
        for batch in batches:
            forward(batch)
            count += 1
    finally:
        for m, (momentum, training) in zip(norms, saved):
            m.momentum = momentum
            m.train(training)
    return count
