"""The rows of Table 1 (Kinetics-600 by GFLOPs): the one source of truth for the whole suite.

The published columns (name, top-1, GFLOPs, resolution, clips x frames) are read from
``results/published/table1.csv``, a verbatim copy of the paper's table; this module adds what the
suite needs to build, measure, train and evaluate each row (registry model, GRW settings, sampling).
Every other module (measurement, training, evaluation, launching, reporting) reads these specs.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from benchmarks.core.paths import published_dir

if TYPE_CHECKING:
    from torch import nn

PAPER = "Goldman et al., Smooth Regularization for Efficient Video Recognition, NeurIPS 2025, Table 1"


# The authors' code: repository, the commit read, and the package the paths below are relative to.
AUTHORS_REPO = "gilgoldm/grw-smoothing"
AUTHORS_COMMIT = "7a3aefabd799d52cf16cd073676112f8660d8a54"
AUTHORS_PACKAGE = "packages/grw-smoothing-models/src/grw_smoothing_models"
SUITE_CHOICE = "this suite's choice (the authors' code and README are silent)"


@dataclass(frozen=True)
class GrwSettings:
    """How GRW-smoothing is attached to a row's backbone; ``GRW_SETTING_SOURCES`` says where each value comes from.

    ``attach="head"`` is final-layer smoothing: ``grw.TemporalHead``, the authors' head (affine
    projection -> LayerNorm -> sine-cosine positions -> ``depth`` pre-norm blocks -> LayerNorm -> mean
    -> dropout -> classifier), replaces the backbone's classifier, with the GRW loss on the projection's
    output in windows of ``window`` frames. ``attach="taps"`` is intermediate-layer smoothing
    (``grw.IntermediateTaps`` on ``taps``). ``embed_dim``, ``depth``, ``num_heads`` and ``mlp_dim`` are the
    fields of the authors' ``TransformerParams``.
    """

    window: int = 5
    alpha: float = 0.5
    weight: float = 1.0
    attach: str = "head"
    embed_dim: int = 256
    depth: int = 1
    num_heads: int = 4
    mlp_dim: int = 512
    dropout: float = 0.0
    stochastic_depth: float = 0.0
    taps: tuple[str, ...] = ()


_CHECKPOINT_ONLY = (
    "placeholder, this suite's choice: the authors' code has no default; the value is a field of the "
    f"TransformerParams pickled in each released snapshot ({AUTHORS_PACKAGE}/model/attention.py, saved by "
    "model/action_recognition_model.py), read by benchmarks.engine.authors.read_snapshot"
)

# Where each GrwSettings value of the GRW rows comes from (paths in AUTHORS_REPO at AUTHORS_COMMIT).
GRW_SETTING_SOURCES: dict[str, str] = {
    "window": (
        "paper (window T=5, divides 50 and 120 frames); each released snapshot also carries its T "
        f"({AUTHORS_PACKAGE}/model/action_recognition_model.py, save/load)"
    ),
    "alpha": "packages/grw-smoothing/src/grw_smoothing/loss.py (GrwSmoothingLoss default alpha=0.5)",
    "weight": SUITE_CHOICE + "; the authors' repository has no training code, so the GRW loss weight is not stated",
    "attach": f"{AUTHORS_PACKAGE}/model/action_recognition_model.py (GRW on the affine output Z before the head)",
    "embed_dim": _CHECKPOINT_ONLY,
    "depth": _CHECKPOINT_ONLY + "; README.md: 'a lightweight temporal head (e.g., 1-2 layer Transformer)'",
    "num_heads": _CHECKPOINT_ONLY,
    "mlp_dim": _CHECKPOINT_ONLY,
    "dropout": (
        f"{AUTHORS_PACKAGE}/model/action_recognition_model.py (ActionRecognitionModel default dropout=0.); "
        "0 in their evaluation scripts backbones/movinets/*/a*_test.py; the training value is not stated"
    ),
    "stochastic_depth": (
        f"{AUTHORS_PACKAGE}/model/action_recognition_model.py (default stochastic_depth=0.); 0 in their "
        "evaluation scripts; the training value is not stated"
    ),
    "taps": "not used by the head rows",
}


@dataclass(frozen=True)
class Cited:
    """A value of the authors' recipe and where it was found (or that it is this suite's choice)."""

    value: Any
    source: str


# GRW rows (1, 6, 12, 15). Fine-tuning follows AUTHORS_RECIPE where the authors' code states a value
# (GRW alpha and max_perms, GRW on the affine output Z, the Kinetics-600 MoViNet-pytorch backbone, drop
# path 0, pixels / 255, empty stream state per clip, an AveragedModel EMA); where it is silent (optimizer,
# learning rate, weight decay, epochs, batch size, GRW weight, EMA decay) the value is this suite's
# choice (benchmarks.engine.runs.Recipe, GrwSettings.weight), named as such. Their evaluation is
# AUTHORS_EVALUATION, run by `eval --protocol authors` (benchmarks.table1.protocols). The clip_metadata entry
# only sets what their metadata cache is built with: the cache keeps each video's frame timestamps and
# fps, and torchvision recomputes the clips from them with the N and fps of the test (VideoClips).
#
# The authors' training and evaluation recipe as far as their code states it. Their repository (at
# AUTHORS_COMMIT) holds the models, the loss, snapshot save/load and evaluation scripts, but no training
# script: optimizer, learning rate, schedule, epochs, batch size and EMA decay are not stated anywhere.
AUTHORS_RECIPE: dict[str, Cited] = {
    "optimizer": Cited(None, SUITE_CHOICE + " (no training code in the authors' repository)"),
    "lr": Cited(None, SUITE_CHOICE + " (no training code in the authors' repository)"),
    "weight_decay": Cited(None, SUITE_CHOICE + " (no training code in the authors' repository)"),
    "epochs": Cited(None, SUITE_CHOICE + " (no training code in the authors' repository)"),
    "batch_size": Cited(None, SUITE_CHOICE + " (evaluation batch size is a CLI option without default, cli.py)"),
    "grw_weight": Cited(None, GRW_SETTING_SOURCES["weight"]),
    "alpha": Cited(0.5, GRW_SETTING_SOURCES["alpha"]),
    "max_perms": Cited(1000,
                       "packages/grw-smoothing/src/grw_smoothing/loss.py (GrwSmoothingLoss default max_perms=1000)"),
    "grw_on": Cited("Z, the affine projection's output, before the LayerNorm",
                    f"{AUTHORS_PACKAGE}/model/action_recognition_model.py "
                    "(forward returns Z in [B, N//T, T, K] windows)"),
    "ema": Cited("torch.optim.swa_utils.AveragedModel(use_buffers=True); decay not stated",
                 f"{AUTHORS_PACKAGE}/model/action_recognition_model.py (load with load_ema=True, and __main__)"),
    "backbone_init": Cited("MoViNet-pytorch Kinetics-600 weights (pretrained=True)",
                           f"{AUTHORS_PACKAGE}/backbones/movinets/*/a*_backbone.py; weights of movinet-pytorch "
                           "(packages/grw-smoothing-models/pyproject.toml: git+https://github.com/gilgoldm/MoViNet-pytorch)"),
    "backbone_drop_path": Cited(0.0, f"{AUTHORS_PACKAGE}/backbones/movinets/*/a*_backbone.py (MovinetBackbone default "
                                     "max_drop_path_rate=0.0; 0 in a*_test.py); the training value is not stated"),
    "input_scale": Cited("pixels / 255, no mean/std normalisation",
                         f"{AUTHORS_PACKAGE}/backbones/movinets/*/a*_test.py (transform_test)"),
    "clip_metadata": Cited({"frames_per_clip": 45, "step_between_clips": 5, "frame_rate": 5},
                           f"{AUTHORS_PACKAGE}/cli.py (kinetics_create_clips, for train, val and test)"),
    "stream_state": Cited("every clip starts from empty stream buffers",
                          f"{AUTHORS_PACKAGE}/backbones/movinets/*/a*_backbone.py (clean_activation_buffers around "
                          "each forward)"),
}


@dataclass(frozen=True)
class AuthorsEvaluation:
    """The authors' evaluation of one GRW row: square resize, centre crop, ``frames``-frame clips at ``fps``.

    Each clip (``frames`` consecutive frames, stepping by ``frames`` through a video) is one sample;
    accuracy is per clip, for the raw and the EMA weights.
    """

    checkpoint: str  # file name in the Hugging Face repo AUTHORS_WEIGHTS_REPO
    backbone: str  # the authors' backbone package: a0s, a1s, a2s, a3b
    resize: int  # Resize((resize, resize)), aspect ratio not kept
    crop: int  # CenterCrop(crop)
    frames: int  # --N
    fps: float  # --fps
    source: str


AUTHORS_WEIGHTS_REPO = "DrGil/grw-smoothing-movinet"
_EVAL_SOURCE = (
    f"{AUTHORS_PACKAGE}/backbones/movinets/{{0}}/{{0}}_test.py (transform_test: resize, crop; clips of N frames, "
    "step N); N and fps are options of cli.py kinetics_test without defaults: N from Table 1 (README.md), fps "
    "this suite's spec"
)
AUTHORS_EVALUATION: dict[int, AuthorsEvaluation] = {
    1: AuthorsEvaluation("a0s_grw.pt", "a0s", 200, 172, 50, 5, _EVAL_SOURCE.format("a0s")),
    6: AuthorsEvaluation("a1s_grw.pt", "a1s", 200, 172, 50, 5, _EVAL_SOURCE.format("a1s")),
    12: AuthorsEvaluation("a2s_grw.pt", "a2s", 256, 224, 50, 5, _EVAL_SOURCE.format("a2s")),
    15: AuthorsEvaluation("a3b_grw.pt", "a3b", 300, 256, 120, 12, _EVAL_SOURCE.format("a3b")),
}


@dataclass(frozen=True)
class RowSpec:
    """One row of Table 1. ``model`` is the ``baselines`` registry name, None when not implemented."""

    row: int
    name: str
    family: str
    model: str | None
    grw: GrwSettings | None
    res: int
    clips: int
    frames: int
    crops: int
    fps: float | None
    eval_resize: int | None
    published_top1: float
    published_gflops: float
    source: str = PAPER
    not_implemented_reason: str | None = None

    @property
    def implemented(self) -> bool:
        return self.model is not None

    @property
    def views(self) -> int:
        """Clips x crops: how many forward passes one video costs."""
        return self.clips * self.crops

    @property
    def streaming(self) -> bool:
        return self.model is not None and self.model.endswith("_stream")

    @property
    def clip_shape(self) -> tuple[int, int, int, int, int]:
        """Input of one view: ``[1, 3, frames, res, res]``."""
        return (1, 3, self.frames, self.res, self.res)

    def key(self) -> str:
        """Stable hash of everything that defines the row (used to key cached measurements)."""
        payload = json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        """JSON-friendly (how checkpoints store the spec a run was trained with)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> RowSpec:
        """The inverse of :meth:`to_dict` (also of older checkpoints' specs, whose GFLOPs notes moved to the
        FLOP ledger, ``benchmarks.table1.ledger``)."""
        values = dict(values)
        values.pop("known_deviation", None)
        grw = values.pop("grw")
        if grw is not None:
            grw = GrwSettings(**{name: tuple(v) if isinstance(v, list) else v for name, v in grw.items()})
        return cls(grw=grw, **values)


# What the suite adds to the published columns, row by row.
GRW_HEAD = GrwSettings()

_NOT_IMPLEMENTED = "not in this suite's model zoo"

# row -> registry model, GRW, frames sampling fps, spatial crops, eval short-side resize (GFLOPs gaps to the
# published figures and their causes: benchmarks.table1.ledger)
_SUITE: dict[int, dict] = {
    1: dict(model="movinet_a0_stream", grw=GRW_HEAD, fps=5, eval_resize=200),
    2: dict(model="movinet_a0", fps=5, eval_resize=200),
    3: dict(model="mobilenet_v3_small", fps=5, eval_resize=256),
    4: dict(model="mobilenet_v3_small_tsm", fps=5, eval_resize=256),
    5: dict(model="x3d_xs", fps=2, eval_resize=182),
    6: dict(model="movinet_a1_stream", grw=GRW_HEAD, fps=5, eval_resize=200),
    7: dict(model="movinet_a1", fps=5, eval_resize=200),
    8: dict(model="x3d_s", fps=4, eval_resize=182),
    9: dict(model="movinet_a2", fps=5, eval_resize=256),
    10: dict(model="mobilenet_v3_large", fps=5, eval_resize=256),
    11: dict(model="mobilenet_v3_large_tsm", fps=5, eval_resize=256),
    12: dict(model="movinet_a2_stream", grw=GRW_HEAD, fps=5, eval_resize=256),
    13: dict(model="x3d_m", fps=5, eval_resize=256),
    14: dict(model="x3d_xs", fps=2, crops=3, eval_resize=182),
    15: dict(model="movinet_a3", grw=GRW_HEAD, fps=12, eval_resize=292),
    16: dict(model="movinet_a3", fps=12, eval_resize=292),
    17: dict(model="x3d_s", fps=4, crops=3, eval_resize=182),
    18: dict(model="x3d_l", fps=5, eval_resize=356),
    19: dict(model="movinet_a4", fps=8, eval_resize=330),
    21: dict(model="x3d_m", fps=5, crops=3, eval_resize=256),
    22: dict(model="x3d_l", fps=2, eval_resize=356),
    24: dict(model="movinet_a5", fps=12, eval_resize=364),
    # MViT-B (torchvision's network): 5 temporal clips x 1 centre crop after a 224 short-side resize; 16
    # frames every 4th and 32 every 3rd of 30 fps video (PySlowFast's test settings)
    25: dict(model="mvit_b_16x4", fps=7.5, eval_resize=224),
    30: dict(model="mvit_b_32x3", fps=10, eval_resize=224),
}

# Why a published row has no model here.
_NOT_IMPLEMENTED_REASONS: dict[int, str] = {
    26: ("the official MoViNet code defines no A6 architecture; its README calls MoViNet-A6 an ensemble of "
         "MoViNet-A4 and A5 (the FLOP ledger counts the two)"),
}


def _spec_from_published(record: dict[str, str]) -> RowSpec:
    row = int(record["row"])
    suite = dict(_SUITE.get(row, {}))
    crops = suite.pop("crops", 1)
    published_views = int(record["clips"])
    if published_views % crops:
        raise ValueError(f"row {row}: {published_views} published views do not split into {crops} crops")
    implemented = record["implemented_here"] == "yes"
    if implemented != ("model" in suite):
        raise ValueError(f"row {row}: published 'implemented_here' disagrees with the suite's specs")
    return RowSpec(
        row=row,
        name=record["model"],
        family=record["family"],
        model=suite.pop("model", None),
        grw=suite.pop("grw", None),
        res=int(record["res"]),
        clips=published_views // crops,
        frames=int(record["frames_per_clip"]),
        crops=crops,
        fps=suite.pop("fps", None),
        eval_resize=suite.pop("eval_resize", None),
        published_top1=float(record["top1"]),
        published_gflops=float(record["gflops"]),
        not_implemented_reason=None if implemented else _NOT_IMPLEMENTED_REASONS.get(row, _NOT_IMPLEMENTED),
        **suite,
    )


@lru_cache(maxsize=1)
def all_specs() -> tuple[RowSpec, ...]:
    """All 31 rows, in the paper's order."""
    with open(published_dir() / "table1.csv", newline="") as f:
        return tuple(_spec_from_published(record) for record in csv.DictReader(f))


def implemented_specs() -> list[RowSpec]:
    return [spec for spec in all_specs() if spec.implemented]


def get_spec(key: int | str) -> RowSpec:
    """Look a row up by number (``5`` or ``"5"``) or by name (``"MoViNet-A0-S-GRW"``, case-insensitive).

    Names that occur twice (X3D-XS, X3D-S, X3D-M, X3D-L: single- and multi-view) are ambiguous; use
    the row number for those.
    """
    specs = all_specs()
    text = str(key).strip()
    if text.isdigit():
        for spec in specs:
            if spec.row == int(text):
                return spec
    else:
        matches = [spec for spec in specs if spec.name.lower() == text.lower()]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            rows = ", ".join(str(spec.row) for spec in matches)
            raise ValueError(f"row name {key!r} is ambiguous (rows {rows}); give the row number")
    valid = "; ".join(f"{spec.row}: {spec.name}" for spec in specs)
    raise ValueError(f"unknown Table 1 row {key!r}; valid rows are {valid}")


def parse_rows(text: str | None) -> list[RowSpec]:
    """``"1,2,5"`` (numbers or names, comma separated) -> specs; None -> every implemented row."""
    if not text:
        return implemented_specs()
    specs = [get_spec(part) for part in text.split(",") if part.strip()]
    missing = [f"{spec.row} ({spec.name})" for spec in specs if not spec.implemented]
    if missing:
        raise ValueError(f"rows not implemented in this suite: {', '.join(missing)}")
    return specs


def build_model(spec: RowSpec, num_classes: int = 600, **options) -> nn.Module:
    """The row's network: the registry backbone, wrapped with GRW-smoothing when the row uses it.

    GRW rows with ``attach="head"`` get ``grw.TemporalHead`` (the authors' head) in place of the
    backbone's classifier, which ``grw.GrwModel`` removes (``reset_classifier(0)``), so their measured
    GFLOPs and parameters are the backbone's without its classifier plus the head's. ``dropout`` in
    ``options`` also sets the head's dropout (default: the row's ``GrwSettings.dropout``).
    """
    import baselines
    import grw

    if not spec.implemented:
        raise ValueError(f"row {spec.row} ({spec.name}) is not implemented: {spec.not_implemented_reason}")
    backbone = baselines.build(spec.model, num_classes=num_classes, **options)
    if spec.grw is None:
        return backbone
    settings = spec.grw
    if settings.attach == "head":
        head = grw.TemporalHead(
            backbone.num_features,
            num_classes,
            embed_dim=settings.embed_dim,
            depth=settings.depth,
            num_heads=settings.num_heads,
            mlp_dim=settings.mlp_dim,
            window=settings.window,
            alpha=settings.alpha,
            dropout=options.get("dropout", settings.dropout),
            stochastic_depth=settings.stochastic_depth,
        )
        return grw.GrwModel(backbone, head=head, grw_weight=settings.weight)
    taps = grw.IntermediateTaps(backbone, list(settings.taps), window=settings.window, alpha=settings.alpha)
    return grw.GrwModel(backbone, taps=taps, grw_weight=settings.weight)
