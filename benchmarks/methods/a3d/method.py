"""A3D as a training method (``train --method a3d``) and its own evaluations (``eval --sweep|--config|--budget``).

The X3D is made slimmable and trained with the full network and two sampled sub-networks per step
(CE + the distillation of Eq. 3; :mod:`.model`). It is evaluated as trained at the full configuration; every
other configuration is evaluated by the sweep (:mod:`.sweep`), which recomputes BatchNorm statistics per
configuration, and one configuration (``--config``, ``--budget``) the same way, stored as an eval run
(:mod:`.configuration_run`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from baselines.slimmable import make_slimmable
from baselines.x3d import x3d_of
from benchmarks.core.checkpoint import file_sha256
from benchmarks.core.options import option
from benchmarks.core.store import Store, read_json
from benchmarks.engine.method import Method, logits_of
from benchmarks.methods.a3d.configuration_run import evaluate_configuration_run
from benchmarks.methods.a3d.model import A3D_RANGES, Configuration, a3d_loss
from benchmarks.methods.a3d.sweep import (
    CLIP_MEMORY_MB,
    parse_gflops_range,
    parse_pick,
    select,
    sweep,
    torch_threads,
)
from benchmarks.table1.specs import RowSpec


@dataclass(frozen=True)
class A3DOptions:
    range: str = option("[0.016,1]", "the paper's computation range; [0.016,1]: width ~ U[0.5, 1], side x "
                        "{0.57, 0.71, 0.86, 1}, frames x {0.25, 0.5, 0.75, 1}; [0.06,1]: U[0.63, 1], "
                        "{0.63, 0.8, 1}, {0.4, 0.63, 1}", flag="--a3d-range", choices=A3D_RANGES)


@dataclass(frozen=True)
class A3DEvalOptions:
    sweep: bool = option(False, "every width x side x frames configuration of the run's range, BatchNorm "
                         "recalibrated per configuration, on the val and test splits; stores the configuration-budget "
                         "table (chosen on val) in runs/a3d/")
    config: str | None = option(None, "one configuration, e.g. 0.5x0.71x0.25 (gamma_w x gamma_s x gamma_t), on "
                                "--split", metavar="WxSxT")
    budget: float | None = option(None, "the configuration the latest complete stored sweep of this checkpoint "
                                  "chose for this many GFLOPs per clip, evaluated on --split", metavar="GFLOPS")
    calibration_videos: int = option(200, "training videos the BatchNorm statistics of a configuration are "
                                     "recomputed on")
    configs: tuple[str, ...] | None = option(None, "with --sweep: only these configurations, comma-separated: "
                                            "indices into the range's grid (0-95 for [0.016,1]; a sweep's index "
                                            "column) or names such as 0.5x0.71x0.25", metavar="I|WxSxT,...")
    gflops: str | None = option(None, "with --sweep: only the configurations (of --configs, else of the range) whose "
                                "GFLOPs per clip lie in LO:HI; either side may be left empty (0.01: or :0.02). "
                                "Each one's GFLOPs are counted first", metavar="LO:HI")
    threads: int | None = option(None, "torch CPU threads while evaluating (default: as they are, one per core); on "
                                 "a small machine that other jobs share, 1 avoids threads waiting on each other "
                                 "(docs/methods/a3d.md)")
    clip_memory_mb: float = option(CLIP_MEMORY_MB, "MiB for decoded clips held in memory across configurations "
                                   "(each split counted twice: decoded and cut to one input); a split beyond it "
                                   "is decoded again for every configuration", metavar="MIB")

    def __post_init__(self) -> None:
        if sum((self.sweep, self.config is not None, self.budget is not None)) > 1:
            raise ValueError("give one of --sweep, --config and --budget")
        if self.clip_memory_mb < 0:
            raise ValueError(f"--clip-memory-mb must be >= 0, got {self.clip_memory_mb:g}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {self.threads}")
        if not self.sweep and (self.configs is not None or self.gflops is not None):
            raise ValueError("--configs and --gflops choose the configurations of --sweep")
        if self.configs is not None:
            if not self.configs:
                raise ValueError("--configs: give at least one configuration")
            for pick in self.configs:
                parse_pick(pick)  # the form here, the range once the checkpoint is read
        if self.gflops is not None:
            parse_gflops_range(self.gflops)

    def __bool__(self) -> bool:
        """Whether an evaluation of A3D's own was asked for."""
        return self.sweep or self.config is not None or self.budget is not None


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
