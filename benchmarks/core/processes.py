"""Independent CPU runs (one per seed and model) side by side, one torch thread each, with a progress bar.

On a small machine a run of these small models does not use more than one core well; two runs in two
processes do. ``spawn``, not ``fork``: the parent has already run torch, and its thread pools do not
survive a fork.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any, TypeVar

import torch
from tqdm import tqdm

R = TypeVar("R")


def _one_thread(fn: Callable[..., R], *args: Any) -> R:
    torch.set_num_threads(1)
    return fn(*args)


def map_in_processes(fn: Callable[..., R], jobs: Sequence[tuple], processes: int, desc: str) -> list[R]:
    """``[fn(*job) for job in jobs]``, in ``processes`` spawned processes (in this one when 1), in job
    order. ``fn`` and its arguments must be picklable: a module-level function and plain data."""
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    with tqdm(total=len(jobs), desc=desc, unit="run", file=sys.stderr) as bar:
        if processes == 1 or len(jobs) <= 1:
            results = []
            for job in jobs:
                results.append(_one_thread(fn, *job))
                bar.update()
            return results
        context = get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(processes, len(jobs)), mp_context=context) as pool:
            futures = [pool.submit(_one_thread, fn, *job) for job in jobs]
            for future in as_completed(futures):
                if future.exception() is not None:  # a failed run stops the experiment, with its traceback
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise future.exception()
                bar.update()
            return [future.result() for future in futures]
