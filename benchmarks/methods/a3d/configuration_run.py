"""One configuration of an A3D model evaluated as an eval run (``eval --config WxSxT`` / ``--budget GFLOPS``).

The configuration is evaluated as the sweep evaluates it (:mod:`.sweep`: BatchNorm recalibrated on
training clips cut to its input, then the centre clip of every video of the split, cut to it) and
stored as any evaluation is, ``runs/<row>-<time>.json`` with every ``store.RUN_FIELDS`` field. Its
``setting`` is the configuration's name, which is how ``eval``'s check for a stored run and Table 1
(default setting only) tell it from an evaluation of the model as trained. The record's ``a3d`` says
which configuration ran, at which input, on how many calibration clips (and for ``--budget`` the budget).
"""

from __future__ import annotations

from pathlib import Path

from baselines.slimmable import recompute_batchnorm
from benchmarks.core.checkpoint import file_sha256
from benchmarks.core.store import Store, provenance, write_json
from benchmarks.engine.evaluate import data_classes, dataset_name
from benchmarks.engine.runs import eval_sampling
from benchmarks.methods.a3d.model import Configuration, configured
from benchmarks.methods.a3d.sweep import CLIP_MEMORY_MB, Clips, Costs, MemoryBudget, load_a3d, predictions


def describe(configuration: Configuration, frames: int, side: int, calibration: int) -> str:
    return (f"A3D configuration {configuration.name}: the centre clip of each video cut to {frames} frames x {side} "
            f"px, BatchNorm statistics recomputed on {calibration} training clips at that input; top-1 over videos")


def evaluate_configuration_run(checkpoint: str | Path, data: str, store: Store, configuration: Configuration, *,
                               split: str = "val", calibration_videos: int = 200, batch_size: int = 32,
                               clip_memory_mb: float = CLIP_MEMORY_MB, dataset: str | None = None,
                               budget: float | None = None) -> dict:
    """Evaluate one configuration of an A3D checkpoint on ``split`` and store it as an eval run;
    returns the record (with its ``path``)."""
    trained = load_a3d(checkpoint)
    spec, model, classes = trained.spec, trained.model, trained.classes
    sampling = eval_sampling(spec, model, views=False)
    costs = Costs(model, sampling.frames, sampling.size, len(classes))
    gflops, params = costs.gflops(configuration), costs.params(configuration)
    memory = MemoryBudget(int(clip_memory_mb * 2**20))
    calibration = Clips(data, "train", classes, sampling, batch_size, memory, calibration_videos)
    clips = Clips(data, split, classes, sampling, batch_size, memory)
    with configured(model, configuration):
        recompute_batchnorm(model, (batch for batch, _ in calibration.batches(configuration)), model)
        logits, labels = predictions(model, clips, configuration)
    if not len(labels):
        raise ValueError(f"no video of {data} split {split!r} could be evaluated")
    top5_k = min(5, len(classes))
    frames, side = configuration.input_shape(sampling.frames, sampling.size)
    record = {
        "row": spec.row,
        "name": spec.name,
        "model": spec.model,
        "grw": spec.grw is not None and spec.grw.weight != 0,
        "protocol": "suite",
        "protocol_description": describe(configuration, frames, side, calibration.count),
        "accuracy_unit": "video",
        "top1": 100.0 * int((logits.argmax(1) == labels).sum()) / len(labels),
        "top5": 100.0 * int((logits.topk(top5_k, dim=1).indices == labels[:, None]).any(1).sum()) / len(labels),
        "top5_k": top5_k,
        "dataset": dataset_name(data, data_classes(data, split, None), dataset),
        "data_root": str(Path(data).resolve()),
        "split": split,
        "classes": len(classes),
        "videos_evaluated": len(labels),
        "videos_skipped": clips.skipped,
        "input": {"frames": frames, "side": side, "cut_from": {"frames": sampling.frames, "side": sampling.size,
                                                               "fps": sampling.fps}},
        "mode": "single-clip",
        "method": "a3d",
        "setting": configuration.name,
        "a3d": {"configuration": configuration.name, "width": configuration.width, "spatial": configuration.spatial,
                "temporal": configuration.temporal, "calibration_videos": calibration.count,
                **({"budget": budget} if budget is not None else {})},
        "weights": trained.weights,
        "deviations": trained.deviations,
        "gflops_per_view": gflops,
        "gflops": gflops,
        "params": params,
        "device": "cpu",
        "checkpoint": str(Path(checkpoint).resolve()),
        "checkpoint_sha256": file_sha256(checkpoint),
        "trained_epochs": trained.checkpoint["progress"]["epoch"],
        "checkpoint_complete": trained.checkpoint["complete"],
        **provenance("cpu"),
    }
    record["videos_skipped_total"] = sum(record["videos_skipped"].values())
    path = write_json(store.new_run_path(str(spec.row)), record)
    record["path"] = str(path)
    return record

