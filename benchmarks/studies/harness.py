"""The shared study harness: what every CPU study (the proxy, the warm-up, the multigrid, A3D and
VA-RED2 studies) does the same way.

- :data:`CPU_RUN` (``RunConfig(..., **CPU_RUN)``): how a study's training run runs on CPU: no
  validation (the val split is for choosing settings, not part of a run's budget), decoding in the
  training process with each training video decoded once and kept in memory, quiet logs;
  :func:`cpu_settings` with decoding processes.
- :func:`training_seconds`: a trained run's training time, the sum of its epochs' (data loading
  included, evaluation excluded).
- :func:`run_jobs` then :func:`store_summary`: the runs side by side in their own processes, then the
  summary stored with provenance as ``runs/<subfolder>/<name>-<time>.json``, the study's outputs
  written from it, and the proxy's figure redrawn when it draws this study
  (:data:`benchmarks.studies.reports.PROXY_OVERLAYS`); :func:`announce` prints the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from benchmarks.core.processes import map_in_processes
from benchmarks.core.store import Store, provenance, write_json
from benchmarks.studies.proxy_report import redraw_latest
from benchmarks.studies.reports import PROXY_OVERLAYS

CPU_RUN: dict[str, Any] = {"validate": False, "num_workers": 0, "cache_videos": True, "device": "cpu",
                           "log_every": 10_000}


def cpu_settings(num_workers: int = 0) -> dict[str, Any]:
    """:data:`CPU_RUN` with ``num_workers`` decoding processes (the videos cached only without any)."""
    return {**CPU_RUN, "num_workers": num_workers, "cache_videos": num_workers == 0}


def training_seconds(summary: dict) -> float:
    """The training time of a run (``train``'s summary): the sum of its epochs' times."""
    return sum(epoch["time_s"] for epoch in summary["history"])


def run_jobs(function: Callable[..., Any], jobs: Iterable[tuple], processes: int, description: str) -> list:
    """``function(*job)`` for every job, ``processes`` at a time in their own processes (one torch thread
    each), results in the jobs' order."""
    return map_in_processes(function, list(jobs), processes, description)


def store_summary(store: Store, name: str, subfolder: str, fields: dict, runs: list, started: float,
                  write_outputs: Callable[[dict, Path], list[Path]] | None = None) -> dict:
    """The study's summary (``fields``, the ``runs``, the wall time since ``started``, provenance) stored as
    ``runs/<subfolder>/<name>-<time>.json`` (``summary["path"]``); then its outputs written from it and,
    if the proxy's figure draws this study, the proxy's outputs again (``summary["outputs"]``)."""
    summary = {**fields, "runs": runs, "wall_time_s": round(time.perf_counter() - started, 1), **provenance("cpu")}
    summary["path"] = str(write_json(store.new_run_path(name, subfolder), summary))
    outputs = list(write_outputs(summary, store.root)) if write_outputs is not None else []
    if name in PROXY_OVERLAYS:
        outputs += redraw_latest(store)
    summary["outputs"] = [str(path) for path in outputs]
    return summary


def announce(summary: dict, result: str) -> int:
    """Print a study's result and the files it wrote; a study command's exit status."""
    print(result)
    print("wrote " + ", ".join(summary["outputs"]) + f" and {summary['path']}")
    return 0
