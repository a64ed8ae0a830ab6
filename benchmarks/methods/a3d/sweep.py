"""The configuration-budget table of a trained A3D model (``eval --method a3d --sweep``; seed 002, section 3.3).

Every configuration of the run's range (``benchmarks.methods.a3d.model.grid``: width x side x frames) is evaluated
the same way: the model is set to the configuration's width, its BatchNorm statistics are recomputed
on ``calibration_videos`` training clips cut to the configuration's input (the paper's BN
calibration), and it classifies the centre clip of every video of the validation and the test split,
cut to that input (``benchmarks.methods.a3d.model.scale_clip`` of the row's evaluation clip). Its GFLOPs are
fvcore's count of the sliced network on one such clip; its parameters are those of the layers it
uses. ``picks`` (indices into the range's grid, the ``index`` of a row, or names such as
``0.5x0.71x0.25``) and ``gflops`` (a range of GFLOPs per clip) sweep a subset.

Per configuration only what depends on it runs. The clips are decoded once (:class:`Clips`) and held
in memory while they fit ``clip_memory_mb`` (counted twice: the decoded clips and one copy cut to the
current input; beyond it a split is decoded again on every pass); the configurations are evaluated
grouped by input, so the clips are cut to an input once for the widths that share it. A configuration's
GFLOPs are counted once, its parameters once per width (:class:`Costs`). The result does not depend on
any of this: the same batches, cut the same way, in either case.

The budget table keeps, in order of GFLOPs, each configuration whose validation top-1 is higher than
that of every cheaper one: for any budget, the best configuration within it on validation data is
its last row at or below the budget (:func:`select`). Test top-1 is reported next to it, never used
to choose. The sweep is stored as ``runs/a3d/a3d-sweep-<time>.json`` with provenance; ``complete``
says whether it covers the whole range (only a complete sweep answers ``eval --budget``).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm import tqdm

from baselines.slimmable import recompute_batchnorm
from baselines.x3d import X3D, x3d_of
from benchmarks.core.checkpoint import file_sha256
from benchmarks.core.counting import LogitsOnly, count_gflops
from benchmarks.core.store import Store, provenance, write_json
from benchmarks.data.videos import Sampling, VideoDataset, VideoIndex, evenly_spread, make_loader
from benchmarks.engine.method import logits_of
from benchmarks.engine.runs import Trained, eval_sampling, load_trained
from benchmarks.methods.a3d.model import A3D_RANGES, A3DRange, Configuration, configured, grid, narrow_x3d, scale_clip
from benchmarks.methods.a3d.options import CLIP_MEMORY_MB, parse_gflops_range, parse_pick  # noqa: F401  (also as sweep.*)

# --------------------------------------------------------------------------- clips, decoded once


@dataclass
class MemoryBudget:
    """Bytes still free for clips held in memory."""

    left: int

    def take(self, size: int) -> bool:
        """Reserve ``size`` bytes if they fit."""
        if size > self.left:
            return False
        self.left -= size
        return True


def clip_bytes(sampling: Sampling) -> int:
    """Bytes of one decoded centre clip: float32 ``[3, T, S, S]``."""
    return 4 * 3 * sampling.frames * sampling.size**2


def rebatch(batches: Iterable[tuple[Tensor, Tensor]], size: int) -> Iterator[tuple[Tensor, Tensor]]:
    """``(clips, labels)`` regrouped into batches of ``size`` (the last one smaller), whatever the sizes
    coming in: a loader's batches lose the videos that fail to decode."""
    clips: list[Tensor] = []
    labels: list[Tensor] = []
    held = 0
    for batch, batch_labels in batches:
        clips.append(batch)
        labels.append(batch_labels)
        held += len(batch_labels)
        while held >= size:
            joined, joined_labels = torch.cat(clips), torch.cat(labels)
            yield joined[:size], joined_labels[:size]
            clips, labels, held = [joined[size:]], [joined_labels[size:]], held - size
    if held:
        yield torch.cat(clips), torch.cat(labels)


class Clips:
    """The centre clip of (at most ``videos``, evenly spread) videos of a split with their labels, in
    batches of ``batch_size``: decoded once and held in memory when ``budget`` has room for them twice
    (decoded, and cut to one configuration's input), else decoded again on every pass."""

    def __init__(self, data: str, split: str, classes: tuple[str, ...], sampling: Sampling, batch_size: int,
                 budget: MemoryBudget, videos: int | None = None) -> None:
        index = VideoIndex.build(data, split, classes=classes)
        chosen = evenly_spread(len(index), videos)
        self.split, self.batch_size, self.frames, self.side = split, batch_size, sampling.frames, sampling.size
        self._loader = make_loader(VideoDataset(index, sampling, train=False), batch_size, sampler=chosen)
        self._batches: list[tuple[Tensor, Tensor]] | None = None
        self._cut: tuple[tuple[int, int], list[Tensor]] | None = None  # (input shape, its batches)
        self.count = 0  # clips decoded (known after the first pass when streamed)
        self._index_skipped, self._load_errors = index.skipped, 0
        if budget.take(2 * len(chosen) * clip_bytes(sampling)):
            self._batches = list(self._decode())
            self.count = sum(len(labels) for _, labels in self._batches)
            if not self.count:
                raise ValueError(f"no video of {data} split {split!r} could be decoded")

    @property
    def in_memory(self) -> bool:
        return self._batches is not None

    @property
    def skipped(self) -> dict[str, int]:
        """Videos left out, by reason: those the index skipped, and those that failed to decode."""
        return {**self._index_skipped, "load_error": self._load_errors}

    def _decode(self) -> Iterator[tuple[Tensor, Tensor]]:
        return rebatch(self._decoded(), self.batch_size)

    def _decoded(self) -> Iterator[tuple[Tensor, Tensor]]:
        self._load_errors = 0
        for clips, labels, dropped in self._loader:
            self._load_errors += dropped
            if len(labels):
                yield clips, labels

    def batches(self, configuration: Configuration) -> Iterator[tuple[Tensor, Tensor]]:
        """The batches cut to the configuration's input (``scale_clip``), with their labels."""
        if self._batches is None:
            count = 0
            for clips, labels in self._decode():
                count += len(labels)
                yield scale_clip(clips, configuration), labels
            self.count = count
            return
        yield from zip(self._cut_to(configuration), (labels for _, labels in self._batches))

    def _cut_to(self, configuration: Configuration) -> list[Tensor]:
        """The held batches at the configuration's input, cut once per input (the last one kept)."""
        shape = configuration.input_shape(self.frames, self.side)
        if self._cut is None or self._cut[0] != shape:
            self._cut = None  # free the previous input's copy first
            self._cut = (shape, [scale_clip(batch, configuration) for batch, _ in self._batches])
        return self._cut[1]


# --------------------------------------------------------------------------- costs, counted once


def configuration_params(model: X3D, configuration: Configuration, num_classes: int) -> int:
    """Parameters of the layers a configuration uses: those of an X3D built at its width."""
    with torch.device("meta"):
        narrow = narrow_x3d(model.config, configuration, num_classes)
    return sum(p.numel() for p in narrow.parameters())


class Costs:
    """GFLOPs (fvcore, one clip) and parameters of an A3D model's configurations, each counted once:
    GFLOPs per configuration, parameters per width (they depend on nothing else)."""

    def __init__(self, model: nn.Module, frames: int, side: int, num_classes: int) -> None:
        self.model, self.frames, self.side, self.num_classes = model, frames, side, num_classes
        self._gflops: dict[Configuration, float] = {}
        self._params: dict[float, int] = {}

    def gflops(self, configuration: Configuration) -> float:
        if configuration not in self._gflops:
            frames, side = configuration.input_shape(self.frames, self.side)
            with configured(self.model, configuration):
                self._gflops[configuration] = count_gflops(LogitsOnly(self.model), (1, 3, frames, side, side))
        return self._gflops[configuration]

    def params(self, configuration: Configuration) -> int:
        if configuration.width not in self._params:
            self._params[configuration.width] = configuration_params(x3d_of(self.model), configuration,
                                                                     self.num_classes)
        return self._params[configuration.width]


# --------------------------------------------------------------------------- choosing configurations


def picked(a3d_range: A3DRange, picks: Sequence[str]) -> list[Configuration]:
    """The configurations of the range's grid that ``picks`` name (indices or names), in the order given,
    each once."""
    every = grid(a3d_range)
    chosen: list[Configuration] = []
    for pick in map(parse_pick, picks):
        if isinstance(pick, int):
            if not 0 <= pick < len(every):
                raise ValueError(f"--configs: index {pick} is out of range: range {a3d_range.name} has "
                                 f"{len(every)} configurations, 0-{len(every) - 1}")
            pick = every[pick]
        elif pick not in every:
            raise ValueError(f"--configs: {pick.name} is not a configuration of range {a3d_range.name} (widths "
                             f"{_values(a3d_range.eval_widths)}, sides {_values(a3d_range.spatial)}, frames "
                             f"{_values(a3d_range.temporal)})")
        if pick not in chosen:
            chosen.append(pick)
    if not chosen:
        raise ValueError("--configs: give at least one configuration")
    return chosen


def _values(values: Sequence[float]) -> str:
    return ", ".join(f"{value:g}" for value in values)


def within_gflops(configurations: Sequence[Configuration], costs: Costs,
                  bounds: tuple[float, float]) -> list[Configuration]:
    """The configurations whose GFLOPs per clip lie in ``bounds`` (inclusive); counts every one."""
    low, high = bounds
    counted = {configuration: costs.gflops(configuration)
               for configuration in tqdm(configurations, desc="GFLOPs per configuration", unit="config")}
    kept = [configuration for configuration, gflops in counted.items() if low <= gflops <= high]
    if not kept:
        raise ValueError(f"--gflops: no configuration within {low:g}:{high:g} GFLOPs per clip; these span "
                         f"{min(counted.values()):.4g} to {max(counted.values()):.4g}")
    return kept


# --------------------------------------------------------------------------- the sweep


@torch.no_grad()
def predictions(model: nn.Module, clips: Clips, configuration: Configuration) -> tuple[Tensor, Tensor]:
    """Logits ``[N, classes]`` of every clip cut to the configuration's input, and the labels."""
    logits, labels = [], []
    for batch, batch_labels in clips.batches(configuration):
        logits.append(logits_of(model(batch)).float())
        labels.append(batch_labels)
    return (torch.cat(logits), torch.cat(labels)) if labels else (torch.empty(0, 0), torch.empty(0, dtype=torch.long))


def top1(model: nn.Module, clips: Clips, configuration: Configuration) -> float:
    logits, labels = predictions(model, clips, configuration)
    return 100.0 * int((logits.argmax(1) == labels).sum()) / max(1, len(labels))


def evaluate_configuration(model: nn.Module, configuration: Configuration, calibration: Clips,
                           splits: dict[str, Clips], costs: Costs) -> dict:
    """One configuration: BN recalibrated on ``calibration`` at its input, top-1 on every split, GFLOPs, params."""
    frames, side = configuration.input_shape(costs.frames, costs.side)
    row = {"configuration": configuration.name, "width": configuration.width, "spatial": configuration.spatial,
           "temporal": configuration.temporal, "frames": frames, "side": side,
           "gflops": costs.gflops(configuration), "params": costs.params(configuration),
           "relative_cost_eq2": configuration.relative_cost}
    with configured(model, configuration):
        recompute_batchnorm(model, (batch for batch, _ in calibration.batches(configuration)), model)
        for split, clips in splits.items():
            row[f"{split}_top1"] = top1(model, clips, configuration)
    return row


def by_input(configurations: Sequence[Configuration]) -> list[Configuration]:
    """The configurations grouped by input (side, frames), widths in their order within a group: the
    held clips are cut once per input."""
    return sorted(configurations, key=lambda c: (c.spatial, c.temporal))


def budget_table(rows: Sequence[dict], key: str = "val_top1") -> list[dict]:
    """The configurations that are the best within their own budget: by GFLOPs (then by ``key``,
    best first), each one whose ``key`` beats every cheaper configuration's. GFLOPs and ``key`` both
    increase down the table."""
    table: list[dict] = []
    for row in sorted(rows, key=lambda r: (r["gflops"], -r[key])):
        if not table or (row[key] > table[-1][key] and row["gflops"] > table[-1]["gflops"]):
            table.append(row)
    return table


def select(table: Sequence[dict], budget: float) -> dict:
    """The configuration of the budget table for a budget of ``budget`` GFLOPs per clip."""
    within = [row for row in table if row["gflops"] <= budget]
    if not within:
        raise ValueError(f"no configuration fits {budget} GFLOPs; the cheapest needs {table[0]['gflops']:.4g}")
    return within[-1]


def load_a3d(checkpoint: str | Path) -> Trained:
    """An A3D checkpoint's model (raw weights: BatchNorm is recalibrated per configuration), in eval mode."""
    trained = load_trained(checkpoint, "raw")
    if trained.config.method != "a3d":
        raise ValueError(f"{checkpoint} was trained with --method {trained.config.method}, not a3d")
    trained.model.eval()
    return trained


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """torch's intra-op threads set to ``threads`` for the block (None: as they are)."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def sweep(checkpoint: str | Path, data: str, store: Store, *, configurations: Sequence[Configuration] | None = None,
          picks: Sequence[str] | None = None, gflops: tuple[float, float] | None = None,
          splits: Sequence[str] = ("val", "test"), calibration_videos: int = 200, batch_size: int = 32,
          clip_memory_mb: float = CLIP_MEMORY_MB, threads: int | None = None) -> dict:
    """Evaluate an A3D checkpoint at every configuration of its range (or at ``configurations``, or at
    those of ``picks``, then only those within ``gflops``) and store the sweep with its budget table
    (selected on the first split); returns the record."""
    with torch_threads(threads):
        return _sweep(checkpoint, data, store, configurations, picks, gflops, splits, calibration_videos,
                      batch_size, clip_memory_mb)


def _sweep(checkpoint: str | Path, data: str, store: Store, configurations: Sequence[Configuration] | None,
           picks: Sequence[str] | None, gflops: tuple[float, float] | None, splits: Sequence[str],
           calibration_videos: int, batch_size: int, clip_memory_mb: float) -> dict:
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    trained = load_a3d(checkpoint)
    model, classes = trained.model, trained.classes
    a3d_range = A3D_RANGES[trained.config.method_options["range"]]
    every = grid(a3d_range)
    configurations = list(configurations or (picked(a3d_range, picks) if picks else every))
    sampling = eval_sampling(trained.spec, model, views=False)
    costs = Costs(model, sampling.frames, sampling.size, len(classes))
    if gflops is not None:
        configurations = within_gflops(configurations, costs, gflops)

    budget = MemoryBudget(int(clip_memory_mb * 2**20))
    calibration = Clips(data, "train", classes, sampling, batch_size, budget, calibration_videos)
    decoded = {split: Clips(data, split, classes, sampling, batch_size, budget) for split in splits}
    evaluated = {configuration: evaluate_configuration(model, configuration, calibration, decoded, costs)
                 for configuration in tqdm(by_input(configurations), desc="A3D configurations", unit="config")}
    rows = [{"index": every.index(c) if c in every else None, **evaluated[c]} for c in configurations]
    choose_on = f"{splits[0]}_top1"
    record = {
        "experiment": "a3d-sweep",
        "row": trained.spec.row,
        "name": trained.spec.name,
        "a3d_range": a3d_range.name,
        "checkpoint": str(Path(checkpoint).resolve()),
        "checkpoint_sha256": file_sha256(checkpoint),
        "data_root": str(Path(data).resolve()),
        "videos": {split: clips.count for split, clips in decoded.items()},
        "calibration_videos": calibration.count,
        "clips_in_memory": {"calibration": calibration.in_memory,
                            **{split: clips.in_memory for split, clips in decoded.items()}},
        "input": {"frames": sampling.frames, "side": sampling.size},
        "complete": set(every) <= set(configurations),
        "selection": {"configs": list(picks) if picks else None,
                      "gflops": [bound if math.isfinite(bound) else None for bound in gflops] if gflops else None},
        "selected_on": choose_on,
        "configurations": rows,
        "budget_table": budget_table(rows, choose_on),
        # the sweep's own timing, with what it ran under: the only source of its timings in the docs
        "seconds": round(time.perf_counter() - started, 2),
        "torch_threads": torch.get_num_threads(),
        "load_average": {"start": load_before, "end": os.getloadavg()[0]},
        **provenance("cpu"),
    }
    path = write_json(store.new_run_path("a3d-sweep", "a3d"), record)
    record["path"] = str(path)
    return record
