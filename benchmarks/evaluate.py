"""Evaluate a trained checkpoint and store the run: ``evaluate(config, store)``.

The command line is ``benchmarks.commands.evaluate`` (``python -m benchmarks.run eval``).

The row's evaluation protocol, at the input the checkpoint was trained with:

- single clip over the whole video (MoViNet, MobileNetV3 rows): ``frames`` at ``fps``, centred;
- multi-view (X3D multi-view rows): ``clips x crops`` views, logits averaged;
- streaming (stream rows): the clip is fed ``chunk`` frames at a time with the model's state, in
  constant backbone memory; ``compare_whole_clip`` also runs the whole clip at once and reports the
  largest logit difference and how often the two predictions agree.

The run is written atomically to ``<store>/runs/<row>-<timestamp>.json`` (every ``store.RUN_FIELDS``
field, top-1/top-5, videos evaluated and skipped by reason, GFLOPs and peak memory at the input used,
the checkpoint's sha256, provenance, input settings and deviations from the spec), with per-class
accuracy next to it (``.per_class.csv``). Its ``dataset`` is ``dataset_name`` if given, else the
``name`` in ``DATA/dataset.json``, else ``kinetics600`` only for data with exactly 600 classes, else
``custom:<root folder name>``: a run on other data never passes for a Kinetics-600 result.

The model, the spec it was trained for and its class order come from the checkpoint alone
(``benchmarks.runs.load_trained``); the run's method (``benchmarks.methods``) gives its forward pass.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor, nn
from tqdm import tqdm

from benchmarks.checkpoint import file_sha256
from benchmarks.data import VideoDataset, VideoIndex, make_loader, read_annotations
from benchmarks.measure import LogitsOnly, count_gflops, peak_memory_mb
from benchmarks.methods import Method, get_method
from benchmarks.runs import Trained, annotation_file, eval_sampling, load_trained
from benchmarks.specs import RowSpec, get_spec
from benchmarks.store import Store, provenance, write_csv, write_json

KINETICS_600 = "kinetics600"
KINETICS_600_CLASSES = 600
EVAL_INPUT_FIELDS = ("frames", "fps", "stride", "size", "resize", "clips", "crops", "mean", "std")


@dataclass
class EvalConfig:
    """One evaluation. ``weights`` None: the EMA weights when the checkpoint has them, else raw."""

    checkpoint: str
    data: str
    row: int | str | None = None  # when given, must be the checkpoint's row
    split: str = "val"
    annotations: str | None = None  # as in TrainConfig; default DATA/annotations/<split>.csv when present
    weights: str | None = None
    chunk: int = 8  # frames per streaming call
    compare_whole_clip: bool = False
    dataset_name: str | None = None
    setting: str | None = None  # the method's evaluation setting; default its first
    batch_size: int = 4
    num_workers: int = 4
    device: str | None = None  # default: CUDA when available
    index_cache: str | None = None  # folder for the video index cache; default: next to the data

    def __post_init__(self) -> None:
        if self.weights not in (None, "ema", "raw"):
            raise ValueError(f"weights must be 'ema' or 'raw', got {self.weights!r}")
        if self.chunk < 1 or self.batch_size < 1 or self.num_workers < 0:
            raise ValueError(f"chunk and batch_size must be >= 1 and num_workers >= 0, got {self.chunk}, "
                             f"{self.batch_size}, {self.num_workers}")


def evaluation_mode(spec: RowSpec) -> str:
    if spec.streaming:
        return "streaming"
    return "multi-view" if spec.views > 1 else "single-clip"


def data_classes(root: str | Path, split: str, annotations: Path | None) -> int:
    """How many classes the data itself has: labels of the split's annotation CSV, else class folders."""
    if annotations is not None:
        return len({label for label, *_ in read_annotations(annotations, split)})
    folder = Path(root) / split
    return sum(1 for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")) if folder.is_dir() else 0


def dataset_name(root: str | Path, classes: int, name: str | None = None) -> str:
    """What the data is, for the results (see the module docstring); ``classes``: the data's own."""
    if name:
        return name
    root = Path(root)
    meta = root / "dataset.json"
    if meta.is_file():
        try:
            return str(json.loads(meta.read_text())["name"])
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{meta}: expected a JSON object with a 'name', got an error: {error}") from error
    return KINETICS_600 if classes == KINETICS_600_CLASSES else f"custom:{root.resolve().name}"


@torch.inference_mode()
def stream_logits(model: nn.Module, video: Tensor, chunk: int) -> Tensor:
    """Logits after feeding ``video`` ``[B, 3, T, H, W]`` ``chunk`` frames at a time, with state."""
    state = None
    for start in range(0, video.shape[2], chunk):
        logits, state = model.forward_stream(video[:, :, start:start + chunk], state)
    return logits


@torch.inference_mode()
def predict(model: nn.Module, videos: Tensor, mode: str, chunk: int, method: Method | None = None) -> Tensor:
    """Logits ``[B, classes]`` for a batch as the row evaluates it; multi-view videos are
    ``[B, V, 3, T, H, W]`` and their views' logits are averaged."""
    forward = (method or get_method("standard")).predict
    if mode == "streaming":
        return stream_logits(model, videos, chunk)
    if mode == "multi-view" and videos.dim() == 6:
        batch, views = videos.shape[:2]
        return forward(model, videos.flatten(0, 1))[0].unflatten(0, (batch, views)).mean(dim=1)
    return forward(model, videos)[0]


def _one_video(model: nn.Module, spec: RowSpec, mode: str, chunk: int, device: str) -> Callable[[], None]:
    """One video's inference as this evaluation runs it (for the peak-memory measurement)."""
    shape = (1, spec.views, 3, spec.frames, spec.res, spec.res) if mode == "multi-view" else spec.clip_shape

    def run() -> None:
        predict(model, torch.zeros(shape, device=device), mode, chunk)

    return run


def evaluate(config: EvalConfig, store: Store | None = None) -> dict:
    """Evaluate the checkpoint and write the run record into ``store`` (default ``Store.default()``);
    returns the record."""
    store = store or Store.default()
    trained = load_trained(config.checkpoint, config.weights)
    spec = trained.spec
    if config.row is not None and get_spec(config.row).row != spec.row:
        raise ValueError(f"{config.checkpoint} was trained for row {spec.row} ({spec.name}), not row {config.row}")
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    method = get_method(trained.config.method)
    setting = config.setting or method.eval_settings()[0]

    mode = evaluation_mode(spec)
    if config.compare_whole_clip and mode != "streaming":
        raise ValueError(f"compare_whole_clip needs a streaming row; row {spec.row} ({spec.name}) is {mode}")
    with method.setting(trained.model, setting):
        return _evaluate(config, store, trained, method, setting, mode, device)


def _evaluate(config: EvalConfig, store: Store, trained: Trained, method: Method, setting: str, mode: str,
              device: str) -> dict:
    spec, deviations, classes, model, checkpoint = (trained.spec, trained.deviations, trained.classes, trained.model,
                                                    trained.checkpoint)
    gflops_per_view = count_gflops(LogitsOnly(model), spec.clip_shape)  # on CPU, before moving the model
    model.to(device)

    sampling = eval_sampling(spec, model)
    annotations = annotation_file(config.data, config.annotations, config.split)
    index = VideoIndex.build(config.data, config.split, annotations=annotations, classes=classes,
                             cache_dir=config.index_cache, workers=max(1, config.num_workers))
    loader = make_loader(VideoDataset(index, sampling, train=False), config.batch_size, num_workers=config.num_workers)

    top5_k = min(5, len(classes))
    per_class = torch.zeros(len(classes), 2, dtype=torch.long)  # [videos, correct] per class
    top5_correct = load_errors = 0
    stream_check = {"max_abs_logit_diff": 0.0, "agreeing": 0}
    for videos, labels, dropped in tqdm(loader, desc=f"eval row {spec.row}", unit="batch", file=sys.stderr):
        load_errors += dropped
        if not len(labels):
            continue
        videos = videos.to(device)
        logits = predict(model, videos, mode, config.chunk, method).float().cpu()
        per_class[:, 0] += torch.bincount(labels, minlength=len(classes))
        per_class[:, 1] += torch.bincount(labels[logits.argmax(1) == labels], minlength=len(classes))
        top5_correct += (logits.topk(top5_k, dim=1).indices == labels[:, None]).any(dim=1).sum().item()
        if config.compare_whole_clip:
            whole = predict(model, videos, "single-clip", config.chunk, method).float().cpu()
            diff = (whole - logits).abs().max().item()
            stream_check["max_abs_logit_diff"] = max(stream_check["max_abs_logit_diff"], diff)
            stream_check["agreeing"] += (whole.argmax(1) == logits.argmax(1)).sum().item()

    evaluated = int(per_class[:, 0].sum())
    if evaluated == 0:
        raise ValueError(f"no video of {config.data} split {config.split!r} could be evaluated")
    memory_mb, memory_method = peak_memory_mb(model, _one_video(model, spec, mode, config.chunk, device), device)

    path = store.new_run_path(str(spec.row))
    per_class_csv = path.with_suffix(".per_class.csv")
    _write_per_class(per_class_csv, classes, per_class)
    skipped = {**index.skipped, "load_error": load_errors}
    record = {
        "row": spec.row,
        "name": spec.name,
        "model": spec.model,
        "grw": spec.grw is not None and spec.grw.weight != 0,
        "top1": 100.0 * int(per_class[:, 1].sum()) / evaluated,
        "top5": 100.0 * top5_correct / evaluated,
        "top5_k": top5_k,
        "dataset": dataset_name(config.data, data_classes(config.data, config.split, annotations),
                                config.dataset_name),
        "data_root": str(Path(config.data).resolve()),
        "split": config.split,
        "classes": len(classes),
        "videos_evaluated": evaluated,
        "videos_skipped": skipped,
        "videos_skipped_total": sum(skipped.values()),
        "per_class_csv": str(per_class_csv),
        "mode": mode,
        "method": method.name,
        "setting": setting,
        "weights": trained.weights,
        "input": {**{name: getattr(sampling, name) for name in EVAL_INPUT_FIELDS},
                  **({"chunk": config.chunk} if mode == "streaming" else {})},
        "deviations": deviations,
        "gflops_per_view": gflops_per_view,
        "gflops": gflops_per_view * spec.views,
        "peak_memory_mb": memory_mb,
        "memory_method": memory_method,
        "device": device,
        "checkpoint": str(Path(config.checkpoint).resolve()),
        "checkpoint_sha256": file_sha256(config.checkpoint),
        "trained_epochs": checkpoint["progress"]["epoch"],
        "checkpoint_complete": checkpoint["complete"],
        **({"weights_source": checkpoint["provenance"]} if "provenance" in checkpoint else {}),
        **provenance(device),
    }
    if config.compare_whole_clip:
        record["stream_vs_whole_clip"] = {"max_abs_logit_diff": stream_check["max_abs_logit_diff"],
                                          "prediction_agreement": stream_check["agreeing"] / evaluated}
    write_json(path, record)
    record["path"] = str(path)
    return record


def _write_per_class(path: Path, classes: tuple[str, ...], per_class: Tensor) -> None:
    videos, correct = per_class[:, 0], per_class[:, 1]
    table = pd.DataFrame({"class": classes, "videos": videos.tolist(), "correct": correct.tolist(),
                          "top1": (100.0 * correct / videos.clamp(min=1)).where(videos > 0, float("nan")).tolist()})
    write_csv(path, table)
