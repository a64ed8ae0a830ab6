"""The configuration-budget table of a trained A3D model (``eval --method a3d --sweep``; seed 002, section 3.3).

Every configuration of the run's range (``benchmarks.methods.a3d.model.grid``: width x side x frames) is evaluated
the same way: the model is set to the configuration's width, its BatchNorm statistics are recomputed
on ``calibration_videos`` training clips cut to the configuration's input (the paper's BN
calibration), and it classifies the centre clip of every video of the validation and the test split,
cut to that input (``benchmarks.methods.a3d.model.scale_clip`` of the row's evaluation clip). Its GFLOPs are
fvcore's count of the sliced network on one such clip; its parameters are those of the layers it
uses. The clips are decoded once and kept in memory (small datasets; the CPU proxy).

The budget table keeps, in order of GFLOPs, each configuration whose validation top-1 is higher than
that of every cheaper one: for any budget, the best configuration within it on validation data is
its last row at or below the budget (:func:`select`). Test top-1 is reported next to it, never used
to choose. The sweep is stored as ``runs/a3d/a3d-sweep-<time>.json`` with provenance.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm import tqdm

from baselines.slimmable import recompute_batchnorm
from baselines.x3d import X3D, x3d_of
from benchmarks.core.checkpoint import file_sha256
from benchmarks.core.counting import LogitsOnly, count_gflops
from benchmarks.core.store import Store, provenance, write_json
from benchmarks.data.videos import VideoDataset, VideoIndex, evenly_spread, make_loader
from benchmarks.engine.method import logits_of
from benchmarks.engine.runs import eval_sampling, load_trained
from benchmarks.methods.a3d.model import A3D_RANGES, Configuration, configured, grid, narrow_x3d, scale_clip


def decoded_clips(data: str, split: str, classes: tuple[str, ...], sampling, videos: int | None = None,
                  batch_size: int = 32) -> tuple[Tensor, Tensor]:
    """The centre clip of (at most ``videos``, evenly spread) videos of a split, ``[N, 3, T, S, S]``, and labels."""
    index = VideoIndex.build(data, split, classes=classes)
    clips, labels = [], []
    for batch, batch_labels, _ in make_loader(VideoDataset(index, sampling, train=False), batch_size,
                                              sampler=evenly_spread(len(index), videos)):
        if len(batch_labels):
            clips.append(batch)
            labels.append(batch_labels)
    return torch.cat(clips), torch.cat(labels)


def configuration_params(model: X3D, configuration: Configuration, num_classes: int) -> int:
    """Parameters of the layers a configuration uses: those of an X3D built at its width."""
    with torch.device("meta"):
        narrow = narrow_x3d(model.config, configuration, num_classes)
    return sum(p.numel() for p in narrow.parameters())


@torch.no_grad()
def top1(model: nn.Module, clips: Tensor, labels: Tensor, configuration: Configuration, batch_size: int) -> float:
    correct = 0
    for start in range(0, len(clips), batch_size):
        logits = logits_of(model(scale_clip(clips[start:start + batch_size], configuration)))
        correct += int((logits.argmax(1) == labels[start:start + batch_size]).sum())
    return 100.0 * correct / max(1, len(clips))


def evaluate_configuration(model: nn.Module, configuration: Configuration, calibration: Tensor,
                           splits: dict[str, tuple[Tensor, Tensor]], batch_size: int, num_classes: int) -> dict:
    """One configuration: BN recalibrated on ``calibration`` at its input, top-1 on every split, GFLOPs, params."""
    net = x3d_of(model)
    with configured(model, configuration):
        batches = (scale_clip(calibration[i:i + batch_size], configuration)
                   for i in range(0, len(calibration), batch_size))
        recompute_batchnorm(model, batches, model)
        frames, side = configuration.input_shape(calibration.shape[2], calibration.shape[-1])
        row = {"configuration": configuration.name, "width": configuration.width, "spatial": configuration.spatial,
               "temporal": configuration.temporal, "frames": frames, "side": side,
               "gflops": count_gflops(LogitsOnly(model), (1, 3, frames, side, side)),
               "params": configuration_params(net, configuration, num_classes),
               "relative_cost_eq2": configuration.relative_cost}
        for split, (clips, labels) in splits.items():
            row[f"{split}_top1"] = top1(model, clips, labels, configuration, batch_size)
    return row


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


def sweep(checkpoint: str | Path, data: str, store: Store, *, configurations: Sequence[Configuration] | None = None,
          splits: Sequence[str] = ("val", "test"), calibration_videos: int = 200, batch_size: int = 32) -> dict:
    """Evaluate an A3D checkpoint at every configuration of its range (or at ``configurations``) and
    store the sweep with its budget table (selected on the first split); returns the record."""
    trained = load_trained(checkpoint, "raw")
    if trained.config.method != "a3d":
        raise ValueError(f"{checkpoint} was trained with --method {trained.config.method}, not a3d")
    model, classes = trained.model.eval(), trained.classes
    a3d_range = A3D_RANGES[trained.config.method_options["range"]]
    configurations = list(configurations or grid(a3d_range))
    sampling = eval_sampling(trained.spec, model, views=False)
    calibration, _ = decoded_clips(data, "train", classes, sampling, calibration_videos, batch_size)
    decoded = {split: decoded_clips(data, split, classes, sampling, batch_size=batch_size) for split in splits}
    rows = [evaluate_configuration(model, configuration, calibration, decoded, batch_size, len(classes))
            for configuration in tqdm(configurations, desc="A3D configurations", unit="config")]
    choose_on = f"{splits[0]}_top1"
    record = {
        "experiment": "a3d-sweep",
        "row": trained.spec.row,
        "name": trained.spec.name,
        "a3d_range": a3d_range.name,
        "checkpoint": str(Path(checkpoint).resolve()),
        "checkpoint_sha256": file_sha256(checkpoint),
        "data_root": str(Path(data).resolve()),
        "videos": {split: len(labels) for split, (_, labels) in decoded.items()},
        "calibration_videos": len(calibration),
        "input": {"frames": sampling.frames, "side": sampling.size},
        "selected_on": choose_on,
        "configurations": rows,
        "budget_table": budget_table(rows, choose_on),
        **provenance("cpu"),
    }
    path = write_json(store.new_run_path("a3d-sweep", "a3d"), record)
    record["path"] = str(path)
    return record
