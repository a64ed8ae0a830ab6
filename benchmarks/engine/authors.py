"""Read the authors' released GRW snapshots (``a0s_grw.pt`` ...) without running any code they carry.

The authors save (``ActionRecognitionModel.save`` in ``model/action_recognition_model.py`` of
``gilgoldm/grw-smoothing``) a pickle written by ``torch.save``::

    {"model_state": state dict, "ema_weights": AveragedModel state dict ("module."-prefixed keys and
     "n_averaged") or None, "num_samples": int, "transformer_params": a pickled TransformerParams
     object, "backbone": a pickled class reference (their MovinetBackbone), "T": int, "version": 10}

and load it with ``torch.load(weights_only=False)``, which would run whatever a file asks the
unpickler to call. :func:`read_snapshot` reads it with :class:`RestrictedUnpickler` instead, which
resolves only the globals that tensors and plain containers need (``torch._utils._rebuild_tensor_v2``,
``collections.OrderedDict``; storages are resolved by ``torch.load`` itself) and exactly two foreign
ones, mapped to inert stand-ins: the ``TransformerParams`` class (to :class:`TransformerParams`, a
frozen dataclass that accepts only its five integer fields) and the backbone class reference (to a
:class:`ClassReference`, which refuses to be called). Any other global is refused with
:class:`UnsafeSnapshotError`, naming it, before anything is called.

:func:`to_grw_state_dict` maps their keys to the suite's ``grw.GrwModel``: head keys by the table
``HEAD_KEYS`` (data, below), backbone keys (MoViNet-pytorch names under ``video_backbone._encoder.``)
through ``baselines.from_movinet_pytorch``.
"""

from __future__ import annotations

import _compat_pickle
import dataclasses
import io
import pickle
import re
import types
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

SNAPSHOT_VERSION = 10
SNAPSHOT_KEYS = frozenset(
    {"model_state", "ema_weights", "num_samples", "transformer_params", "backbone", "T", "version"})

# The two foreign globals, under the names the authors' package gives them. The "video_retrieval"
# names are the same classes before the package was renamed; the authors' migration code maps them
# (``__main__`` of model/action_recognition_model.py), so snapshots may carry either.
TRANSFORMER_PARAMS_GLOBALS = frozenset({
    ("grw_smoothing_models.model.attention", "TransformerParams"),
    ("video_retrieval.model.v10.attention", "TransformerParams"),
})
# backbone class reference -> the authors' backbone package name
BACKBONE_GLOBALS: dict[tuple[str, str], str] = {
    **{(f"grw_smoothing_models.backbones.movinets.{b}.{b}_backbone", "MovinetBackbone"): b
       for b in ("a0s", "a1s", "a2s", "a3b")},
    **{(f"video_retrieval.backbones.movinets.{b}.{b}_backbone", "MovinetBackbone"): b
       for b in ("a0s", "a1s", "a2s", "a3b")},
    **{(f"video_retrieval.backbones.movinets.{b}_v10.movinet{b}_v10_backbone", "MovinetBackbone"): b
       for b in ("a0s", "a1s", "a2s", "a3b")},
}
# the authors' backbone -> this suite's registry model with the same architecture
# (backbones/movinets/*/a*_backbone.py: A0-S, A1-S, A2-S stream models, A3 the base model)
BACKBONE_MODELS = {
    "a0s": "movinet_a0_stream", "a1s": "movinet_a1_stream", "a2s": "movinet_a2_stream", "a3b": "movinet_a3",
}
# Globals a state dict of plain tensors needs (storages are resolved by torch.load before these).
TENSOR_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("collections", "OrderedDict"): OrderedDict,
}

BACKBONE_PREFIX = "video_backbone._encoder."
# Their head keys -> the suite's GrwModel keys (regex, replacement); grw/head.py explains the modules.
HEAD_KEYS: tuple[tuple[str, str], ...] = (
    (r"video_backbone\._encoder\.classifier\.(weight|bias)", r"head.proj.\1"),  # their Linear(480.., D)
    (r"ln\.(weight|bias)", r"head.norm.\1"),
    (r"attention\.transformer\.layers\.(\d+)\.0\.(weight|bias)", r"head.blocks.\1.attn_norm.\2"),
    (r"attention\.transformer\.layers\.(\d+)\.1\.in_proj_(weight|bias)", r"head.blocks.\1.attn.qkv.\2"),
    (r"attention\.transformer\.layers\.(\d+)\.1\.out_proj\.(weight|bias)", r"head.blocks.\1.attn.out.\2"),
    (r"attention\.transformer\.layers\.(\d+)\.2\.net\.0\.(weight|bias)", r"head.blocks.\1.mlp_norm.\2"),
    (r"attention\.transformer\.layers\.(\d+)\.2\.net\.1\.(weight|bias)", r"head.blocks.\1.fc1.\2"),
    (r"attention\.transformer\.layers\.(\d+)\.2\.net\.3\.(weight|bias)", r"head.blocks.\1.fc2.\2"),
    (r"attention\.transformer\.norm\.(weight|bias)", r"head.final_norm.\1"),
    (r"attention\.linear_head\.(weight|bias)", r"head.fc.\1"),
)


class UnsafeSnapshotError(pickle.UnpicklingError):
    """The file asks for a global outside the allow-list (or is not the authors' snapshot format)."""


@dataclass(frozen=True)
class TransformerParams:
    """The authors' ``TransformerParams`` (``model/attention.py``): the head's hyper-parameters.

    Also the inert stand-in their pickled object is read into: unpickling creates it empty and
    ``__setstate__`` accepts exactly these five fields, as integers.
    """

    embed_dim: int
    depth: int
    num_heads: int
    mlp_dim: int
    num_classes: int

    def __post_init__(self) -> None:
        self._check(dataclasses.asdict(self))

    @classmethod
    def _check(cls, values: dict) -> None:
        names = [field.name for field in dataclasses.fields(cls)]
        if sorted(values) != sorted(names):
            raise UnsafeSnapshotError(f"TransformerParams with fields {sorted(values)}, expected {sorted(names)}")
        bad = {k: v for k, v in values.items() if type(v) is not int or v < 1}
        if bad:
            raise UnsafeSnapshotError(f"TransformerParams fields must be positive integers, got {bad}")

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise UnsafeSnapshotError(f"TransformerParams state must be a dict, got {type(state).__name__}")
        self._check(state)
        for name, value in state.items():
            object.__setattr__(self, name, value)


@dataclass(frozen=True)
class ClassReference:
    """Stand-in for the pickled backbone class: its name only. Calling it (a pickle that would
    instantiate their backbone) raises :class:`UnsafeSnapshotError`."""

    module: str
    name: str
    backbone: str  # a0s, a1s, a2s or a3b

    @property
    def qualified_name(self) -> str:
        return f"{self.module}.{self.name}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise UnsafeSnapshotError(
            f"refused call of {self.qualified_name}: a snapshot only references the backbone class, never calls it"
        )


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the allow-listed globals; any other is refused, by name.

    Every way a pickle names a callable or class (GLOBAL, STACK_GLOBAL, INST, OBJ, EXT) goes through
    ``find_class``, so a refused global is never imported, let alone called.
    """

    def find_class(self, module: str, name: str) -> Any:
        # Protocol 2 pickles write Python 2 names (``__builtin__``); read them as pickle itself would.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        key = (module, name)
        if key in TENSOR_GLOBALS:
            return TENSOR_GLOBALS[key]
        if key in TRANSFORMER_PARAMS_GLOBALS:
            return TransformerParams
        if key in BACKBONE_GLOBALS:
            return ClassReference(module, name, BACKBONE_GLOBALS[key])
        raise UnsafeSnapshotError(
            f"refused global {module}.{name}: an authors' snapshot holds only tensors, plain containers, "
            "TransformerParams and the backbone class reference; nothing was imported or called"
        )


def _restricted_load(file: Any, **kwargs: Any) -> Any:
    return RestrictedUnpickler(file, **kwargs).load()


# What torch.load(pickle_module=...) uses: ``Unpickler`` (subclassed by torch for storages) and ``load``.
restricted_pickle = types.SimpleNamespace(__name__="benchmarks.engine.authors.restricted_pickle",
                                          Unpickler=RestrictedUnpickler, load=_restricted_load)


@dataclass
class AuthorsSnapshot:
    """One of the authors' snapshots, read without running code.

    ``model_state`` and ``ema_state`` use the authors' key names (``ema_state`` without the
    ``module.`` prefix and ``n_averaged``; None when the snapshot has no EMA weights).
    """

    model_state: dict[str, Tensor]
    ema_state: dict[str, Tensor] | None
    ema_n_averaged: int | None
    num_samples: int
    T: int
    transformer_params: TransformerParams
    backbone_class: str
    backbone: str  # the authors' backbone: a0s, a1s, a2s, a3b
    version: int

    @property
    def model(self) -> str:
        """This suite's registry model for the backbone."""
        return BACKBONE_MODELS[self.backbone]

    def state(self, variant: str = "raw") -> dict[str, Tensor]:
        """The raw (``"raw"``) or EMA (``"ema"``) weights, authors' key names."""
        if variant == "raw":
            return self.model_state
        if variant == "ema":
            if self.ema_state is None:
                raise ValueError("this snapshot has no EMA weights (saved with ema_weights=None)")
            return self.ema_state
        raise ValueError(f"variant must be 'raw' or 'ema', got {variant!r}")

    def head_options(self) -> dict[str, int]:
        """``grw.TemporalHead`` keyword arguments that rebuild their head (with ``in_features``)."""
        params = self.transformer_params
        in_features = self.model_state["video_backbone._encoder.classifier.weight"].shape[1]
        return dict(in_features=in_features, num_classes=params.num_classes, embed_dim=params.embed_dim,
                    depth=params.depth, num_heads=params.num_heads, mlp_dim=params.mlp_dim, window=self.T)


def _tensor_dict(value: Any, what: str) -> dict[str, Tensor]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in value.items()):
        raise UnsafeSnapshotError(f"{what} is not a state dict of tensors")
    return dict(value)


def _integer(value: Any, what: str) -> int:
    if type(value) is not int:
        raise UnsafeSnapshotError(f"{what} must be an int, got {type(value).__name__}")
    return value


def read_snapshot(path: str | Path | io.BufferedIOBase) -> AuthorsSnapshot:
    """Read an authors' snapshot (version 10) safely; raises :class:`UnsafeSnapshotError` on any other global."""
    snapshot = torch.load(path, map_location="cpu", pickle_module=restricted_pickle, weights_only=False)
    if not isinstance(snapshot, dict) or set(snapshot) != SNAPSHOT_KEYS:
        keys = sorted(snapshot) if isinstance(snapshot, dict) else type(snapshot).__name__
        raise UnsafeSnapshotError(f"not an authors' snapshot: expected keys {sorted(SNAPSHOT_KEYS)}, got {keys}")
    version = _integer(snapshot["version"], "version")
    if version != SNAPSHOT_VERSION:
        raise UnsafeSnapshotError(f"snapshot version {version}, only version {SNAPSHOT_VERSION} is supported")
    params, backbone = snapshot["transformer_params"], snapshot["backbone"]
    if not isinstance(params, TransformerParams):
        raise UnsafeSnapshotError(f"transformer_params is a {type(params).__name__}, not TransformerParams")
    if not isinstance(backbone, ClassReference):
        raise UnsafeSnapshotError(f"backbone is a {type(backbone).__name__}, not a backbone class reference")

    ema_state, n_averaged = None, None
    if snapshot["ema_weights"] is not None:
        averaged = _tensor_dict(snapshot["ema_weights"], "ema_weights")
        if "n_averaged" not in averaged:
            raise UnsafeSnapshotError("ema_weights has no n_averaged: not an AveragedModel state dict")
        n_averaged = int(averaged.pop("n_averaged"))
        if not all(key.startswith("module.") for key in averaged):
            raise UnsafeSnapshotError("ema_weights keys must all start with 'module.' (an AveragedModel state dict)")
        ema_state = {key.removeprefix("module."): value for key, value in averaged.items()}
    model_state = _tensor_dict(snapshot["model_state"], "model_state")
    if ema_state is not None and set(ema_state) != set(model_state):
        raise UnsafeSnapshotError("the EMA weights and the model weights have different keys")
    return AuthorsSnapshot(
        model_state=model_state, ema_state=ema_state, ema_n_averaged=n_averaged,
        num_samples=_integer(snapshot["num_samples"], "num_samples"), T=_integer(snapshot["T"], "T"),
        transformer_params=params, backbone_class=backbone.qualified_name, backbone=backbone.backbone,
        version=version,
    )


def head_key(key: str) -> str | None:
    """The suite's GrwModel key for one of their head keys, or None for a backbone key."""
    for pattern, replacement in HEAD_KEYS:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, replacement, key)
    return None


def split_state(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Their state dict -> (head weights under GrwModel keys, backbone weights under MoViNet-pytorch keys)."""
    head, backbone = {}, {}
    for key, value in state.items():
        ours = head_key(key)
        if ours is not None:
            head[ours] = value
        elif key.startswith(BACKBONE_PREFIX):
            backbone[key.removeprefix(BACKBONE_PREFIX)] = value
        else:
            raise KeyError(f"unexpected key {key!r} in the authors' state dict")
    return head, backbone


def to_grw_state_dict(
    state: dict[str, Tensor],
    model: str,
    convert_backbone: Callable[[dict[str, Tensor], str], dict[str, Tensor]] | None = None,
) -> dict[str, Tensor]:
    """Their state dict -> a state dict for the suite's ``GrwModel`` (backbone ``model``, authors' head).

    Backbone weights go through ``convert_backbone(state, model)``, by default
    ``baselines.from_movinet_pytorch`` (MoViNet-pytorch names -> the zoo model's), and get the
    ``backbone.`` prefix.
    """
    if convert_backbone is None:
        import baselines

        convert_backbone = getattr(baselines, "from_movinet_pytorch", None)
        if convert_backbone is None:
            raise NotImplementedError(
                "baselines.from_movinet_pytorch is not available: the backbone weights cannot be converted yet"
            )
    head, backbone = split_state(state)
    converted = {f"backbone.{key}": value for key, value in convert_backbone(backbone, model).items()}
    return {**converted, **head}
