"""The suite's inference path for deployment: the same network with every BatchNorm that follows a
convolution folded into that convolution's weights and bias (``speed --fold-bn``, ``export``).

In eval mode BatchNorm is an affine map per channel, ``y = (x - mean) / sqrt(var + eps) * gamma + beta``;
after a convolution it is absorbed exactly by scaling each output channel's kernel and adding a bias, so
one kernel call replaces two passes over the activation. Folded are the ``(convolution, BatchNorm)`` pairs
of ``nn.Sequential`` containers (X3D, MobileNetV3, torchvision's ``Conv*NormActivation``) and MoViNet's
``ConvBNAct`` (also the spatial part of its (2+1)D stream convolutions). :func:`folded` checks that the
folded copy computes what the original computes (to ``tolerance``) and refuses it otherwise.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from baselines.movinet import ConvBNAct
from benchmarks.core.counting import LogitsOnly
from benchmarks.table1.specs import RowSpec

CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


class FoldError(ValueError):
    """The folded model does not compute what the original computes."""


@torch.no_grad()
def fold_into(conv: nn.Conv1d | nn.Conv2d | nn.Conv3d, bn: _BatchNorm) -> None:
    """Absorb ``bn`` (eval mode, running statistics) into ``conv`` in place."""
    if not bn.track_running_stats or bn.running_mean is None:
        raise FoldError(f"{bn} has no running statistics to fold")
    scale = (bn.weight if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(bn.running_var + bn.eps)
    shift = (bn.bias if bn.affine else torch.zeros_like(bn.running_mean)) - bn.running_mean * scale
    conv.weight.mul_(scale.reshape(-1, *([1] * (conv.weight.dim() - 1))))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(scale)
    conv.bias = nn.Parameter(bias * scale + shift)


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every BatchNorm that directly follows a convolution, in place; returns how many."""
    folded = 0
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for first, second in zip(names, names[1:]):
                conv, bn = module._modules[first], module._modules[second]
                if isinstance(conv, CONVOLUTIONS) and isinstance(bn, _BatchNorm):
                    fold_into(conv, bn)
                    module._modules[second] = nn.Identity()
                    folded += 1
        elif isinstance(module, ConvBNAct) and isinstance(module.bn, _BatchNorm):
            fold_into(module.conv, module.bn)
            module.bn = nn.Identity()
            folded += 1
    return folded


def folded(model: nn.Module, check: Callable[[nn.Module], torch.Tensor], tolerance: float = 1e-4) -> nn.Module:
    """A BatchNorm-folded copy of ``model`` (eval mode), refused with :class:`FoldError` unless
    ``check(copy)`` equals ``check(model)`` to ``tolerance`` (max abs difference)."""
    model = model.eval()
    fast = copy.deepcopy(model)
    fold_batchnorm(fast)
    with torch.inference_mode():
        expected, got = check(model), check(fast)
    difference = (expected.float() - got.float()).abs().max().item()
    if difference > tolerance:
        raise FoldError(f"folding BatchNorm changes the output by {difference:.3g} (> {tolerance:g})")
    return fast


def reference_output(model: nn.Module, spec: RowSpec, device: str) -> torch.Tensor:
    """The logits of a fixed random clip (stream rows: after each of its frames, fed one by one), to
    check that a faster form of ``model`` computes the same."""
    clip = torch.randn(1, 3, min(spec.frames, 8), spec.res, spec.res, generator=torch.Generator().manual_seed(0))
    clip = clip.to(device)
    if not spec.streaming:
        return LogitsOnly(model)(clip)
    state, outputs = None, []
    for t in range(clip.shape[2]):
        logits, state = model.forward_stream(clip[:, :, t:t + 1], state)
        outputs.append(logits)
    return torch.stack(outputs)


def to_channels_last(model: nn.Module) -> nn.Module:
    """Every convolution weight in channels-last memory (in place; values unchanged)."""
    for module in model.modules():
        if isinstance(module, nn.Conv3d):
            module.to(memory_format=torch.channels_last_3d)
        elif isinstance(module, nn.Conv2d):
            module.to(memory_format=torch.channels_last)
    return model
