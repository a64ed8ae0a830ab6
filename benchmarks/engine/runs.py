"""A Table 1 row as one run: its recipe, its configuration, and what the row resolves to.

A run is a row spec (``benchmarks.table1.specs``) plus overrides (input, GRW, method) and a training recipe.
:func:`resolve_spec` turns it into the spec the run really uses and the deviations from the row's own;
:func:`build_run_model` builds that network and :func:`train_sampling` / :func:`eval_sampling` its input.
Checkpoints store the resolved spec and the run configuration, so :func:`load_trained` rebuilds a
trained model from the file alone: training (``benchmarks.engine.train``) and evaluation
(``benchmarks.engine.evaluate``) share this module and never import each other.

GRW: MoViNet GRW rows train their head with the GRW loss (``grw=False`` keeps the head and drops the
loss); MobileNetV3/TSM rows get ``grw.IntermediateTaps`` on a few inverted-residual blocks, X3D rows
on three stage outputs, with ``grw=True`` (:data:`DEFAULT_TAPS`). The training method (``method``) is looked up in
``benchmarks.engine.method``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin

from benchmarks.core.checkpoint import load_checkpoint, model_weights
from benchmarks.data.videos import Sampling
from benchmarks.engine.config import RunConfig
from benchmarks.engine.method import Method, get_method
from benchmarks.engine.recipe import Recipe
from benchmarks.engine.schedules import Schedule
from benchmarks.table1.specs import GrwSettings, RowSpec, build_model, get_spec, parse_rows
from grw import GrwModel

# Intermediate GRW taps for rows without a GRW head: the last inverted-residual block of the 1/8,
# 1/16 and 1/32 stages (names as in ``GrwModel.backbone``; see baselines/mobilenet.py).
DEFAULT_TAPS: dict[str, tuple[str, ...]] = {
    "mobilenet_v3_small": ("backbone.features.3", "backbone.features.8", "backbone.features.11"),
    "mobilenet_v3_large": ("backbone.features.6", "backbone.features.12", "backbone.features.15"),
}
DEFAULT_TAPS["mobilenet_v3_small_tsm"] = DEFAULT_TAPS["mobilenet_v3_small"]
DEFAULT_TAPS["mobilenet_v3_large_tsm"] = DEFAULT_TAPS["mobilenet_v3_large"]
# X3D: the outputs of its 1/8, 1/16 and 1/32 stages (see baselines/x3d.py, ``X3D.tap_points``).
for _x3d in ("x3d_xs", "x3d_s", "x3d_m", "x3d_l"):
    DEFAULT_TAPS[_x3d] = ("res3", "res4", "res5")


# --------------------------------------------------------------------------- the row a run trains


def resolve_spec(config: RunConfig) -> tuple[RowSpec, dict[str, dict]]:
    """The row's spec with the run's input and GRW overrides applied, and the deviations from it.

    With ``res`` overridden, the evaluation resize keeps the spec's ratio to the crop.
    """
    spec = get_spec(config.row)
    if not spec.implemented:
        raise ValueError(f"row {spec.row} ({spec.name}) is not implemented: {spec.not_implemented_reason}")
    changes: dict[str, Any] = {}
    for name in ("frames", "res", "fps"):
        value = getattr(config, name)
        if value is not None and value != getattr(spec, name):
            if value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
            changes[name] = value
    if "res" in changes and spec.eval_resize is not None:
        changes["eval_resize"] = round(spec.eval_resize * changes["res"] / spec.res)
    changes["grw"] = _grw_settings(spec, config)
    resolved = dataclasses.replace(spec, **changes)

    deviations = {name: {"spec": getattr(spec, name), "used": getattr(resolved, name)}
                  for name in ("frames", "res", "fps", "eval_resize") if getattr(resolved, name) != getattr(spec, name)}
    for name in ("weight", "window"):
        published = getattr(spec.grw, name) if spec.grw else None
        used = getattr(resolved.grw, name) if resolved.grw else None
        if used != published:
            deviations[f"grw_{name}"] = {"spec": published, "used": used}
    if resolved.grw and resolved.grw.window > resolved.frames:
        raise ValueError(f"GRW window {resolved.grw.window} is longer than the clip ({resolved.frames} frames)")
    kind, options = config.schedule_kind()
    shortest = kind.shortest_clip(options, resolved.frames)
    if resolved.grw and resolved.grw.window > shortest:
        raise ValueError(f"the {config.schedule} schedule trains on clips of {shortest} frames, shorter than the GRW "
                         f"window {resolved.grw.window}: use more --frames, a shorter --grw-window or other "
                         "schedule options")
    return resolved, deviations


def _grw_settings(spec: RowSpec, config: RunConfig) -> GrwSettings | None:
    """Head rows keep their head (weight 0 with GRW off); other rows get taps with GRW on."""
    enabled = config.grw if config.grw is not None else spec.grw is not None
    if not enabled and (config.grw_weight is not None or config.grw_window is not None):
        raise ValueError("--grw-weight/--grw-window given with GRW off (add --grw)")
    overrides = {name: value for name, value in (("weight", config.grw_weight), ("window", config.grw_window))
                 if value is not None}
    if spec.grw is not None:
        return dataclasses.replace(spec.grw, **(overrides if enabled else {"weight": 0.0}))
    if not enabled or overrides.get("weight") == 0:
        return None
    if spec.model not in DEFAULT_TAPS:
        raise ValueError(f"row {spec.row} ({spec.name}): no default GRW taps for model {spec.model!r}; "
                         f"--grw works for {sorted(DEFAULT_TAPS)} and the GRW head rows")
    return GrwSettings(attach="taps", taps=DEFAULT_TAPS[spec.model], **overrides)


def parse_row_list(text: str) -> list[RowSpec]:
    """``"1,6"`` -> the rows' specs, each implemented and named once."""
    specs = parse_rows(text)
    if not specs:
        raise ValueError(f"--row must name at least one row, got {text!r}")
    rows = [spec.row for spec in specs]
    if len(set(rows)) != len(rows):
        raise ValueError(f"--row names a row twice: {text!r}")
    return specs


# --------------------------------------------------------------------------- model and input


def build_run_model(spec: RowSpec, num_classes: int, recipe: Recipe, method: Method | None = None) -> nn.Module:
    """The row's model as trained (and as evaluated from a checkpoint): same options, same modules."""
    options = {name: getattr(recipe, name) for name in ("dropout", "stochastic_depth")
               if getattr(recipe, name) is not None}
    model = (method or get_method("standard")).prepare(build_model(spec, num_classes, **options), spec)
    _materialize_lazy_modules(model, spec)
    return model


def _materialize_lazy_modules(model: nn.Module, spec: RowSpec) -> None:
    """Size the BatchNorms of GRW taps, which are lazy, before the optimizer, EMA and DDP see them.

    One no-grad forward of a zero clip with only the taps in training mode: the backbone (in eval
    mode) updates no statistics and draws no random numbers; the taps' statistics are then reset.
    """
    if not (isinstance(model, GrwModel) and model.taps is not None):
        return
    if not any(isinstance(m, LazyModuleMixin) and m.has_uninitialized_params() for m in model.taps.modules()):
        return
    model.eval()
    model.taps.train()
    with torch.no_grad():
        model(torch.zeros(1, 3, spec.frames, spec.res, spec.res))
    for norm in model.taps.norms:
        norm.reset_running_stats()
    model.train()


def use_channels_last(model: nn.Module, device: str, mode: str = "auto") -> bool:
    """Whether to train ``model`` with its convolutions in channels-last memory (``channels_last`` for
    ``Conv2d``, ``channels_last_3d`` for ``Conv3d`` and the input clips of 3D models).

    Why: on CPU, PyTorch's backward of depthwise convolutions in the default layout takes a slow path;
    channels-last runs them through oneDNN. Measured on this suite's 2-core machine, one thread, batch
    16 x 6 x 32 x 32, one training step (forward + backward): X3D-XS 1043 -> 370 ms, MoViNet-A0-S + GRW
    head 685 -> 269 ms, MobileNetV3-S + TSM 290 -> 97 ms, the same logits to 1e-6. "auto" turns it on for
    CPU only: on CUDA it has not been measured here.
    """
    if mode == "off" or not any(isinstance(m, (nn.Conv2d, nn.Conv3d)) for m in model.modules()):
        return False
    return mode == "on" or not device.startswith("cuda")


def input_memory_format(model: nn.Module) -> torch.memory_format:
    """The layout of input clips ``[B, 3, T, H, W]`` for a channels-last model: ``channels_last_3d`` when it
    has 3D convolutions (frame-wise models reshape their clips; their 2D weights set the layout)."""
    has_3d = any(isinstance(m, nn.Conv3d) for m in model.modules())
    return torch.channels_last_3d if has_3d else torch.contiguous_format


def input_normalization(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) for frames in [0, 1]: the backbone's ``input_mean``/``input_std``, else none."""
    backbone = model.backbone if isinstance(model, GrwModel) else model
    mean = getattr(backbone, "input_mean", (0.0, 0.0, 0.0))
    std = getattr(backbone, "input_std", (1.0, 1.0, 1.0))
    return tuple(mean), tuple(std)


def train_sampling(spec: RowSpec, model: nn.Module, crop_min_area: float = Recipe.crop_min_area) -> Sampling:
    mean, std = input_normalization(model)
    return Sampling(frames=spec.frames, fps=spec.fps, size=spec.res, mean=mean, std=std,
                    crop_scale=(crop_min_area, 1.0))


def eval_sampling(spec: RowSpec, model: nn.Module, views: bool = True) -> Sampling:
    """The row's evaluation input: ``clips x crops`` views (or one centre view with ``views=False``)."""
    mean, std = input_normalization(model)
    return Sampling(frames=spec.frames, fps=spec.fps, size=spec.res, resize=spec.eval_resize, mean=mean, std=std,
                    clips=spec.clips if views else 1, crops=spec.crops if views else 1)


def annotation_file(data: str | Path, annotations: str | Path | None, split: str) -> Path | None:
    """The split's annotation CSV: ``annotations`` if it is a file, ``<annotations>/<split>.csv``
    if it is a directory (default ``DATA/annotations``); None (scan the folders) when absent."""
    if annotations is not None and Path(annotations).is_file():
        return Path(annotations)
    folder = Path(annotations) if annotations is not None else Path(data) / "annotations"
    if annotations is not None and not folder.is_dir():
        raise ValueError(f"annotations {folder} is neither a CSV file nor a directory of <split>.csv files")
    path = folder / f"{split}.csv"
    return path if path.is_file() else None


# --------------------------------------------------------------------------- the schedule


def build_schedule(config: RunConfig, spec: RowSpec, videos_per_process: int) -> Schedule:
    """How the run's steps are laid out (``benchmarks.engine.schedules``) for ``videos_per_process``
    training samples per process and epoch, with the spec's input as the default shape."""
    kind, options = config.schedule_kind()
    return kind.for_run(options, config.recipe, spec.frames, spec.res, videos_per_process)


def schedule_record(config: RunConfig, schedule: Schedule) -> dict[str, Any]:
    """What a run's config.json says about its schedule."""
    return schedule.record(config.schedule_kind()[1], config.recipe)


# --------------------------------------------------------------------------- trained models


def run_record(config: RunConfig, spec: RowSpec, deviations: dict, classes: tuple[str, ...]) -> dict[str, Any]:
    """What every checkpoint stores about its run: enough to rebuild the model with no trainer config."""
    return {"config": config.to_dict(), "spec": spec.to_dict(), "deviations": deviations,
            "classes": list(classes), "row": spec.row}


@dataclass
class Trained:
    """A model rebuilt from a checkpoint (:func:`load_trained`), in eval mode."""

    model: nn.Module
    spec: RowSpec  # as resolved for the run
    classes: tuple[str, ...]
    config: RunConfig
    deviations: dict[str, dict]
    weights: str  # "ema" or "raw"
    checkpoint: dict[str, Any]


def load_trained(checkpoint: str | Path | dict[str, Any], weights: str | None = None) -> Trained:
    """The model of a training checkpoint (a path or a loaded checkpoint) with its resolved spec and
    class order; ``weights`` "ema", "raw" or None (EMA when the checkpoint has one)."""
    state = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    config = RunConfig.from_dict(state["config"])
    spec = RowSpec.from_dict(state["spec"])
    classes = tuple(state["classes"])
    model = build_run_model(spec, len(classes), config.recipe, config.training_method())
    weights_state, used = model_weights(state, weights)
    model.load_state_dict(weights_state)
    model.eval()
    return Trained(model, spec, classes, config, state.get("deviations", {}), used, state)
