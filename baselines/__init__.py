"""Model zoo for the implemented Table 1 families, behind one registry.

    >>> import baselines
    >>> model = baselines.build("x3d_m", num_classes=600, dropout=0.5)

Every model takes float video ``[B, 3, T, H, W]`` and returns logits ``[B, num_classes]``. It also has
``frame_embeddings(x) -> [B, T, num_features]`` (per-frame features pooled over space, before any
temporal pooling), ``num_features``, and ``input_mean`` / ``input_std``: the normalisation to apply
to frames scaled to [0, 1].

Head contract (as in timm), on every model:

* ``forward_features(x)``: the last feature map, video layout ``[B, num_features, T, h, w]``;
* ``forward_head(features, pre_logits=False)``: pooling and classifier (``pre_logits``: the
  features pooled over time and space, ``[B, num_features]``); ``forward(x)`` is the two in a row;
* ``reset_classifier(num_classes)``: a new classifier; ``0`` removes everything after the pooling
  (MoViNet dense9 + dense10, X3D lin5 + fc, MobileNetV3 both linear layers), parameters included,
  so that a model with another head (``grw.GrwModel``) carries no dead weights.

MViT-B (``mvit_b_16x4``, ``mvit_b_32x3``) deviates, as :mod:`baselines.mvit` documents: a fixed input
size (16 or 32 x 224 x 224), ``forward_features`` returns tokens ``[B, 1 + N, C]`` (class token first)
and ``frame_embeddings`` has T/2 steps (one per temporal token).

Public weights: :mod:`baselines.weights` catalogues the published checkpoints (``CHECKPOINTS``), and
the converters map them onto the zoo's layout, strictly (every tensor used, every tensor filled):
:func:`from_movinet_pytorch`, :func:`from_pytorchvideo`, :func:`from_torchvision_mobilenet`. Record
:data:`CONVERTER_VERSION` with converted checkpoints.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial
from typing import Any

from torch import nn

from baselines import mobilenet, mvit, tsm, x3d
from baselines.convert import (
    CONVERTER_VERSION,
    ConversionError,
    from_movinet_pytorch,
    from_pytorchvideo,
    from_torchvision_mobilenet,
)
from baselines.weights import CHECKPOINTS, Checkpoint

__all__ = [
    "CHECKPOINTS",
    "CONVERTER_VERSION",
    "Checkpoint",
    "ConversionError",
    "MODELS",
    "available",
    "build",
    "from_movinet_pytorch",
    "from_pytorchvideo",
    "from_torchvision_mobilenet",
]


def _movinet(variant: str, stream: bool = False, **options: Any) -> nn.Module:
    """MoViNet base or stream model; :mod:`baselines.movinet` is imported on first use."""
    from baselines.movinet import MoViNet, movinet

    # `movinet` forwards its extra options to the MoViNet constructor: check against that.
    name = f"movinet_{variant}_stream" if stream else f"movinet_{variant}"
    _check_options(name, partial(MoViNet, None, stream=stream), options)
    return movinet(variant, stream=stream, **options)


MOVINET_VARIANTS = ("a0", "a1", "a2", "a3", "a4", "a5")

# name -> builder taking (num_classes=..., **options)
MODELS: dict[str, Callable[..., nn.Module]] = {
    **{f"movinet_{v}": partial(_movinet, v) for v in MOVINET_VARIANTS},
    **{f"movinet_{v}_stream": partial(_movinet, v, stream=True) for v in MOVINET_VARIANTS},
    "mobilenet_v3_small": partial(mobilenet.mobilenet_v3, "small"),
    "mobilenet_v3_large": partial(mobilenet.mobilenet_v3, "large"),
    "mobilenet_v3_small_tsm": partial(tsm.mobilenet_v3_tsm, "small"),
    "mobilenet_v3_large_tsm": partial(tsm.mobilenet_v3_tsm, "large"),
    "x3d_xs": partial(x3d.x3d, "xs"),
    "x3d_s": partial(x3d.x3d, "s"),
    "x3d_m": partial(x3d.x3d, "m"),
    "x3d_l": partial(x3d.x3d, "l"),
    "mvit_b_16x4": partial(mvit.mvit_b, "b_16x4"),
    "mvit_b_32x3": partial(mvit.mvit_b, "b_32x3"),
}


def available() -> list[str]:
    """Names accepted by :func:`build`."""
    return list(MODELS)


def _check_options(name: str, builder: Callable[..., nn.Module], options: dict[str, Any]) -> None:
    """Raise ValueError for options ``builder`` does not take; arguments bound by a partial are fixed."""
    bound = builder.keywords if isinstance(builder, partial) else {}
    if set(options) & set(bound):
        raise ValueError(f"option(s) {sorted(set(options) & set(bound))} of model {name!r} are fixed by its name")
    parameters = inspect.signature(builder).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return  # the builder takes extra options and checks them itself
    accepted = [n for n, p in parameters.items() if p.default is not inspect.Parameter.empty and n not in bound]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for model {name!r}; accepted options: {accepted}")


def build(name: str, num_classes: int = 600, **options: Any) -> nn.Module:
    """Build the model registered as ``name`` (see :func:`available`), randomly initialised.

    ``options`` are the builder's keyword arguments, e.g. ``dropout`` (all models),
    ``stochastic_depth`` (X3D, MoViNet, MViT), ``causal`` (TSM models).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(available())}")
    _check_options(name, MODELS[name], options)
    return MODELS[name](num_classes=num_classes, **options)
