"""State-dict converters from the public implementations' layouts to the zoo's.

Each source layout is a table of rules (:class:`Rule`): a regular expression that a foreign key must
match in full, the zoo key it becomes (with ``\\1``-style groups), and how the tensor changes shape.
A conversion is strict both ways: every foreign tensor is used (or dropped by a rule that says so),
every tensor of the target model is filled exactly once, and shapes must agree; anything else raises
:class:`ConversionError` naming the keys.

* :func:`from_movinet_pytorch`: ``Atze00/MoViNet-pytorch`` (ports of the official TF Kinetics-600
  checkpoints), base models A0-A5 (3D convs) and stream models (their 2D/(2+1)D convs get a temporal
  axis; the 1x1 classifier convs become linear layers; ``alpha`` is the ReZero scalar ``rezero``).
* :func:`from_pytorchvideo`: ``pytorchvideo.models.x3d.create_x3d`` (the ``X3D_*.pyth`` Kinetics-400
  checkpoints store it under ``"model_state"``). pytorchvideo's default head ends in a softmax; the
  zoo's X3D returns logits, so ``softmax(ours) == theirs``.
* :func:`from_torchvision_mobilenet`: torchvision's ``mobilenet_v3_small/large`` (ImageNet) into
  ``mobilenet_v3_*`` and ``*_tsm``, backbone only by default.

Checkpoints written from converted weights should record :data:`CONVERTER_VERSION`; it changes
whenever a rule changes what a foreign tensor becomes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = [
    "CONVERTER_VERSION",
    "ConversionError",
    "Rule",
    "convert_state_dict",
    "from_movinet_pytorch",
    "from_pytorchvideo",
    "from_torchvision_mobilenet",
]

CONVERTER_VERSION = 1

# How a foreign tensor becomes ours (applied before the shape check). They change conv kernels only:
# other tensors (biases, batch-norm terms) pass unchanged.
RESHAPES: dict[str, Callable[[Tensor], Tensor]] = {
    "same": lambda t: t,
    "conv2d_spatial": lambda t: t.unsqueeze(2) if t.dim() == 4 else t,  # [O, I, kh, kw] -> [O, I, 1, kh, kw]
    "conv2d_temporal": lambda t: t.unsqueeze(-1) if t.dim() == 4 else t,  # [O, I, kt, 1] -> [O, I, kt, 1, 1]
    # a 1x1 (x1) conv on pooled features is a linear layer: [O, I, 1, 1(, 1)] -> [O, I]
    "conv_to_linear": lambda t: t.flatten(1) if t.dim() > 2 and all(s == 1 for s in t.shape[2:]) else t,
}


class ConversionError(ValueError):
    """A foreign state dict does not map one to one onto the target model."""


@dataclass(frozen=True)
class Rule:
    """Foreign keys matching ``pattern`` (in full) become ``target`` (``re`` template; None: dropped)."""

    pattern: str
    target: str | None
    reshape: str = "same"


# --------------------------------------------------------------------------------------------------
# The tables
# --------------------------------------------------------------------------------------------------

_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
_LAYER = r"blocks\.b(\d+)_l(\d+)"  # their layer j of block i; ours is blocks.i.j

MOVINET_PYTORCH_RULES: tuple[Rule, ...] = (
    # stem (their conv1)
    Rule(r"conv1\.conv_1\.conv3d\.weight", "stem.conv.weight"),
    Rule(r"conv1\.conv_1\.conv2d\.weight", "stem.conv.weight", "conv2d_spatial"),
    Rule(rf"conv1\.conv_1\.norm\.{_BN}", r"stem.bn.\1"),
    # inverted bottlenecks: expand, depthwise ("deep": conv_1 spatial or 3D, conv_2 temporal), project
    Rule(rf"{_LAYER}\.(expand|project)\.conv_1\.conv3d\.weight", r"blocks.\1.\2.\3.conv.weight"),
    Rule(rf"{_LAYER}\.(expand|project)\.conv_1\.conv2d\.weight", r"blocks.\1.\2.\3.conv.weight", "conv2d_spatial"),
    Rule(rf"{_LAYER}\.(expand|project)\.conv_1\.norm\.{_BN}", r"blocks.\1.\2.\3.bn.\4"),
    Rule(rf"{_LAYER}\.deep\.conv_1\.conv3d\.weight", r"blocks.\1.\2.feature.conv.weight"),
    Rule(rf"{_LAYER}\.deep\.conv_1\.conv2d\.weight", r"blocks.\1.\2.feature.conv.weight", "conv2d_spatial"),
    Rule(rf"{_LAYER}\.deep\.conv_1\.norm\.{_BN}", r"blocks.\1.\2.feature.bn.\3"),
    Rule(rf"{_LAYER}\.deep\.conv_2\.conv2d\.weight", r"blocks.\1.\2.feature.temporal.conv.weight", "conv2d_temporal"),
    Rule(rf"{_LAYER}\.deep\.conv_2\.norm\.{_BN}", r"blocks.\1.\2.feature.temporal.bn.\3"),
    # squeeze-excitation
    Rule(rf"{_LAYER}\.se\.fc1\.conv_1\.conv3d\.(weight|bias)", r"blocks.\1.\2.se.reduce.\3"),
    Rule(rf"{_LAYER}\.se\.fc1\.conv_1\.conv2d\.(weight|bias)", r"blocks.\1.\2.se.reduce.\3", "conv2d_spatial"),
    Rule(rf"{_LAYER}\.se\.fc2\.conv_1\.conv3d\.(weight|bias)", r"blocks.\1.\2.se.expand.\3"),
    Rule(rf"{_LAYER}\.se\.fc2\.conv_1\.conv2d\.(weight|bias)", r"blocks.\1.\2.se.expand.\3", "conv2d_spatial"),
    # shortcut ("res": [average pool,] 1x1 conv + BN) and ReZero
    Rule(rf"{_LAYER}\.res\.[01]\.conv_1\.conv3d\.weight", r"blocks.\1.\2.shortcut.project.conv.weight"),
    Rule(
        rf"{_LAYER}\.res\.[01]\.conv_1\.conv2d\.weight", r"blocks.\1.\2.shortcut.project.conv.weight", "conv2d_spatial"
    ),
    Rule(rf"{_LAYER}\.res\.[01]\.conv_1\.norm\.{_BN}", r"blocks.\1.\2.shortcut.project.bn.\3"),
    Rule(rf"{_LAYER}\.alpha", r"blocks.\1.\2.rezero"),
    # conv7, then dense9 / dense10 (1x1x1 convs with bias on pooled features = linear layers)
    Rule(r"conv7\.conv_1\.conv3d\.weight", "head.project.conv.weight"),
    Rule(r"conv7\.conv_1\.conv2d\.weight", "head.project.conv.weight", "conv2d_spatial"),
    Rule(rf"conv7\.conv_1\.norm\.{_BN}", r"head.project.bn.\1"),
    Rule(r"classifier\.0\.conv_1\.conv[23]d\.(weight|bias)", r"head.classifier.hidden.\1", "conv_to_linear"),
    Rule(r"classifier\.3\.conv_1\.conv[23]d\.(weight|bias)", r"head.classifier.fc.\1", "conv_to_linear"),
)

_X3D_STAGES = {1: "res2", 2: "res3", 3: "res4", 4: "res5"}  # pytorchvideo's blocks.1..4

PYTORCHVIDEO_X3D_RULES: tuple[Rule, ...] = (
    # stem: pytorchvideo's Conv2plus1d holds the 1x3x3 conv as `conv_t` and the 5x1x1 one as `conv_xy`
    Rule(r"blocks\.0\.conv\.conv_t\.weight", "stem.conv_xy.weight"),
    Rule(r"blocks\.0\.conv\.conv_xy\.weight", "stem.conv_t.weight"),
    Rule(rf"blocks\.0\.norm\.{_BN}", r"stem.bn.\1"),
    *(
        rule
        for index, stage in _X3D_STAGES.items()
        for rule in (
            Rule(rf"blocks\.{index}\.res_blocks\.(\d+)\.branch1_conv\.weight", rf"{stage}.\1.shortcut.0.weight"),
            Rule(rf"blocks\.{index}\.res_blocks\.(\d+)\.branch1_norm\.{_BN}", rf"{stage}.\1.shortcut.1.\2"),
            Rule(rf"blocks\.{index}\.res_blocks\.(\d+)\.branch2\.conv_([abc])\.weight",
                 rf"{stage}.\1.conv_\2.0.weight"),
            Rule(rf"blocks\.{index}\.res_blocks\.(\d+)\.branch2\.norm_([ac])\.{_BN}", rf"{stage}.\1.conv_\2.1.\3"),
            Rule(rf"blocks\.{index}\.res_blocks\.(\d+)\.branch2\.norm_b\.0\.{_BN}", rf"{stage}.\1.conv_b.1.\2"),
            Rule(
                rf"blocks\.{index}\.res_blocks\.(\d+)\.branch2\.norm_b\.1\.block\.0\.(weight|bias)",
                rf"{stage}.\1.se.fc1.\2",
            ),
            Rule(
                rf"blocks\.{index}\.res_blocks\.(\d+)\.branch2\.norm_b\.1\.block\.2\.(weight|bias)",
                rf"{stage}.\1.se.fc2.\2",
            ),
        )
    ),
    # head: conv5 (pre_conv + pre_norm), lin5 (post_conv, a 1x1x1 conv without bias), classifier
    Rule(r"blocks\.5\.pool\.pre_conv\.weight", "conv5.0.weight"),
    Rule(rf"blocks\.5\.pool\.pre_norm\.{_BN}", r"conv5.1.\1"),
    Rule(r"blocks\.5\.pool\.post_conv\.weight", "classifier.lin5.weight", "conv_to_linear"),
    Rule(r"blocks\.5\.proj\.(weight|bias)", r"classifier.fc.\1"),
)

TORCHVISION_MOBILENET_RULES: tuple[Rule, ...] = (
    # TSM blocks keep torchvision's `block` child, so the same names serve both kinds
    Rule(r"features\.(.+)", r"backbone.features.\1"),
    Rule(r"classifier\.([03])\.(weight|bias)", r"backbone.classifier.\1.\2"),
)
# Backbone only: the ImageNet classifier is dropped on purpose.
TORCHVISION_MOBILENET_BACKBONE_RULES: tuple[Rule, ...] = (
    TORCHVISION_MOBILENET_RULES[0],
    Rule(r"classifier\..+", None),
)


# --------------------------------------------------------------------------------------------------
# The conversion
# --------------------------------------------------------------------------------------------------


def _format_keys(keys: Iterable[str], limit: int = 20) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def convert_state_dict(
    state_dict: Mapping[str, Tensor], rules: Iterable[Rule], target: Mapping[str, Tensor], source: str = "foreign"
) -> dict[str, Tensor]:
    """Map ``state_dict`` through ``rules`` onto the keys and shapes of ``target`` (a model's state dict).

    Returns a new dict in ``target``'s key order; raises :class:`ConversionError` naming every foreign
    key no rule uses, every target key left unfilled or filled twice, and every shape mismatch.
    """
    compiled = [(re.compile(rule.pattern), rule) for rule in rules]
    converted: dict[str, Tensor] = {}
    origin: dict[str, str] = {}
    unused, unexpected, duplicated, mismatched = [], [], [], []
    for key, tensor in state_dict.items():
        matched = next(((p, r) for p, r in compiled if p.fullmatch(key)), None)
        if matched is None:
            unused.append(key)
            continue
        pattern, rule = matched
        if rule.target is None:
            continue  # dropped on purpose
        ours = pattern.sub(rule.target, key)
        if ours not in target:
            unexpected.append(f"{key} -> {ours}")
            continue
        if ours in converted:
            duplicated.append(f"{origin[ours]} and {key} -> {ours}")
            continue
        value = RESHAPES[rule.reshape](tensor)
        if tuple(value.shape) != tuple(target[ours].shape):
            mismatched.append(f"{key} {tuple(tensor.shape)} -> {ours} {tuple(target[ours].shape)}")
            continue
        converted[ours], origin[ours] = value, key
    mismatched_targets = {entry.split(" -> ")[-1].split(" ")[0] for entry in mismatched}
    missing = [key for key in target if key not in converted and key not in mismatched_targets]
    problems = [
        (unused, "foreign keys that no rule uses"),
        (unexpected, "foreign keys mapped to keys the model does not have"),
        (duplicated, "model keys filled twice"),
        (mismatched, "shape mismatches"),
        (missing, "model keys with no foreign tensor"),
    ]
    message = "; ".join(f"{what}: {_format_keys(keys)}" for keys, what in problems if keys)
    if message:
        raise ConversionError(f"cannot convert the {source} state dict: {message}")
    return {key: converted[key].contiguous() for key in target}


def _target_state(name: str | nn.Module, num_classes: int, reset_classifier: bool = False) -> dict[str, Tensor]:
    """Keys and shapes of the target model; a registry name is built on the meta device (no memory)."""
    if isinstance(name, nn.Module):
        return name.state_dict()
    import baselines

    with torch.device("meta"):
        model = baselines.build(name, num_classes=num_classes)
        if reset_classifier:
            model.reset_classifier(0)
    return model.state_dict()


def _num_classes(state_dict: Mapping[str, Tensor], key_pattern: str) -> int:
    """Output width of the foreign classifier (600 when it cannot be found: the error will name it)."""
    for key, tensor in state_dict.items():
        if re.fullmatch(key_pattern, key):
            return int(tensor.shape[0])
    return 600


def from_movinet_pytorch(state_dict: Mapping[str, Tensor], name: str | nn.Module) -> dict[str, Tensor]:
    """A MoViNet-pytorch state dict (``MoViNet(_C.MODEL.MoViNetA0, causal=...)``) in the zoo's layout.

    ``name``: the registry name (``movinet_a0`` ... ``movinet_a5``, ``movinet_a0_stream`` ...; base
    weights come from ``causal=False`` models, stream weights from ``causal=True`` (2+1)D ones), or a
    model to convert for, e.g. a :class:`baselines.movinet.MoViNet` built from a reduced spec. The
    result loads with ``strict=True`` into ``baselines.build(name, num_classes=N)``, N being the
    foreign classifier's width (600 for the Kinetics-600 checkpoints).
    """
    target = _target_state(name, _num_classes(state_dict, r"classifier\.3\.conv_1\.conv[23]d\.weight"))
    return convert_state_dict(state_dict, MOVINET_PYTORCH_RULES, target, "MoViNet-pytorch")


def from_pytorchvideo(state_dict: Mapping[str, Tensor], name: str | nn.Module) -> dict[str, Tensor]:
    """A pytorchvideo X3D state dict (``create_x3d(...).state_dict()``, or a ``X3D_*.pyth`` checkpoint's
    ``["model_state"]``) in the layout of ``name`` (``x3d_xs``, ``x3d_s``, ``x3d_m``, ``x3d_l``, or a model).

    Loads with ``strict=True`` into ``baselines.build(name, num_classes=N)`` (N = 400 for Kinetics-400).
    """
    target = _target_state(name, _num_classes(state_dict, r"blocks\.5\.proj\.weight"))
    return convert_state_dict(state_dict, PYTORCHVIDEO_X3D_RULES, target, "pytorchvideo X3D")


def from_torchvision_mobilenet(
    state_dict: Mapping[str, Tensor], name: str | nn.Module, classifier: bool = False
) -> dict[str, Tensor]:
    """A torchvision MobileNetV3 state dict (e.g. ``MobileNet_V3_Small_Weights.IMAGENET1K_V1``) for
    ``mobilenet_v3_small/large`` or ``mobilenet_v3_small/large_tsm`` (or a model).

    By default the backbone only (the ImageNet classifier is dropped): the result loads with
    ``strict=True`` into the model after ``model.reset_classifier(0)``; call ``reset_classifier(N)``
    afterwards for a new classifier. ``classifier=True`` keeps torchvision's classifier too: the result
    then loads into ``baselines.build(name, num_classes=1000)`` (the ImageNet network, run per frame).
    """
    if classifier:
        target = _target_state(name, _num_classes(state_dict, r"classifier\.3\.weight"))
        return convert_state_dict(state_dict, TORCHVISION_MOBILENET_RULES, target, "torchvision MobileNetV3")
    target = _target_state(name, 600, reset_classifier=True)
    return convert_state_dict(state_dict, TORCHVISION_MOBILENET_BACKBONE_RULES, target, "torchvision MobileNetV3")
