"""Evaluate a trained checkpoint and store the run: ``evaluate(config, store)``.

The command line is ``benchmarks.commands.eval`` (``python -m benchmarks.run eval``).

The row's evaluation protocol, at the input the checkpoint was trained with:

- single clip over the whole video (MoViNet, MobileNetV3 rows): ``frames`` at ``fps``, centred;
- multi-view (X3D multi-view rows): ``clips x crops`` views, logits averaged;
- streaming (stream rows): the clip is fed ``chunk`` frames at a time with the model's state, in
  constant backbone memory; ``compare_whole_clip`` also runs the whole clip at once and reports the
  largest logit difference and how often the two predictions agree.

``protocol="authors"`` (GRW rows only) replaces that input with the GRW authors' evaluation
(``benchmarks.table1.protocols``): every ``N``-frame clip of every video is one sample, each a whole-clip
forward from empty stream state; ``top1``/``top5`` are over clips, and ``top1_per_video`` (the mean
of a video's clips' logits) is reported next to it. The record's ``protocol`` says which protocol ran
(``"suite"`` or ``"authors"``); an authors' run also stores ``authors_protocol`` (its input and any
deviation from the authors' values) and ``clips`` (evaluated, videos they came from, skipped).

The run is written atomically to ``<store>/runs/<row>-<timestamp>.json`` (every ``store.RUN_FIELDS``
field, top-1/top-5, videos evaluated and skipped by reason, GFLOPs and peak memory at the input used,
the checkpoint's sha256, provenance, input settings and deviations from the spec), with per-class
accuracy next to it (``.per_class.csv``). Its ``dataset`` is ``dataset_name`` if given, else the
``name`` in ``DATA/dataset.json``, else ``kinetics600`` only for data with exactly 600 classes, else
``custom:<root folder name>``: a run on other data never passes for a Kinetics-600 result.

The model, the spec it was trained for and its class order come from the checkpoint alone
(``benchmarks.engine.runs.load_trained``); the run's method (``benchmarks.engine.method``) gives its forward pass.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm import tqdm

from benchmarks.core.checkpoint import file_sha256
from benchmarks.core.counting import LogitsOnly, count_gflops, count_params, peak_memory_mb
from benchmarks.core.plots import save_figure
from benchmarks.core.store import Store, provenance, run_id, write_csv, write_json
from benchmarks.data.videos import (
    Sampling,
    VideoDataset,
    VideoIndex,
    collate_indexed,
    make_loader,
    read_annotations,
)
from benchmarks.engine.config import EvalConfig
from benchmarks.engine.method import Method, get_method
from benchmarks.engine.runs import Trained, annotation_file, eval_sampling, load_trained
from benchmarks.table1 import protocols
from benchmarks.table1.protocols import ClipDataset, ClipProtocol, authors_protocol, collate_clips
from benchmarks.table1.specs import AUTHORS_EVALUATION, RowSpec, get_spec

KINETICS_600 = "kinetics600"
KINETICS_600_CLASSES = 600
EVAL_INPUT_FIELDS = ("frames", "fps", "stride", "size", "resize", "clips", "crops", "mean", "std")


def evaluation_mode(spec: RowSpec) -> str:
    if spec.streaming:
        return "streaming"
    return "multi-view" if spec.views > 1 else "single-clip"


def data_classes(root: str | Path, split: str, annotations: Path | None) -> int:
    """How many classes the data itself has: labels of the split's annotation CSV, else class folders."""
    return len(data_class_names(root, split, annotations))


def data_class_names(root: str | Path, split: str, annotations: Path | None) -> set[str]:
    """The classes the data itself has: labels of the split's annotation CSV, else class folders."""
    if annotations is not None:
        return {label for label, *_ in read_annotations(annotations, split)}
    folder = Path(root) / split
    return {d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")} if folder.is_dir() else set()


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
    return predict_with_extras(model, videos, mode, chunk, method)[0]


@torch.inference_mode()
def predict_with_extras(model: nn.Module, videos: Tensor, mode: str, chunk: int,
                        method: Method | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """``predict``, and the method's per-video extras (VA-RED2: the GFLOPs its gates chose, summed over the
    views of a multi-view video; any other extra, such as the options chosen, averaged over them)."""
    forward = (method or get_method("standard")).predict
    if mode == "streaming":
        return stream_logits(model, videos, chunk), {}
    if mode == "multi-view" and videos.dim() == 6:
        batch, views = videos.shape[:2]
        logits, extras = forward(model, videos.flatten(0, 1))
        return (logits.unflatten(0, (batch, views)).mean(dim=1),
                {name: value.unflatten(0, (batch, views)).sum(dim=1) if name == "gflops"
                 else value.unflatten(0, (batch, views)).mean(dim=1) for name, value in extras.items()})
    return forward(model, videos)


def _one_input(model: nn.Module, shape: tuple[int, ...], mode: str, chunk: int, device: str) -> Callable[[], None]:
    """One sample's inference (a video, or a clip under the authors' protocol) as this evaluation runs
    it, on zeros of ``shape`` (for the peak-memory measurement)."""

    def run() -> None:
        predict(model, torch.zeros(shape, device=device), mode, chunk)

    return run


def evaluate(config: EvalConfig, store: Store | None = None) -> dict:
    """Evaluate the checkpoint and write the run record into ``store`` (default ``Store.default()``);
    returns the record."""
    store = store or Store.default()
    trained = load_trained(config.checkpoint, config.weights_variant)
    spec = trained.spec
    if config.row is not None and get_spec(config.row).row != spec.row:
        raise ValueError(f"{config.checkpoint} was trained for row {spec.row} ({spec.name}), not row {config.row}")
    if config.protocol == "authors" and spec.row not in AUTHORS_EVALUATION:
        raise ValueError(f"--protocol authors exists only for the GRW rows {sorted(AUTHORS_EVALUATION)}; "
                         f"{config.checkpoint} is row {spec.row} ({spec.name})")
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    method = trained.config.training_method()
    setting = config.setting or method.eval_settings()[0]

    mode = "per-clip" if config.protocol == "authors" else evaluation_mode(spec)
    if config.compare_whole_clip and mode != "streaming":
        raise ValueError(f"compare_whole_clip needs a streaming row under the suite's protocol; row {spec.row} "
                         f"({spec.name}) is evaluated {mode}")
    with method.setting(trained.model, setting):
        return _evaluate(config, store, trained, method, setting, mode, device)


@dataclass
class _Tally:
    """Correct top-1 per class and correct top-5 over the samples (videos, or clips) seen so far."""

    per_class: Tensor  # int64 [classes, 2]: samples, correct
    top5_k: int
    top5_correct: int = 0

    @classmethod
    def new(cls, classes: int) -> _Tally:
        return cls(torch.zeros(classes, 2, dtype=torch.long), min(5, classes))

    def add(self, logits: Tensor, labels: Tensor) -> None:
        classes = len(self.per_class)
        self.per_class[:, 0] += torch.bincount(labels, minlength=classes)
        self.per_class[:, 1] += torch.bincount(labels[logits.argmax(1) == labels], minlength=classes)
        self.top5_correct += (logits.topk(self.top5_k, dim=1).indices == labels[:, None]).any(dim=1).sum().item()

    @property
    def samples(self) -> int:
        return int(self.per_class[:, 0].sum())

    def top1(self) -> float:
        return 100.0 * int(self.per_class[:, 1].sum()) / self.samples

    def top5(self) -> float:
        return 100.0 * self.top5_correct / self.samples


def _suite_pass(config: EvalConfig, model: nn.Module, index: VideoIndex, sampling: Sampling, mode: str,
                method: Method, tally: _Tally) -> dict:
    """The suite's per-video protocol over ``index``; what the record adds to the tally."""
    loader = make_loader(VideoDataset(index, sampling, train=False, with_index=True), config.batch_size,
                         num_workers=config.num_workers, collate_fn=collate_indexed)
    load_errors, max_diff, agreeing = 0, 0.0, 0
    per_video: dict[str, list[Tensor]] = {"index": [], "label": [], "predicted": []}
    for videos, labels, indices, dropped in tqdm(loader, desc=f"eval {index.split}", unit="batch", file=sys.stderr):
        load_errors += dropped
        if not len(labels):
            continue
        videos = videos.to(next(model.parameters()).device)
        logits, extras = predict_with_extras(model, videos, mode, config.chunk, method)
        logits = logits.float().cpu()
        tally.add(logits, labels)
        per_video["index"].append(indices)
        per_video["label"].append(labels)
        per_video["predicted"].append(logits.argmax(1))
        for name, value in extras.items():
            per_video.setdefault(name, []).append(value.detach().float().cpu())
        if config.compare_whole_clip:
            whole = predict(model, videos, "single-clip", config.chunk, method).float().cpu()
            max_diff = max(max_diff, (whole - logits).abs().max().item())
            agreeing += (whole.argmax(1) == logits.argmax(1)).sum().item()
    if tally.samples == 0:
        raise ValueError(f"no video of {config.data} split {config.split!r} could be evaluated")
    extra: dict = {
        "videos_evaluated": tally.samples,
        "videos_skipped": {**index.skipped, "load_error": load_errors},
        "input": {**{name: getattr(sampling, name) for name in EVAL_INPUT_FIELDS},
                  **({"chunk": config.chunk} if mode == "streaming" else {})},
    }
    if config.compare_whole_clip:
        extra["stream_vs_whole_clip"] = {"max_abs_logit_diff": max_diff,
                                         "prediction_agreement": agreeing / tally.samples}
    extra["per_video"] = _per_video_table(per_video, index)
    return extra


def _per_video_table(per_video: dict[str, list[Tensor]], index: VideoIndex) -> pd.DataFrame:
    """One row per evaluated video: its file, true and predicted class names, and what the method reported."""
    columns = {name: torch.cat(values).numpy() for name, values in per_video.items()}
    positions, labels, predicted = columns.pop("index"), columns.pop("label"), columns.pop("predicted")
    names = index.classes
    return pd.DataFrame({"video": [str(index.entries[i].path) for i in positions],
                         "class": [names[i] for i in labels], "predicted": [names[i] for i in predicted],
                         "correct": labels == predicted, **columns})


def _authors_pass(config: EvalConfig, model: nn.Module, index: VideoIndex, protocol: ClipProtocol,
                  method: Method, tally: _Tally) -> dict:
    """The authors' per-clip protocol over ``index``: the tally counts clips; per-video top-1 from the
    mean of each video's clips' logits."""
    dataset = ClipDataset(index, protocol)
    if len(dataset) == 0:
        raise ValueError(f"no video of {config.data} split {config.split!r} has a full {protocol.frames}-frame "
                         f"clip at {protocol.fps:g} fps")
    loader = make_loader(dataset, config.batch_size, num_workers=config.num_workers, collate_fn=collate_clips)
    video_logits = torch.zeros(len(index), len(tally.per_class))
    video_clips = torch.zeros(len(index), dtype=torch.long)
    clips_failed = 0
    for clips, labels, videos, dropped in tqdm(loader, desc=f"eval {index.split} clips", unit="batch",
                                               file=sys.stderr):
        clips_failed += dropped
        if not len(labels):
            continue
        logits = predict(model, clips.to(next(model.parameters()).device), "single-clip", config.chunk,
                         method).float().cpu()
        tally.add(logits, labels)
        video_logits.index_add_(0, videos, logits)
        video_clips.index_add_(0, videos, torch.ones_like(videos))
    if tally.samples == 0:
        raise ValueError(f"no clip of {config.data} split {config.split!r} could be decoded")
    seen = video_clips > 0
    video_labels = torch.tensor([entry.label for entry in index.entries])
    per_video_correct = (video_logits[seen].argmax(1) == video_labels[seen]).sum().item()  # argmax of the mean
    no_clip = dataset.videos_without_clip
    return {
        "videos_evaluated": int(seen.sum()),
        "videos_skipped": {**index.skipped, "no_full_clip": no_clip,
                           "load_error": len(index) - no_clip - int(seen.sum())},
        "clips": {"evaluated": tally.samples, "videos": int(seen.sum()), "skipped": clips_failed,
                  "videos_without_clip": no_clip},
        "top1_per_video": 100.0 * per_video_correct / int(seen.sum()),
        "per_video_aggregation": protocols.PER_VIDEO_AGGREGATION,
        "input": {**dataclasses.asdict(protocol), "square_resize": True, "scale": "x / 255"},
    }


def _evaluate(config: EvalConfig, store: Store, trained: Trained, method: Method, setting: str, mode: str,
              device: str) -> dict:
    spec, classes, model, checkpoint = trained.spec, trained.classes, trained.model, trained.checkpoint
    protocol, protocol_deviations = (authors_protocol(spec.row, config.protocol_overrides)
                                     if config.protocol == "authors" else (None, {}))
    sample_shape = protocol.clip_shape if protocol else spec.clip_shape
    gflops_per_view = count_gflops(LogitsOnly(model), sample_shape)  # on CPU, before moving the model
    model.to(device)

    annotations = annotation_file(config.data, config.annotations, config.split)
    index = VideoIndex.build(config.data, config.split, annotations=annotations, classes=classes,
                             cache_dir=config.index_cache, workers=max(1, config.num_workers))
    tally = _Tally.new(len(classes))
    if protocol is None:
        extra = _suite_pass(config, model, index, eval_sampling(spec, model), mode, method, tally)
        memory_shape = (1, spec.views, 3, spec.frames, spec.res, spec.res) if mode == "multi-view" else sample_shape
        gflops = gflops_per_view * spec.views
    else:
        extra = _authors_pass(config, model, index, protocol, method, tally)
        memory_shape, gflops = sample_shape, gflops_per_view  # one clip is one sample
    memory_mb, memory_method = peak_memory_mb(
        model, _one_input(model, memory_shape, "single-clip" if protocol else mode, config.chunk, device), device)

    own_classes = data_class_names(config.data, config.split, annotations)  # the data's, read once
    path = store.new_run_path(str(spec.row))
    per_video = extra.pop("per_video", None)
    if per_video is not None:
        extra.update(per_video_outputs(per_video, path))
    per_class_csv = path.with_suffix(".per_class.csv")
    _write_per_class(per_class_csv, classes, tally.per_class, unit="clips" if protocol else "videos")
    deviations = {**trained.deviations, **{f"authors_{name}": value for name, value in protocol_deviations.items()}}
    record = {
        "row": spec.row,
        "name": spec.name,
        "model": spec.model,
        "grw": spec.grw is not None and spec.grw.weight != 0,
        "protocol": config.protocol,
        "protocol_description": protocols.describe(protocol) if protocol else protocols.SUITE_PROTOCOL,
        "accuracy_unit": "clip" if protocol else "video",
        "top1": tally.top1(),
        "top5": tally.top5(),
        "top5_k": tally.top5_k,
        "dataset": dataset_name(config.data, len(own_classes), config.dataset_name),
        "data_root": str(Path(config.data).resolve()),
        "split": config.split,
        "classes": len(classes),
        **extra,
        "per_class_csv": str(per_class_csv),
        "mode": mode,
        "method": method.name,
        "setting": setting,
        "weights": trained.weights,
        "deviations": deviations,
        "gflops_per_view": gflops_per_view,
        "gflops": gflops,
        "params": count_params(model),
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
    record["videos_skipped_total"] = sum(record["videos_skipped"].values())
    if "gflops_per_video" in record:  # input-dependent cost (VA-RED2): what the videos really spent, on average
        record["gflops_of_a_zero_clip"] = gflops
        record["gflops"] = record["gflops_per_video"]["mean"]
        record["gflops_per_view"] = record["gflops"] / (spec.views if protocol is None else 1)
    if protocol:
        record["authors_protocol"] = {**dataclasses.asdict(protocol), "source": AUTHORS_EVALUATION[spec.row].source,
                                      "deviations": protocol_deviations}
    unknown = sorted(own_classes - set(classes))
    if unknown:  # their videos were not evaluated (index.skipped["unknown_class"] counts them)
        record["unknown_classes"] = unknown
    record["run_id"] = run_id(path)
    write_json(path, record)
    record["path"] = str(path)
    return record


def per_video_outputs(per_video: pd.DataFrame, path: Path) -> dict:
    """Every video's result next to the run (``<run>.per_video.csv``: file, class, prediction and what the
    method reported), their summary and, for GFLOPs, a histogram (``<run>.gflops.png``)."""
    csv = write_csv(path.with_suffix(".per_video.csv"), per_video)
    outputs: dict = {"per_video_csv": str(csv)}
    if "gflops" in per_video:
        gflops = per_video["gflops"]
        outputs["gflops_per_video"] = {"mean": float(gflops.mean()), "min": float(gflops.min()),
                                       "max": float(gflops.max())}
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.hist(gflops, bins=20, color="tab:purple")
        ax.set_xlabel("GFLOPs spent per video")
        ax.set_ylabel("videos")
        ax.set_title(f"GFLOPs per video: mean {gflops.mean():.4g}, min {gflops.min():.4g}, max {gflops.max():.4g}",
                     fontsize=9)
        fig.tight_layout()
        outputs["gflops_histogram"] = str(save_figure(fig, [path.with_suffix(".gflops.png")])[0])
    return outputs


def _write_per_class(path: Path, classes: tuple[str, ...], per_class: Tensor, unit: str = "videos") -> None:
    samples, correct = per_class[:, 0], per_class[:, 1]
    table = pd.DataFrame({"class": classes, unit: samples.tolist(), "correct": correct.tolist(),
                          "top1": (100.0 * correct / samples.clamp(min=1)).where(samples > 0, float("nan")).tolist()})
    write_csv(path, table)
