"""A3D as a training method (``train --method a3d``) and its own evaluations (``eval --sweep|--config|--budget``).

The X3D is made slimmable and trained with the full network and two sampled sub-networks per step
(CE + the distillation of Eq. 3; :mod:`.model`). It is evaluated as trained at the full configuration; every
other configuration is evaluated by the sweep (:mod:`.sweep`), which recomputes BatchNorm statistics per
configuration, and one configuration (``--config``, ``--budget``) the same way, stored as an eval run
(:mod:`.configuration_run`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from torch import Tensor, nn

from baselines.slimmable import make_slimmable
from baselines.x3d import x3d_of
from benchmarks.core.checkpoint import file_sha256
from benchmarks.core.store import Store, read_json
from benchmarks.engine.method import Method, logits_of
from benchmarks.methods.a3d.configuration_run import evaluate_configuration_run
from benchmarks.methods.a3d.model import Configuration, a3d_loss
from benchmarks.methods.a3d.options import A3D_RANGES, A3DEvalOptions, A3DOptions, parse_gflops_range
from benchmarks.methods.a3d.sweep import select, sweep, torch_threads
from benchmarks.table1.specs import RowSpec


class A3DMethod(Method):
    """A3D (seed 002): one adaptive X3D over width x side x frames."""

    name: ClassVar[str] = "a3d"
    terms: ClassVar[tuple[str, ...]] = ("loss", "ce", "distill")
    Options: ClassVar[type] = A3DOptions
    EvalOptions: ClassVar[type] = A3DEvalOptions
    legacy_fields: ClassVar[dict[str, str]] = {"a3d_range": "range"}

    @property
    def range(self):
        return A3D_RANGES[self.options.range]

    def prepare(self, model: nn.Module, spec: RowSpec) -> nn.Module:
        try:
            make_slimmable(x3d_of(model))
        except ValueError as error:
            raise ValueError(f"--method a3d needs an X3D row; row {spec.row} ({spec.name}) is {spec.model}") from error
        return model

    def loss(self, model: nn.Module, videos: Tensor, labels: Tensor,
             criterion: Callable[[Tensor, Tensor], Tensor]) -> tuple[Tensor, dict[str, float]]:
        loss, terms, _ = a3d_loss(model, videos, labels, criterion, self.range, logits_of)
        return loss, terms

    def evaluate(self, options: A3DEvalOptions, config, store: Store) -> dict:
        """``--sweep``, ``--config`` or ``--budget`` for one checkpoint (``config``: an ``EvalConfig``)."""
        if not options:
            raise ValueError("give --sweep, --config or --budget: A3D's other eval flags only change how they run")
        if options.sweep:
            record = sweep(config.checkpoint, config.data, store, picks=options.configs,
                           gflops=parse_gflops_range(options.gflops) if options.gflops is not None else None,
                           calibration_videos=options.calibration_videos, batch_size=config.batch_size,
                           clip_memory_mb=options.clip_memory_mb, threads=options.threads)
            return {**record, "table": sweep_table(record)}
        configuration = (Configuration.parse(options.config) if options.config is not None
                         else stored_choice(config.checkpoint, options.budget, store))
        with torch_threads(options.threads):
            record = evaluate_configuration_run(
                config.checkpoint, config.data, store, configuration, split=config.split,
                calibration_videos=options.calibration_videos, batch_size=config.batch_size,
                clip_memory_mb=options.clip_memory_mb, dataset=config.dataset_name, budget=options.budget)
        row = {"configuration": configuration.name, "frames": record["input"]["frames"],
               "side": record["input"]["side"], "gflops": record["gflops"], "params": record["params"],
               f"{config.split}_top1": record["top1"], f"{config.split}_top5": record["top5"],
               "videos": record["videos_evaluated"]}
        return {**record, "table": [row]}


def sweep_table(record: dict) -> list[dict]:
    """The rows to print of a sweep: its budget table, or every row of a subset."""
    rows = record["budget_table"] if record["complete"] else record["configurations"]
    return [{key: row[key] for key in ("index", "configuration", "frames", "side", "gflops", "params",
                                       *(k for k in row if k.endswith("_top1")))} for row in rows]

def stored_choice(checkpoint: str, budget: float, store: Store) -> Configuration:
    """The configuration the latest complete stored sweep of ``checkpoint`` (same sha256) chose for ``budget``."""
    sha256 = file_sha256(checkpoint)
    sweeps = sorted((read_json(path) for path in (store.runs / "a3d").glob("a3d-sweep-*.json")),
                    key=lambda record: record["date"])
    mine = [record for record in sweeps if record["checkpoint_sha256"] == sha256 and record.get("budget_table")
            and record.get("complete", len(record["configurations"]) > 1)]  # sweeps stored before "complete"
    if not mine:
        raise ValueError(f"no complete stored sweep of {checkpoint}: run eval --sweep first (without --configs "
                         "or --gflops)")
    row = select(mine[-1]["budget_table"], budget)
    return Configuration(row["width"], row["spatial"], row["temporal"])
