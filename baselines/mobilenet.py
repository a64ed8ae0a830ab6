"""MobileNetV3 applied frame by frame: the image baseline of the MoViNet paper (Table 2).

torchvision's ``mobilenet_v3_small`` / ``mobilenet_v3_large`` (randomly initialised, nothing is
downloaded) runs on every frame of the clip; the per-frame logits are averaged over time.

The per-frame network is kept intact as ``backbone``, so its torchvision module names stay
addressable for GRW intermediate taps (forward hooks). Those modules see frames folded into the
batch: their outputs are ``[B * T, C, H, W]``, frame-major within each video. Good tap points are the
last block of each resolution stage and the final 1x1 conv (``tap_points`` on the model):

    stride   small                    large                    channels (small / large)
    1/4      backbone.features.1      backbone.features.3      16 / 24
    1/8      backbone.features.3      backbone.features.6      24 / 40
    1/16     backbone.features.8      backbone.features.12     48 / 112
    1/32     backbone.features.11     backbone.features.15     96 / 160
    1/32     backbone.features.12     backbone.features.16     576 / 960 (= num_features)

Head contract (timm style): ``forward_features(x)`` is the last feature map of every frame in the
video layout ``[B, num_features, T, h, w]``; ``forward_head(features)`` pools it over space, runs
torchvision's classifier (``backbone.classifier``: linear -> hard-swish -> dropout -> linear) on each
frame and averages the logits over time, as ``forward`` always did; with ``pre_logits=True`` it
returns the features pooled over space and time ``[B, num_features]``. ``reset_classifier(0)``
removes ``backbone.classifier`` (both linear layers), after which ``forward`` returns those pooled
features. :func:`baselines.from_torchvision_mobilenet` converts torchvision's ImageNet weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn
from torchvision import models


@dataclass(frozen=True)
class MobileNetV3Variant:
    constructor: Callable[..., models.MobileNetV3]  # torchvision's builder
    tap_points: tuple[str, ...]  # module names under ``backbone``, listed in the module docstring


VARIANTS: dict[str, MobileNetV3Variant] = {
    "small": MobileNetV3Variant(
        models.mobilenet_v3_small, ("features.1", "features.3", "features.8", "features.11", "features.12")
    ),
    "large": MobileNetV3Variant(
        models.mobilenet_v3_large, ("features.3", "features.6", "features.12", "features.15", "features.16")
    ),
}


def video_to_frames(x: Tensor) -> Tensor:
    """``[B, 3, T, H, W]`` video -> ``[B * T, 3, H, W]`` frames (frame-major within each video)."""
    if x.ndim != 5 or x.shape[1] != 3:
        raise ValueError(f"expected video of shape [B, 3, T, H, W], got {list(x.shape)}")
    return x.transpose(1, 2).flatten(0, 1)


class MobileNetV3Video(nn.Module):
    """A torchvision MobileNetV3 run on every frame; logits averaged over frames."""

    # Inputs are scaled to [0, 1], then normalised with the ImageNet statistics.
    input_mean = (0.485, 0.456, 0.406)
    input_std = (0.229, 0.224, 0.225)

    def __init__(self, backbone: models.MobileNetV3, tap_points: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_features: int = backbone.classifier[0].in_features
        self.num_classes: int = backbone.classifier[-1].out_features
        self._hidden_features: int = backbone.classifier[0].out_features
        self._dropout: float = backbone.classifier[2].p
        self.tap_points = tuple(f"backbone.{name}" for name in tap_points)

    def _frames(self, x: Tensor) -> Tensor:
        """The per-frame batch the backbone sees; subclasses hook in here (TSM sets its frame count)."""
        return video_to_frames(x)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace torchvision's classifier. ``0`` removes it (both linear layers: their parameters are
        gone); ``n > 0`` keeps the hidden linear layer if present and puts a new, randomly initialised
        last layer with ``n`` outputs (the whole classifier is new after a reset to 0)."""
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        reference = self.backbone.features[0][0].weight
        if num_classes == 0:
            self.backbone.classifier = nn.Identity()
        elif isinstance(self.backbone.classifier, nn.Sequential):
            self.backbone.classifier[3] = _init_linear(nn.Linear(self._hidden_features, num_classes))
        else:  # torchvision's layout, so that its state dict keys apply
            self.backbone.classifier = nn.Sequential(
                _init_linear(nn.Linear(self.num_features, self._hidden_features)),
                nn.Hardswish(inplace=True),
                nn.Dropout(p=self._dropout, inplace=True),
                _init_linear(nn.Linear(self._hidden_features, num_classes)),
            )
        self.backbone.classifier.to(device=reference.device, dtype=reference.dtype)
        self.num_classes = num_classes

    def forward_features(self, x: Tensor) -> Tensor:
        """``[B, 3, T, H, W]`` -> every frame's last feature map ``[B, num_features, T, h, w]``."""
        maps = self.backbone.features(self._frames(x))  # [B * T, K, h, w]
        return maps.unflatten(0, (x.shape[0], x.shape[2])).transpose(1, 2)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Features ``[B, K, T, h, w]`` -> per-frame classifier logits averaged over time; with
        ``pre_logits``, the features averaged over space and time ``[B, K]``."""
        per_frame = x.mean(dim=(3, 4)).transpose(1, 2)  # [B, T, K]
        if pre_logits:
            return per_frame.mean(dim=1)
        return self.backbone.classifier(per_frame).mean(dim=1)

    def frame_embeddings(self, x: Tensor) -> Tensor:
        """Per-frame features pooled over space: ``[B, 3, T, H, W]`` -> ``[B, T, num_features]``."""
        return self.forward_features(x).mean(dim=(3, 4)).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _init_linear(layer: nn.Linear) -> nn.Linear:
    """torchvision's initialisation of MobileNetV3's linear layers."""
    nn.init.normal_(layer.weight, 0, 0.01)
    nn.init.zeros_(layer.bias)
    return layer


def mobilenet_v3_backbone(variant: str, num_classes: int = 600, dropout: float = 0.2) -> models.MobileNetV3:
    """A randomly initialised torchvision MobileNetV3 whose last classifier layer has ``num_classes``."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown MobileNetV3 variant {variant!r}; expected one of {sorted(VARIANTS)}")
    # weights=None: nothing is downloaded, and torchvision builds the last layer for num_classes.
    return VARIANTS[variant].constructor(weights=None, num_classes=num_classes, dropout=dropout)


def mobilenet_v3(variant: str, num_classes: int = 600, dropout: float = 0.2) -> MobileNetV3Video:
    """Frame-wise MobileNetV3 (``variant`` "small" or "large") for ``[B, 3, T, H, W]`` video."""
    backbone = mobilenet_v3_backbone(variant, num_classes, dropout)
    return MobileNetV3Video(backbone, tap_points=VARIANTS[variant].tap_points)
