"""MoViNet A0-A5 (Kondratyuk et al., "MoViNets: Mobile Video Networks", CVPR 2021), base and stream.

The architectures are read from ``movinet_specs.json`` (a copy of the official A0-A5 configuration).
There is no A6: the official code defines no A6 architecture (its BLOCK_SPECS has a0-a5 and t0), and
its README describes MoViNet-A6 as an ensemble of A4 and A5 (sources in the JSON's ``_about``).
Each model is a stem, five blocks of inverted-bottleneck layers with squeeze-excitation, and a head::

    stem (1x3x3 conv, stride 1x2x2) -> blocks -> conv7: 1x1x1 conv to project_filters -> BN -> act
         -> average over space = frame embeddings [B, T, K]  -> average over time (pool8)
         -> classifier: dense9 (hidden_filters) -> swish -> dropout -> dense10 (num_classes)

The layouts are those of the public checkpoints (the official TensorFlow Kinetics-600 release, as
ported weight for weight by MoViNet-pytorch, ``Atze00/MoViNet-pytorch``), so that
:func:`baselines.from_movinet_pytorch` loads them without any change of numbers.

**Base** models (``stream=False``): 3D convs with TensorFlow 'same' padding in all three dims,
swish activations, sigmoid gates, squeeze-excitation pooled over the whole clip.

**Stream** models (``stream=True``) are causal and, like the released A0-A2 stream checkpoints, use
**(2+1)D convs**: every conv with a kernel ``k_t x k x k`` is a spatial ``1 x k x k`` conv -> BN ->
act followed, when ``k_t > 1``, by a temporal ``k_t x 1 x 1`` conv -> BN -> act that pads ``k_t - 1``
frames before the first frame and none after (causal). The activation is hard-swish, the SE gate the
TF hard sigmoid ``clamp(0.2 x + 0.5, 0, 1)`` (not ``nn.Hardsigmoid``, whose slope is 1/6), and the SE
squeezes the concatenation of the cumulative global average (CGAP: at frame t, the mean over frames
1..t) with frame t's own spatial mean, so its input is twice as wide and its hidden width is
``make_divisible(2 * (C // 4))``. The head pools with CGAP; the classifier activation is swish in
both kinds. Why (2+1)D and not causal 3D: the public stream weights were trained that way, so only
this layout reproduces them; it also shrinks the stream buffer of strided layers, which holds frames
after the spatial conv rather than before it. ``stream_conv="3d"`` gives a causal-3D variant (same
SE, gates and head, one ``k_t x k x k`` causal conv instead); it has no public checkpoint.

A stream model can be fed a video chunk by chunk (``forward_stream``) with a *stream buffer*, a plain
dict of tensors: each causal temporal conv keeps the last ``k_t - 1`` frames of its input from the
previous chunk and each CGAP its running sum and frame count, so its size does not grow with the video
and chunks of any size give the same outputs as the whole clip. All temporal strides are 1, so both
kinds keep one embedding per input frame. MoViNet-pytorch keeps the same buffers inside its modules
instead (``model.clean_activation_buffers()`` must start every new video, after which each call
returns the logits of CGAP over all frames fed so far). Neither it nor the official A0-A2 stream
configurations use a positional encoding; the A3-A5 stream models here (no public stream checkpoint
in PyTorch) add a sine encoding of the frame index to the SE's CGAP, as ``movinet_specs.json``
records for the official A3-A5 stream configuration (``stream_positional_encoding``).

Head contract (timm style): ``forward_features(x)`` is conv7's output ``[B, K, T, H', W']`` (after BN
and activation), ``forward_head(features, pre_logits=False)`` pools it over time and space and applies
the classifier, ``num_features`` is K (480, 600, 640, 744, 856, 992 for A0-A5) and
``reset_classifier(0)`` removes dense9 and dense10. ``frame_embeddings(x)`` is conv7's output
averaged over space, per frame: the per-frame embedding GRW-smoothing regularises.

Input: RGB in [0, 1] (``input_mean`` 0, ``input_std`` 1), shape [B, 3, T, H, W].
GRW intermediate taps: ``blocks.{i}`` (the output of block i, i = 0..4) and ``head.project`` (conv7).
"""

from __future__ import annotations

import functools
import json
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import StochasticDepth

State = dict[str, Tensor]
Triple = tuple[int, int, int]

__all__ = ["MoViNet", "MovinetSpec", "BlockSpec", "LayerSpec", "movinet", "load_spec", "variants"]

STREAM_CONVS = ("2plus1d", "3d")


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerSpec:
    expand_filters: int
    kernel: Triple
    stride: Triple


@dataclass(frozen=True)
class BlockSpec:
    base_filters: int
    layers: tuple[LayerSpec, ...]


@dataclass(frozen=True)
class MovinetSpec:
    stem_filters: int
    stem_kernel: Triple
    stem_stride: Triple
    blocks: tuple[BlockSpec, ...]
    project_filters: int
    hidden_filters: int
    stream_positional_encoding: bool

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MovinetSpec:
        """From the layout of one ``movinet_specs.json`` entry."""
        blocks = tuple(
            BlockSpec(
                base_filters=b["base_filters"],
                layers=tuple(
                    LayerSpec(l["expand_filters"], tuple(l["kernel"]), tuple(l["stride"])) for l in b["layers"]
                ),
            )
            for b in d["blocks"]
        )
        return cls(
            stem_filters=d["stem"]["filters"],
            stem_kernel=tuple(d["stem"]["kernel"]),
            stem_stride=tuple(d["stem"]["stride"]),
            blocks=blocks,
            project_filters=d["head"]["project_filters"],
            hidden_filters=d["head"]["hidden_filters"],
            stream_positional_encoding=d["stream_positional_encoding"],
        )


@functools.cache
def _spec_table() -> dict[str, Any]:
    text = resources.files("baselines").joinpath("movinet_specs.json").read_text()
    return json.loads(text)["models"]


def variants() -> list[str]:
    """The MoViNet variants defined in ``movinet_specs.json`` ("a0" .. "a5")."""
    return sorted(_spec_table())


def load_spec(variant: str) -> MovinetSpec:
    if variant not in _spec_table():
        raise ValueError(f"unknown MoViNet variant {variant!r}; expected one of {', '.join(variants())}")
    return MovinetSpec.from_dict(_spec_table()[variant])


# --------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor``, never more than 10% down (MobileNet convention)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'same' padding of one dim as (before, after); an odd total puts the extra one after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: Tensor, kernel: Triple, stride: Triple, causal: bool = False) -> Tensor:
    """F.pad a [B, C, T, H, W] tensor to TF 'same' size; with ``causal`` time is not padded here."""
    t, h, w = x.shape[2:]
    time_pad = (0, 0) if causal else same_padding(t, kernel[0], stride[0])
    return F.pad(x, (*same_padding(w, kernel[2], stride[2]), *same_padding(h, kernel[1], stride[1]), *time_pad))


def avg_pool_same(x: Tensor, kernel: Triple, stride: Triple) -> Tensor:
    """Average pooling with TF 'same' padding: padded positions are left out of each window's mean."""
    pool = functools.partial(F.avg_pool3d, kernel_size=kernel, stride=stride, divisor_override=1)
    window_sums = pool(_pad_same(x, kernel, stride))
    window_sizes = pool(_pad_same(torch.ones_like(x[:1, :1]), kernel, stride))
    return window_sums / window_sizes


def sine_position_encoding(positions: Tensor, channels: int) -> Tensor:
    """Fixed sine/cosine encoding of frame indices ``positions`` [T] -> [channels, T].

    Timescales are geometric from 1 to 10^4 as in Transformers; sines fill the first half of the
    channels and cosines the second (zero padded when ``channels`` is odd).
    """
    half = channels // 2
    inv_timescales = torch.exp(
        -math.log(1e4) * torch.arange(half, device=positions.device, dtype=torch.float32) / max(half - 1, 1)
    )
    angles = positions.float()[:, None] * inv_timescales[None, :]
    encoding = torch.cat([angles.sin(), angles.cos(), angles.new_zeros(len(positions), channels % 2)], dim=1)
    return encoding.t()


class HardSigmoid(nn.Module):
    """The TF hard sigmoid ``clamp(0.2 x + 0.5, 0, 1)``: the gate of the stream checkpoints' SE."""

    def forward(self, x: Tensor) -> Tensor:
        return (0.2 * x + 0.5).clamp(0.0, 1.0)


class Conv3dSame(nn.Conv3d):
    """Conv3d with TensorFlow 'same' padding, applied explicitly with F.pad.

    PyTorch's symmetric padding would shift stride-2 outputs and change some shapes (and FLOPs) with
    respect to the published models. With ``causal=True`` time is padded with all ``k_t - 1`` frames
    before the first frame and none after. In streaming those frames are the stream buffer: the last
    ``k_t - 1`` input frames of the previous chunk, zeros at the start of a video.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Triple,
        stride: Triple = (1, 1, 1),
        groups: int = 1,
        bias: bool = False,
        causal: bool = False,
    ) -> None:
        if causal and stride[0] != 1:
            raise ValueError(f"a causal conv needs temporal stride 1, got stride {stride}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=0, groups=groups, bias=bias)
        self.causal = causal
        self.state_key = "conv"  # set to the module's name by MoViNet

    def forward(self, x: Tensor, state: State | None = None) -> Tensor:
        if self.causal:
            x = self._prepend_buffer(x, state)
        x = _pad_same(x, self.kernel_size, self.stride, causal=self.causal)
        return self._conv_forward(x, self.weight, self.bias)

    def _prepend_buffer(self, x: Tensor, state: State | None) -> Tensor:
        frames = self.kernel_size[0] - 1
        if frames == 0:
            return x
        buffer = state.get(self.state_key) if state is not None else None
        if buffer is None:
            buffer = x.new_zeros(x.shape[0], x.shape[1], frames, *x.shape[3:])
        x = torch.cat([buffer, x], dim=2)
        if state is not None:  # a copy, not a view that would keep the whole chunk in memory
            state[self.state_key] = x[:, :, -frames:].clone()
        return x


class CumulativeAvgPool(nn.Module):
    """CGAP: at frame t, the mean over frames 1..t and all H, W of a [B, C, T, H, W] tensor.

    Returns the pooled tensor [B, C, T, 1, 1] and the 0-based index of each frame in the video [T].
    The running sum and frame count carry over between chunks in ``state``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.state_key = "cgap"  # set to the module's name by MoViNet

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, Tensor]:
        state = {} if state is None else state
        seen = state.get(f"{self.state_key}.count", torch.zeros((), dtype=torch.long, device=x.device))
        running_sum = state.get(f"{self.state_key}.sum", x.new_zeros(x.shape[:2]))

        frame_index = seen + torch.arange(x.shape[2], device=x.device)
        sums = running_sum[:, :, None] + x.mean(dim=(3, 4)).cumsum(dim=2)
        state[f"{self.state_key}.sum"] = sums[:, :, -1].clone()
        state[f"{self.state_key}.count"] = seen + x.shape[2]
        return (sums / (frame_index + 1)).unsqueeze(-1).unsqueeze(-1), frame_index


class ConvBNAct(nn.Module):
    """Conv3dSame (no bias) -> BatchNorm -> activation (none when ``activation_layer`` is None)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Triple,
        stride: Triple = (1, 1, 1),
        groups: int = 1,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm3d,
        activation_layer: Callable[[], nn.Module] | None = None,
        causal: bool = False,
    ) -> None:
        super().__init__()
        self.conv = Conv3dSame(in_channels, out_channels, kernel_size, stride, groups=groups, causal=causal)
        self.bn = norm_layer(out_channels)
        self.act = activation_layer() if activation_layer is not None else nn.Identity()

    def forward(self, x: Tensor, state: State | None = None) -> Tensor:
        return self.act(self.bn(self.conv(x, state)))


class Conv2Plus1dBNAct(ConvBNAct):
    """(2+1)D conv of the stream models: a spatial ``1 x k x k`` ConvBNAct (``conv``, ``bn``, ``act``),
    then, when ``k_t > 1``, a causal temporal ``k_t x 1 x 1`` ConvBNAct (``temporal``).

    Both parts have their own BN and activation. Batch norm acts per channel, so BatchNorm3d on
    [B, C, T, H, W] computes what MoViNet-pytorch's BatchNorm2d computes on frames folded into the batch.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Triple,
        stride: Triple = (1, 1, 1),
        groups: int = 1,
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm3d,
        activation_layer: Callable[[], nn.Module] | None = None,
    ) -> None:
        if stride[0] != 1:
            raise ValueError(f"a causal (2+1)D conv needs temporal stride 1, got stride {stride}")
        k_t, k_h, k_w = kernel_size
        super().__init__(
            in_channels, out_channels, (1, k_h, k_w), stride, groups, norm_layer, activation_layer
        )
        self.temporal = (
            ConvBNAct(out_channels, out_channels, (k_t, 1, 1), (1, 1, 1), groups, norm_layer, activation_layer, True)
            if k_t > 1
            else None
        )

    def forward(self, x: Tensor, state: State | None = None) -> Tensor:
        x = super().forward(x)
        return self.temporal(x, state) if self.temporal is not None else x


def _spatiotemporal_conv(
    kind: str,
    in_channels: int,
    out_channels: int,
    kernel_size: Triple,
    stride: Triple,
    groups: int,
    norm_layer: Callable[[int], nn.Module],
    activation_layer: Callable[[], nn.Module],
) -> ConvBNAct:
    """The stem / depthwise conv of each kind: "base" 3D 'same', "2plus1d" or "3d" (causal 3D)."""
    if kind == "2plus1d":
        return Conv2Plus1dBNAct(in_channels, out_channels, kernel_size, stride, groups, norm_layer, activation_layer)
    causal = kind == "3d"
    return ConvBNAct(in_channels, out_channels, kernel_size, stride, groups, norm_layer, activation_layer, causal)


class SqueezeExcite(nn.Module):
    """Squeeze-excitation with 1x1x1 convs (with bias) and a gating activation, on the depthwise output.

    Base: one gate per clip from the mean over T, H, W. Causal (the official stream models' '2plus3d'
    type): at frame t the squeeze input is CGAP up to t concatenated with frame t's spatial mean, so
    the input width doubles and there is one gate per frame. The hidden width is ``C // 4`` times that
    factor (1 or 2), rounded to a multiple of 8, as in the public checkpoints. ``positional_encoding``
    adds a sine encoding of t to the CGAP part, which steadies the noisy early-frame estimate (paper,
    3.2.1); the public A0-A2 stream models do not use it.
    """

    def __init__(
        self,
        channels: int,
        activation_layer: Callable[[], nn.Module],
        gate_layer: Callable[[], nn.Module],
        causal: bool = False,
        positional_encoding: bool = False,
    ) -> None:
        super().__init__()
        if positional_encoding and not causal:
            raise ValueError("positional_encoding needs causal=True (it encodes the CGAP frame index)")
        self.causal = causal
        self.positional_encoding = positional_encoding
        self.cgap = CumulativeAvgPool() if causal else None
        width_factor = 2 if causal else 1
        hidden = make_divisible(channels // 4 * width_factor)
        self.reduce = nn.Conv3d(width_factor * channels, hidden, 1)
        self.act = activation_layer()
        self.expand = nn.Conv3d(hidden, channels, 1)
        self.gate = gate_layer()

    def squeeze(self, x: Tensor, state: State | None = None) -> Tensor:
        if not self.causal:
            return x.mean(dim=(2, 3, 4), keepdim=True)
        cumulative, frame_index = self.cgap(x, state)
        if self.positional_encoding:
            cumulative = cumulative + sine_position_encoding(frame_index, x.shape[1])[None, :, :, None, None]
        return torch.cat([cumulative, x.mean(dim=(3, 4), keepdim=True)], dim=1)

    def forward(self, x: Tensor, state: State | None = None) -> Tensor:
        scale = self.gate(self.expand(self.act(self.reduce(self.squeeze(x, state)))))
        return x * scale


class Shortcut(nn.Module):
    """Residual path when the layer changes shape: 'same' average pool 1x3x3 if it downsamples, then
    a 1x1x1 conv + BN."""

    def __init__(self, in_channels: int, out_channels: int, stride: Triple, norm_layer: Callable[[int], nn.Module]):
        super().__init__()
        self.pool_kernel: Triple = (1, 3, 3) if stride != (1, 1, 1) else (1, 1, 1)
        self.pool_stride = stride
        self.project = ConvBNAct(in_channels, out_channels, (1, 1, 1), norm_layer=norm_layer)

    def forward(self, x: Tensor) -> Tensor:
        if self.pool_kernel != (1, 1, 1):
            x = avg_pool_same(x, self.pool_kernel, self.pool_stride)
        return self.project(x)


class MovinetLayer(nn.Module):
    """Inverted bottleneck: 1x1x1 expand -> depthwise conv -> squeeze-excitation -> 1x1x1 project.

    The residual branch is scaled by a learnable scalar initialised to 0 (ReZero, as in the official
    code), so every layer starts as its shortcut; stochastic depth drops the branch per sample.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        spec: LayerSpec,
        kind: str,
        norm_layer: Callable[[int], nn.Module],
        activation_layer: Callable[[], nn.Module],
        gate_layer: Callable[[], nn.Module],
        positional_encoding: bool = False,
        stochastic_depth_prob: float = 0.0,
    ) -> None:
        super().__init__()
        width = spec.expand_filters
        self.expand = ConvBNAct(in_channels, width, (1, 1, 1), norm_layer=norm_layer, activation_layer=activation_layer)
        self.feature = _spatiotemporal_conv(
            kind, width, width, spec.kernel, spec.stride, width, norm_layer, activation_layer
        )
        self.se = SqueezeExcite(width, activation_layer, gate_layer, kind != "base", positional_encoding)
        self.project = ConvBNAct(width, out_channels, (1, 1, 1), norm_layer=norm_layer)
        self.rezero = nn.Parameter(torch.zeros(()))
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob, mode="row")
        if in_channels == out_channels and spec.stride == (1, 1, 1):
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = Shortcut(in_channels, out_channels, spec.stride, norm_layer)

    def forward(self, x: Tensor, state: State | None = None) -> Tensor:
        branch = self.feature(self.expand(x), state)
        branch = self.project(self.se(branch, state))
        return self.shortcut(x) + self.stochastic_depth(self.rezero * branch)


def _classifier(in_features: int, hidden: int, num_classes: int, dropout: float) -> nn.Module:
    """dense9 -> swish -> dropout -> dense10, or nothing for ``num_classes == 0``."""
    if num_classes == 0:
        return nn.Identity()
    return nn.Sequential(
        OrderedDict(
            hidden=nn.Linear(in_features, hidden),
            act=nn.SiLU(),
            dropout=nn.Dropout(dropout),
            fc=nn.Linear(hidden, num_classes),
        )
    )


class Head(nn.Module):
    """conv7 (``project``: 1x1x1 conv to project_filters -> BN -> act, per frame), ``cgap`` (the time
    pooling of streaming) and ``classifier`` (see :func:`_classifier`)."""

    def __init__(
        self,
        in_channels: int,
        project_filters: int,
        hidden_filters: int,
        num_classes: int,
        dropout: float,
        norm_layer: Callable[[int], nn.Module],
        activation_layer: Callable[[], nn.Module],
    ) -> None:
        super().__init__()
        self.project = ConvBNAct(
            in_channels, project_filters, (1, 1, 1), norm_layer=norm_layer, activation_layer=activation_layer
        )
        self.cgap = CumulativeAvgPool()
        self.classifier = _classifier(project_filters, hidden_filters, num_classes, dropout)


# --------------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------------


class MoViNet(nn.Module):
    """MoViNet base (``stream=False``) or stream (causal, ``stream=True``) model; see the module doc.

    ``num_classes=0`` builds the model without classifier (``forward`` returns the pooled features).
    ``stream_conv`` ("2plus1d", the public stream models, or "3d", causal 3D) applies to stream models.
    """

    input_mean = (0.0, 0.0, 0.0)
    input_std = (1.0, 1.0, 1.0)

    def __init__(
        self,
        spec: MovinetSpec,
        stream: bool = False,
        num_classes: int = 600,
        dropout: float = 0.2,
        stochastic_depth: float = 0.0,
        bn_eps: float = 1e-3,
        bn_momentum: float = 0.01,
        stream_conv: str = "2plus1d",
    ) -> None:
        super().__init__()
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        if not 0.0 <= dropout < 1.0 or not 0.0 <= stochastic_depth < 1.0:
            raise ValueError(f"dropout and stochastic_depth must be in [0, 1), got {dropout}, {stochastic_depth}")
        if stream_conv not in STREAM_CONVS:
            raise ValueError(f"stream_conv must be one of {STREAM_CONVS}, got {stream_conv!r}")
        self.stream = stream
        self.stream_conv = stream_conv if stream else None
        kind = stream_conv if stream else "base"
        self.num_features = spec.project_filters
        self.num_classes = num_classes
        self._hidden_filters = spec.hidden_filters
        self._dropout = dropout
        norm_layer = functools.partial(nn.BatchNorm3d, eps=bn_eps, momentum=bn_momentum)
        activation_layer = nn.Hardswish if stream else nn.SiLU
        gate_layer = HardSigmoid if stream else nn.Sigmoid

        self.stem = _spatiotemporal_conv(
            kind, 3, spec.stem_filters, spec.stem_kernel, spec.stem_stride, 1, norm_layer, activation_layer
        )
        # Stochastic depth grows linearly with depth, reaching ``stochastic_depth`` at the last layer.
        num_layers = sum(len(block.layers) for block in spec.blocks)
        layer_index = 0
        in_channels = spec.stem_filters
        self.blocks = nn.ModuleList()
        for block in spec.blocks:
            layers = nn.ModuleList()
            for layer in block.layers:
                layer_index += 1
                layers.append(
                    MovinetLayer(
                        in_channels,
                        block.base_filters,
                        layer,
                        kind,
                        norm_layer,
                        activation_layer,
                        gate_layer,
                        positional_encoding=stream and spec.stream_positional_encoding,
                        stochastic_depth_prob=stochastic_depth * layer_index / num_layers,
                    )
                )
                in_channels = block.base_filters
            self.blocks.append(layers)
        self.head = Head(
            in_channels, spec.project_filters, spec.hidden_filters, num_classes, dropout, norm_layer, activation_layer
        )

        # Stream-buffer entries are keyed by module name, so a state is a plain, saveable dict.
        for name, module in self.named_modules():
            if isinstance(module, (Conv3dSame, CumulativeAvgPool)):
                module.state_key = name
        self._init_weights(self)

    @staticmethod
    def _init_weights(root: nn.Module) -> None:
        for m in root.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    # ---------------------------------------------------------------------------- head contract

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier. ``0`` removes it (dense9 and dense10: their parameters are gone and
        ``forward`` returns the pooled features); ``n > 0`` keeps dense9 if present and puts a new,
        randomly initialised dense10 with ``n`` outputs (both new after a reset to 0)."""
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        reference = self.head.project.conv.weight
        current = self.head.classifier
        if num_classes > 0 and isinstance(current, nn.Sequential):
            current.fc = nn.Linear(current.fc.in_features, num_classes)
            new: nn.Module = current.fc
        else:
            new = _classifier(self.num_features, self._hidden_filters, num_classes, self._dropout)
            self.head.classifier = new
        self._init_weights(new)
        new.to(device=reference.device, dtype=reference.dtype)
        self.num_classes = num_classes

    def _features(self, x: Tensor, state: State | None) -> Tensor:
        if x.dim() != 5 or x.shape[1] != 3 or x.shape[2] < 1:
            raise ValueError(f"expected video [B, 3, T, H, W] with T >= 1, got shape {tuple(x.shape)}")
        x = self.stem(x, state)
        for block in self.blocks:
            for layer in block:
                x = layer(x, state)
        return self.head.project(x)

    def forward_features(self, x: Tensor) -> Tensor:
        """conv7's output [B, num_features, T, H', W'] (after BN and activation) for video x [B, 3, T, H, W]."""
        return self._features(x, state=None)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Features [B, K, T, H', W'] -> average over time and space [B, K] -> classifier (unless
        ``pre_logits``). For a stream model this average is CGAP at the last frame."""
        pooled = x.mean(dim=(2, 3, 4))
        return pooled if pre_logits else self.head.classifier(pooled)

    def forward(self, x: Tensor) -> Tensor:
        """Logits [B, num_classes] for video x [B, 3, T, H, W] in [0, 1]."""
        return self.forward_head(self.forward_features(x))

    def frame_embeddings(self, x: Tensor) -> Tensor:
        """conv7's output averaged over space, per frame: [B, T, num_features].

        Causal for stream models (frame t sees frames <= t only).
        """
        return self.forward_features(x).mean(dim=(3, 4)).transpose(1, 2)

    # -------------------------------------------------------------------------------- streaming

    def stream_frame_embeddings(self, chunk: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Frame embeddings [B, t, num_features] of the next ``t`` frames and the updated state.

        ``state`` is None at the start of a video; the one passed in is not modified.
        """
        embeddings, _, state = self._stream_step(chunk, state)
        return embeddings, state

    def forward_stream(self, chunk: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Logits after all frames seen so far (this chunk included) and the updated state."""
        _, pooled, state = self._stream_step(chunk, state)
        return self.head.classifier(pooled), state

    def _stream_step(self, chunk: Tensor, state: State | None) -> tuple[Tensor, Tensor, State]:
        if not self.stream:
            raise RuntimeError("streaming needs a stream model: movinet(variant, stream=True)")
        state = dict(state) if state is not None else {}
        features = self._features(chunk, state)
        pooled, _ = self.head.cgap(features, state)
        return features.mean(dim=(3, 4)).transpose(1, 2), pooled[:, :, -1, 0, 0], state


def movinet(
    variant: str,
    stream: bool = False,
    num_classes: int = 600,
    dropout: float = 0.2,
    stochastic_depth: float = 0.0,
    **kwargs: Any,
) -> MoViNet:
    """MoViNet-``variant`` ("a0" .. "a5"), base or stream (causal, (2+1)D).

    Extra options: ``bn_eps`` (1e-3), ``bn_momentum`` (0.01, PyTorch convention) and ``stream_conv``
    ("2plus1d", or "3d" for the causal-3D variant).
    """
    spec = load_spec(variant)
    return MoViNet(
        spec, stream=stream, num_classes=num_classes, dropout=dropout, stochastic_depth=stochastic_depth, **kwargs
    )
