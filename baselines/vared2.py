"""VA-RED2 (Pan et al., "VA-RED2: Video Adaptive Redundancy Reduction", ICLR 2021; seed 004): dynamic
3D convolutions that compute, per video, only part of their output along time and channels and rebuild
the rest with cheap linear operations.

A :class:`DynamicConv3d` wraps a 3D convolution ``f`` (its weights are the paper's "big kernel") with:

- temporal options R in ``temporal`` (R = 2^(j-1), Eq. 1): the convolution at R times its temporal
  stride computes every R-th output frame; frame iR + j (0 < j < R) is rebuilt from frame iR by a
  cheap per-channel linear map Phi^t_j (scale and bias per channel; the paper's Phi^t_{i,j}, shared
  over i here so that it does not depend on the clip length);
- channel options r in ``channel`` (r = (1/2)^(i-1)): the first r C_out filters are computed, the
  other (1 - r) C_out channels are rebuilt from them by a cheap per-channel linear map Phi^c (output
  channel k from computed channel k mod r C_out, with its own scale and bias);
- a soft modulation gate (Eq. 4, :class:`ModulationGate`): the input pooled over space (C_in x T
  values), FC, BatchNorm, tanh, FC (+ bias), max(tanh, 0): one weight in [0, 1) per temporal and
  per channel option, per video.

Training (Eq. 5, shared weights, Appendix B): the full convolution runs once; every option (R, r)
takes its frames and channels from it, is rebuilt, and the output is the sum over options weighted
by V^t[j] V^c[i] (the paper gives the two sums of Eq. 5 separately; combining them as the product of
the two gates is this suite's reading). Inference: per video, only the options with a non-zero
weight count; the largest of them (smallest R and largest r with a weight, Eq. 7-8) is computed with
a really reduced convolution (stride R, r C_out filters), and the smaller ones are sliced from it, so
the layer costs r/R of its full multiply-adds (Eq. 3) plus the gate: r x ceil(T/R) / T of them exactly, for T
output frames (frames 0, R, 2R, ... are computed; more than 1/R when R does not divide T). ``spent`` and
``chosen`` record, per video of the last inference call, that fraction and the option (R, r) computed.

Efficiency loss (Eq. 6; the seed's text of it is garbled and is reconstructed here from its
definitions): for each correctly classified video, the sum over dynamic layers of the layer's share of
the network's dynamic FLOPs times the cost fraction its gates choose, sum_{i,j} V^c[i] V^t[j] r_i / R_j
(the differentiable form of the largest option's r/R); zero for a wrongly classified video. The
total loss is the accuracy loss + lambda_e x this (:func:`efficiency_loss`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ModulationGate(nn.Module):
    """Eq. 4: per video, one weight in [0, 1) per temporal option and per channel option."""

    def __init__(self, in_channels: int, frames: int, temporal_options: int, channel_options: int,
                 hidden: int = 16) -> None:
        super().__init__()
        self.frames, self.temporal_options = frames, temporal_options
        self.fc1 = nn.Linear(in_channels * frames, hidden, bias=False)
        self.bn = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, temporal_options + channel_options)  # its bias is the paper's beta
        nn.init.constant_(self.fc2.bias, 1.0)  # every option on at the start

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.shape[2] != self.frames:
            raise ValueError(f"the gate was built for {self.frames} input frames, got {x.shape[2]}")
        pooled = x.mean(dim=(3, 4)).flatten(1)  # G: pool over space, C_in x T values
        weights = torch.relu(torch.tanh(self.fc2(torch.tanh(self.bn(self.fc1(pooled))))))
        return weights[:, : self.temporal_options], weights[:, self.temporal_options :]


class DynamicConv3d(nn.Module):
    """A 3D convolution with VA-RED2's temporal and channel options and its gate (see the module docstring)."""

    def __init__(self, conv: nn.Conv3d, frames: int, temporal: Sequence[int] = (1, 2),
                 channel: Sequence[float] = (1.0, 0.5), hidden: int = 16) -> None:
        super().__init__()
        if conv.groups != 1:
            raise ValueError("VA-RED2 dynamic convolutions need an ungrouped convolution")
        if tuple(temporal)[0] != 1 or tuple(channel)[0] != 1:
            raise ValueError("the first temporal option must be R = 1 and the first channel option r = 1")
        self.conv, self.temporal, self.channel = conv, tuple(temporal), tuple(channel)
        out = conv.out_channels
        self.computed = [max(1, round(r * out)) for r in self.channel]  # channels each option computes
        self.gate = ModulationGate(conv.in_channels, frames, len(self.temporal), len(self.channel), hidden)
        # Phi^t_j for j = 1 .. max R - 1, Phi^c for each r < 1: per-channel scale and bias
        self.temporal_scale = nn.Parameter(torch.ones(max(self.temporal) - 1, out))
        self.temporal_bias = nn.Parameter(torch.zeros(max(self.temporal) - 1, out))
        self.channel_scale = nn.Parameter(torch.ones(len(self.channel), out))
        self.channel_bias = nn.Parameter(torch.zeros(len(self.channel), out))
        self.forced: tuple[Tensor, Tensor] | None = None  # gate weights to use instead of the gate's (tests)
        self.last_weights: tuple[Tensor, Tensor] | None = None
        self.spent: Tensor | None = None  # per video of the last inference call: fraction of the full conv's cost
        self.chosen: Tensor | None = None  # ... and the option it computed, (R, r); (0, 0) when nothing

    # -- the options
    def strided(self, x: Tensor, stride_factor: int, channels: int) -> Tensor:
        """The reduced convolution: ``channels`` filters at ``stride_factor`` times the temporal stride."""
        stride = (self.conv.stride[0] * stride_factor, *self.conv.stride[1:])
        bias = self.conv.bias[:channels] if self.conv.bias is not None else None
        return F.conv3d(x, self.conv.weight[:channels], bias, stride, self.conv.padding, self.conv.dilation)

    def rebuild_channels(self, y: Tensor, option: int) -> Tensor:
        """``[B, computed, ...]`` -> ``[B, C_out, ...]``: the missing channels from Phi^c of option ``option``."""
        out, computed = self.conv.out_channels, y.shape[1]
        if computed == out:
            return y
        source = torch.arange(computed, out, device=y.device) % computed
        scale = self.channel_scale[option, computed:].view(1, -1, 1, 1, 1)
        bias = self.channel_bias[option, computed:].view(1, -1, 1, 1, 1)
        return torch.cat([y, y[:, source] * scale + bias], dim=1)

    def rebuild_frames(self, y: Tensor, factor: int, frames: int) -> Tensor:
        """``[B, C, ceil(T / R), ...]`` -> ``[B, C, T, ...]``: frame iR is computed, iR + j is Phi^t_j of it."""
        if factor == 1:
            return y
        copies = [y] + [y * self.temporal_scale[j - 1].view(1, -1, 1, 1, 1) + self.temporal_bias[j - 1].view(
            1, -1, 1, 1, 1) for j in range(1, factor)]
        interleaved = torch.stack(copies, dim=3).flatten(2, 3)  # frame order i*R + j
        return interleaved[:, :, :frames]

    def option(self, x: Tensor, t: int, c: int, frames: int | None = None) -> Tensor:
        """Option (temporal ``t``, channel ``c``) computed on its own with the reduced convolution."""
        frames = frames or self.conv_output_frames(x)
        y = self.strided(x, self.temporal[t], self.computed[c])
        return self.rebuild_frames(self.rebuild_channels(y, c), self.temporal[t], frames)

    def conv_output_frames(self, x: Tensor) -> int:
        k, s, p, d = self.conv.kernel_size[0], self.conv.stride[0], self.conv.padding[0], self.conv.dilation[0]
        return (x.shape[2] + 2 * p - d * (k - 1) - 1) // s + 1

    # -- forward
    def weights(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.forced is not None:
            vt, vc = self.forced
            return vt.expand(len(x), -1), vc.expand(len(x), -1)
        return self.gate(x)

    def forward(self, x: Tensor) -> Tensor:
        vt, vc = self.weights(x)
        self.last_weights = (vt, vc)
        return self._train_forward(x, vt, vc) if self.training else self._inference_forward(x, vt, vc)

    def _train_forward(self, x: Tensor, vt: Tensor, vc: Tensor) -> Tensor:
        """Eq. 5 with shared weights: every option sliced from one full convolution."""
        full = self.conv(x)
        frames = full.shape[2]
        out = torch.zeros_like(full)
        for t, factor in enumerate(self.temporal):
            for c, computed in enumerate(self.computed):
                y = self.rebuild_frames(self.rebuild_channels(full[:, :computed, ::factor], c), factor, frames)
                out = out + (vt[:, t] * vc[:, c]).view(-1, 1, 1, 1, 1) * y
        return out

    def _inference_forward(self, x: Tensor, vt: Tensor, vc: Tensor) -> Tensor:
        """Per video: the largest option with a weight computed by a reduced convolution, the others
        sliced from it; options without weight cost nothing. Videos with the same options on run together."""
        frames = self.conv_output_frames(x)
        out = None
        spent, chosen = torch.zeros(len(x)), torch.zeros(len(x), 2)
        groups: dict[tuple[tuple[int, ...], tuple[int, ...]], list[int]] = {}
        for b in range(len(x)):
            active_t = tuple(t for t in range(len(self.temporal)) if vt[b, t] > 0)
            active_c = tuple(c for c in range(len(self.channel)) if vc[b, c] > 0)
            groups.setdefault((active_t, active_c), []).append(b)
        for (active_t, active_c), videos in groups.items():
            if not active_t or not active_c:
                continue  # nothing computed: the output stays zero
            index = torch.tensor(videos, device=x.device)
            t0, c0 = active_t[0], active_c[0]  # the largest: smallest R, largest r
            base = self.strided(x if len(videos) == len(x) else x[index], self.temporal[t0], self.computed[c0])
            y = 0
            for t in active_t:
                step = self.temporal[t] // self.temporal[t0]
                for c in active_c:
                    part = self.rebuild_channels(base[:, : self.computed[c], ::step], c)
                    weight = (vt[index, t] * vc[index, c]).view(-1, 1, 1, 1, 1)
                    y = y + weight * self.rebuild_frames(part, self.temporal[t], frames)
            if len(videos) == len(x):
                out = y
            else:
                if out is None:
                    out = x.new_zeros(len(x), *y.shape[1:])
                out = out.index_copy(0, index, y)
            # the frames the reduced convolution really computed: ceil(T / R), not T / R, when R does not divide T
            spent[index.cpu()] = self.computed[c0] / self.conv.out_channels * base.shape[2] / frames
            chosen[index.cpu()] = torch.tensor([float(self.temporal[t0]), self.channel[c0]])
        self.spent, self.chosen = spent, chosen
        if out is None:  # no video computed anything
            out = x.new_zeros(len(x), self.conv.out_channels, frames, *self._output_side(x))
        return out

    def _output_side(self, x: Tensor) -> tuple[int, int]:
        return tuple((size + 2 * p - d * (k - 1) - 1) // s + 1 for size, k, s, p, d in zip(
            x.shape[3:], self.conv.kernel_size[1:], self.conv.stride[1:], self.conv.padding[1:],
            self.conv.dilation[1:]))

    def cost_fraction(self) -> Tensor:
        """Per video, the differentiable cost fraction the gates chose: sum_{t,c} V^t V^c r_c / R_t."""
        vt, vc = self.last_weights
        cost = torch.tensor([[self.computed[c] / self.conv.out_channels / r for c in range(len(self.channel))]
                             for r in self.temporal], device=vt.device, dtype=vt.dtype)  # [T options, C options]
        return torch.einsum("bt,bc,tc->b", vt, vc, cost)


def conv_macs(conv: nn.Conv3d, output_shape: Sequence[int]) -> float:
    """Multiply-adds of a convolution producing ``output_shape`` ``[B, C, T, H, W]`` (per video)."""
    kernel = math.prod(conv.kernel_size) * conv.in_channels // conv.groups
    return float(kernel * math.prod(output_shape[1:]))


def convert(model: nn.Module, layers: Sequence[str], input_shape: Sequence[int], **options) -> dict[str, float]:
    """Replace the named ``Conv3d`` layers of ``model`` by :class:`DynamicConv3d` (in place), each gate
    built for the frames its layer sees at ``input_shape``; returns each layer's full multiply-adds per
    video at that input (the weights of the efficiency loss)."""
    modules = dict(model.named_modules())
    missing = [name for name in layers if not isinstance(modules.get(name), nn.Conv3d)]
    if missing:
        raise ValueError(f"not 3D convolutions of the model: {missing}")
    shapes: dict[str, tuple[torch.Size, torch.Size]] = {}
    hooks = [modules[name].register_forward_hook(
        lambda module, args, out, name=name: shapes.__setitem__(name, (args[0].shape, out.shape))) for name in layers]
    mode = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(*input_shape))
    model.train(mode)
    for hook in hooks:
        hook.remove()
    macs = {}
    for name in layers:
        parent_name, _, attr = name.rpartition(".")
        parent = modules[parent_name] if parent_name else model
        conv = modules[name]
        setattr(parent, attr, DynamicConv3d(conv, frames=shapes[name][0][2], **options).train(conv.training))
        macs[name] = conv_macs(conv, shapes[name][1])
    return macs


def dynamic_layers(model: nn.Module) -> dict[str, DynamicConv3d]:
    return {name: m for name, m in model.named_modules() if isinstance(m, DynamicConv3d)}


def efficiency_loss(model: nn.Module, macs: dict[str, float], correct: Tensor) -> Tensor:
    """Eq. 6 as reconstructed: per video, sum over dynamic layers of (the layer's share of the dynamic
    layers' multiply-adds) x (its gates' cost fraction), for correctly classified videos only; the
    batch mean. Call after a forward pass (the gates' weights of that pass are used)."""
    layers = dynamic_layers(model)
    total = sum(macs[name] for name in layers)
    per_video = sum(macs[name] / total * layer.cost_fraction() for name, layer in layers.items())
    return (per_video * correct.to(per_video.dtype)).mean()


def spent_gflops(model: nn.Module, macs: dict[str, float], static_gflops: float) -> Tensor:
    """Per video of the last inference call: GFLOPs of the static layers plus what each dynamic layer
    computed (its full multiply-adds x the fraction it spent; gates and cheap operations excluded)."""
    layers = dynamic_layers(model)
    dynamic = sum(macs[name] * layer.spent for name, layer in layers.items()) / 1e9
    return static_gflops + dynamic


def chosen_options(model: nn.Module) -> dict[str, Tensor]:
    """Per video of the last inference call, each dynamic layer's computed option: ``"<layer> R"`` and
    ``"<layer> r"`` (0 where the layer computed nothing)."""
    options = {}
    for name, layer in dynamic_layers(model).items():
        options[f"{name} R"], options[f"{name} r"] = layer.chosen[:, 0], layer.chosen[:, 1]
    return options


@contextmanager
def only_option(model: nn.Module, t: int, c: int) -> Iterator[nn.Module]:
    """Every dynamic layer computes its temporal option ``t`` and channel option ``c`` alone, weight 1,
    without running its gate."""
    layers = list(dynamic_layers(model).values())
    saved = [layer.forced for layer in layers]
    for layer in layers:
        layer.forced = (torch.eye(len(layer.temporal))[t : t + 1], torch.eye(len(layer.channel))[c : c + 1])
    try:
        yield model
    finally:
        for layer, forced in zip(layers, saved):
            layer.forced = forced


def full_option(model: nn.Module) -> AbstractContextManager[nn.Module]:
    """Every dynamic layer at its full option (R = 1, r = 1: the original layer), gates not run."""
    return only_option(model, 0, 0)
