"""X3D (Feichtenhofer, "X3D: Expanding Architectures for Efficient Video Recognition", CVPR 2020).

XS, S and M share one network (they differ in the input: frames x crop); L is deeper. The network:

* stem: 1x3x3 conv (spatial stride 2) to 24 channels, depthwise 5x1x1 temporal conv, BN, ReLU;
* res2..res5: bottleneck blocks 1x1x1 -> depthwise 3x3x3 (spatial stride 2 in each stage's first
  block) -> SE (every other block) -> Swish -> 1x1x1, with an identity or projection shortcut and a
  ReLU after the sum; stage widths 24, 48, 96, 192, bottleneck width 2.25x. The projection shortcut
  is a strided 1x1x1 conv, followed by BN only where the width changes (res3..res5): res2 keeps 24
  channels and its shortcut has no BN, as in pytorchvideo's ``create_x3d`` and its checkpoints;
* head: ``conv5`` 1x1x1 to 432 + BN + ReLU, global average pool, then the ``classifier``:
  ``lin5`` (X3D's 1x1x1 conv to 2048, no bias, no BN) + ReLU, dropout, ``fc``.

Temporal stride is 1 everywhere, so every layer keeps the T input frames, and the head pools
adaptively: one model runs at any frames x crop. Spatial padding is symmetric (k // 2), as in the
public PyTorch implementations; at 182 px the maps shrink 91, 46, 23, 12, 6.

All layers keep the video layout ``[B, C, T, H, W]``. Good GRW tap points (``tap_points``): the stage
outputs ``res2`` .. ``res5`` (24, 48, 96, 192 channels at 1/4 .. 1/32 of the crop) and ``conv5``
(432 channels, what :meth:`X3D.frame_embeddings` pools).

Head contract (timm style): ``forward_features`` is ``conv5``'s output, ``forward_head`` pools it over
time and space and applies the classifier, ``num_features`` is 432 and ``reset_classifier(0)`` removes
``lin5`` and ``fc``. The layers are those of pytorchvideo's ``create_x3d``, whose Kinetics-400
checkpoints :func:`baselines.from_pytorchvideo` converts.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from functools import cache

import torch
from torch import Tensor, nn
from torchvision.ops import Conv3dNormActivation, StochasticDepth

from baselines.slimmable import conv_channels, make_slimmable


@dataclass(frozen=True)
class X3DConfig:
    depths: tuple[int, int, int, int]  # blocks in res2..res5
    num_frames: int  # standard clip: frames ...
    sampling_stride: int  # ... taken every this many video frames
    train_crop: int  # training crop (the published per-clip GFLOPs are counted at this size)
    test_crop: int  # crop of the published Kinetics numbers
    stem_width: int = 24
    stage_widths: tuple[int, int, int, int] = (24, 48, 96, 192)
    bottleneck_ratio: float = 2.25
    se_ratio: float = 1 / 16
    head_width: int = 2048


X3D_CONFIGS: dict[str, X3DConfig] = {
    "xs": X3DConfig(depths=(3, 5, 11, 7), num_frames=4, sampling_stride=12, train_crop=160, test_crop=182),
    "s": X3DConfig(depths=(3, 5, 11, 7), num_frames=13, sampling_stride=6, train_crop=160, test_crop=182),
    "m": X3DConfig(depths=(3, 5, 11, 7), num_frames=16, sampling_stride=5, train_crop=224, test_crop=256),
    "l": X3DConfig(depths=(5, 10, 25, 15), num_frames=16, sampling_stride=5, train_crop=312, test_crop=356),
}


def _round_width(width: float, divisor: int = 8) -> int:
    """Nearest multiple of ``divisor`` (at least ``divisor``), never more than 10% below ``width``."""
    rounded = max(divisor, int(width + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * width else rounded


class SqueezeExcitation3d(nn.Module):
    """Channel gating from the clip's global average (X3D's SE: ReLU inside, sigmoid gate)."""

    def __init__(self, channels: int, squeeze_channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv3d(channels, squeeze_channels, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv3d(squeeze_channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        scale = x.mean(dim=(2, 3, 4), keepdim=True)
        return x * torch.sigmoid(self.fc2(self.relu(self.fc1(scale))))


class X3DBlock(nn.Module):
    """Bottleneck block: 1x1x1 -> depthwise 3x3x3 -> [SE] -> Swish -> 1x1x1, plus shortcut, then ReLU."""

    def __init__(
        self, in_channels: int, inner_channels: int, out_channels: int, spatial_stride: int,
        use_se: bool, se_ratio: float, stochastic_depth: float,
    ) -> None:
        super().__init__()
        stride = (1, spatial_stride, spatial_stride)
        self.conv_a = Conv3dNormActivation(in_channels, inner_channels, kernel_size=1)
        self.conv_b = Conv3dNormActivation(
            inner_channels, inner_channels, kernel_size=3, stride=stride, groups=inner_channels,
            activation_layer=None,
        )
        self.se = (
            SqueezeExcitation3d(inner_channels, _round_width(inner_channels * se_ratio)) if use_se else nn.Identity()
        )
        self.swish = nn.SiLU(inplace=True)
        self.conv_c = Conv3dNormActivation(inner_channels, out_channels, kernel_size=1, activation_layer=None)
        if in_channels == out_channels and spatial_stride == 1:
            self.shortcut: nn.Module = nn.Identity()
        else:  # BN only when the width changes (pytorchvideo's layout)
            self.shortcut = Conv3dNormActivation(
                in_channels, out_channels, kernel_size=1, stride=stride, bias=False, activation_layer=None,
                norm_layer=nn.BatchNorm3d if in_channels != out_channels else None,
            )
        self.stochastic_depth = StochasticDepth(stochastic_depth, mode="row")
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        residual = self.conv_c(self.swish(self.se(self.conv_b(self.conv_a(x)))))
        return self.relu(self.shortcut(x) + self.stochastic_depth(residual))


def _stem(width: int) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            conv_xy=nn.Conv3d(3, width, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False),
            conv_t=nn.Conv3d(width, width, (5, 1, 1), padding=(2, 0, 0), groups=width, bias=False),
            bn=nn.BatchNorm3d(width),
            relu=nn.ReLU(inplace=True),
        )
    )


def _stage(config: X3DConfig, in_channels: int, width: int, drop_rates: list[float]) -> nn.Sequential:
    """One res stage: spatial stride 2 in the first block, SE in blocks 0, 2, 4, ..."""
    inner = round(width * config.bottleneck_ratio)
    return nn.Sequential(
        *(
            X3DBlock(
                in_channels if i == 0 else width, inner, width, spatial_stride=2 if i == 0 else 1,
                use_se=i % 2 == 0, se_ratio=config.se_ratio, stochastic_depth=rate,
            )
            for i, rate in enumerate(drop_rates)
        )
    )


class X3D(nn.Module):
    """X3D for ``[B, 3, T, H, W]`` video at any T, H, W; returns ``[B, num_classes]`` logits."""

    # Inputs are scaled to [0, 1], then normalised with the Kinetics statistics.
    input_mean = (0.45, 0.45, 0.45)
    input_std = (0.225, 0.225, 0.225)
    tap_points = ("res2", "res3", "res4", "res5", "conv5")

    def __init__(
        self, config: X3DConfig, num_classes: int = 600, dropout: float = 0.5, stochastic_depth: float = 0.0
    ) -> None:
        super().__init__()
        self.config = config
        self.stem = _stem(config.stem_width)
        # Stochastic depth grows linearly with the block index, from 0 to `stochastic_depth`.
        drop_rates = [stochastic_depth * i / max(sum(config.depths) - 1, 1) for i in range(sum(config.depths))]
        in_channels, first_block = config.stem_width, 0
        for stage, (depth, width) in enumerate(zip(config.depths, config.stage_widths), start=2):
            stage_rates = drop_rates[first_block : first_block + depth]
            self.add_module(f"res{stage}", _stage(config, in_channels, width, stage_rates))
            in_channels, first_block = width, first_block + depth
        self.num_features = round(in_channels * config.bottleneck_ratio)  # 432
        self.conv5 = Conv3dNormActivation(in_channels, self.num_features, kernel_size=1)
        self.num_classes = num_classes
        self._dropout = dropout
        self.classifier = self._classifier(num_classes)
        self._init_weights(self)

    def _classifier(self, num_classes: int) -> nn.Module:
        """lin5 -> ReLU -> dropout -> fc, or nothing for ``num_classes == 0``."""
        if num_classes == 0:
            return nn.Identity()
        return nn.Sequential(
            OrderedDict(
                lin5=nn.Linear(self.num_features, self.config.head_width, bias=False),
                relu=nn.ReLU(inplace=True),
                dropout=nn.Dropout(self._dropout),
                fc=nn.Linear(self.config.head_width, num_classes),
            )
        )

    @staticmethod
    def _init_weights(root: nn.Module) -> None:
        for module in root.modules():
            if isinstance(module, (nn.Conv3d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, X3DBlock):  # each block starts as its shortcut
                nn.init.zeros_(module.conv_c[1].weight)
        if isinstance(root, X3D) and isinstance(root.classifier, nn.Sequential):
            nn.init.normal_(root.classifier.fc.weight, std=0.01)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier. ``0`` removes it (lin5 and fc: their parameters are gone and ``forward``
        returns the pooled features); ``n > 0`` keeps lin5 if present and puts a new, randomly
        initialised fc with ``n`` outputs (both new after a reset to 0)."""
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        reference = self.conv5[0].weight
        if num_classes > 0 and isinstance(self.classifier, nn.Sequential):
            self.classifier.fc = nn.Linear(self.config.head_width, num_classes)
        else:
            self.classifier = self._classifier(num_classes)
            self._init_weights(self.classifier)
        if num_classes > 0:
            nn.init.normal_(self.classifier.fc.weight, std=0.01)
            nn.init.zeros_(self.classifier.fc.bias)
        self.classifier.to(device=reference.device, dtype=reference.dtype)
        self.num_classes = num_classes

    def forward_features(self, x: Tensor) -> Tensor:
        """``[B, 3, T, H, W]`` -> ``conv5`` output ``[B, 432, T, H/32, W/32]`` (rounded up)."""
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"expected video of shape [B, 3, T, H, W], got {list(x.shape)}")
        x = self.stem(x)
        for stage in (self.res2, self.res3, self.res4, self.res5):
            x = stage(x)
        return self.conv5(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """``conv5`` features ``[B, 432, T, h, w]`` -> global average ``[B, 432]`` -> classifier (unless
        ``pre_logits``)."""
        pooled = x.mean(dim=(2, 3, 4))
        return pooled if pre_logits else self.classifier(pooled)

    def frame_embeddings(self, x: Tensor) -> Tensor:
        """Per-frame ``conv5`` features pooled over space: ``[B, 3, T, H, W]`` -> ``[B, T, 432]``."""
        return self.forward_features(x).mean(dim=(3, 4)).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def x3d(variant: str, num_classes: int = 600, dropout: float = 0.5, stochastic_depth: float = 0.0,
        adaptive: bool = False) -> X3D:
    """X3D-XS, -S, -M or -L (``variant`` "xs", "s", "m", "l"), randomly initialised. ``adaptive``: with
    slimmable layers (A3D, ``baselines.slimmable``): the same weights and, at full width, the same
    outputs; :func:`width_channels` gives the layers' active channels at a narrower width."""
    if variant not in X3D_CONFIGS:
        raise ValueError(f"unknown X3D variant {variant!r}; expected one of {list(X3D_CONFIGS)}")
    model = X3D(X3D_CONFIGS[variant], num_classes, dropout, stochastic_depth)
    return make_slimmable(model) if adaptive else model


def scaled_config(config: X3DConfig, width: float) -> X3DConfig:
    """``config`` with the stem and stage widths times ``width`` (rounded; the bottleneck, SE and
    ``conv5`` widths follow from them as in any X3D; the classifier's 2048 stays)."""
    if not 0 < width <= 1:
        raise ValueError(f"width must be in (0, 1], got {width}")
    return replace(config, stem_width=max(1, round(config.stem_width * width)),
                   stage_widths=tuple(max(1, round(w * width)) for w in config.stage_widths))


@cache
def width_channels(config: X3DConfig, width: float) -> dict[str, int]:
    """Output channels of every convolution of an X3D of ``config`` built at ``width``, by module name:
    what each slimmable layer of the full network keeps in that configuration."""
    with torch.device("meta"):
        return conv_channels(X3D(scaled_config(config, width), num_classes=1))


def x3d_of(model: nn.Module) -> X3D:
    """The X3D inside ``model`` (itself, DDP's ``module`` or a GRW wrapper's backbone)."""
    found = [m for m in model.modules() if isinstance(m, X3D)]
    if len(found) != 1:
        raise ValueError(f"expected exactly one X3D in the model, found {len(found)}")
    return found[0]
