"""Run a list of tasks as a SLURM job array, as local processes, or in this process.

Generic: a task is ``fn(item)``; the caller names each task and stores each result as it arrives::

    report = launch(measure, rows, names=[row.name for row in rows], mode="slurm",
                    options=SlurmOptions(time="2:00:00"), on_result=save, wait=True)
    return 0 if report.ok else 1

The command-line options (``--launch``, ``--partition``, ``--time``, ...) are ``benchmarks.commands.launching``.

``slurm`` submits one array through ``submitit`` (one array task per item, logs and pickles in
``options.log_dir``), ``local`` runs the same array as local processes (submitit's local executor),
and ``none`` calls ``fn`` sequentially here, with the same reporting. Long tasks derive from
:class:`ResumableTask` to survive a time limit or preemption.
"""

from __future__ import annotations

import shutil
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import FailedJobError
from submitit.helpers import Checkpointable, DelayedSubmission
from tqdm import tqdm

from benchmarks.core.cli import user_error
from benchmarks.engine.launch_options import (  # noqa: F401  (what a launch is asked for, also as launch.*)
    DEFAULT_LOG_DIR,
    MODES,
    OnResult,
    SlurmOptions,
    parse_sbatch_options,
    parse_time_minutes,
)

POLL_S = 1.0  # how often to look for finished tasks; submitit itself rate-limits sacct calls


class ResumableTask(Checkpointable):
    """Base for tasks that outlive a time limit or preemption by checkpointing and requeueing.

    Implement ``__call__(item)`` to resume from what ``save_checkpoint(item)`` wrote, if anything,
    and ``save_checkpoint(item)`` to write the progress so far (e.g. ``torch.save`` of the model,
    optimizer and epoch). When SLURM signals the job (``signal_delay_s`` before its time limit, or
    on preemption), submitit interrupts ``__call__`` in the job's main thread and calls
    :meth:`checkpoint`; the task is then requeued with the same item (submitit allows three
    time-outs per task; preemptions do not count).

    The requeued task is this object, pickled: attributes set while running (a model, a data
    loader) go with it unless ``__getstate__`` leaves them out. Keep progress on disk instead.
    """

    def __call__(self, item: Any) -> Any:
        raise NotImplementedError

    def save_checkpoint(self, item: Any) -> None:
        raise NotImplementedError

    def checkpoint(self, item: Any) -> DelayedSubmission:
        self.save_checkpoint(item)
        return super().checkpoint(item)


@dataclass
class TaskRecord:
    """One task of a launch: its job id, where its logs are and how it ended."""

    name: str
    job_id: str
    log_dir: Path | None = None
    stderr: Path | None = None
    status: str = "submitted"  # submitted -> succeeded | failed
    error: str | None = None
    job: submitit.Job | None = field(default=None, repr=False, compare=False)


@dataclass
class LaunchReport:
    mode: str
    tasks: list[TaskRecord]

    @property
    def succeeded(self) -> list[str]:
        return [t.name for t in self.tasks if t.status == "succeeded"]

    @property
    def failed(self) -> list[str]:
        return [t.name for t in self.tasks if t.status == "failed"]

    @property
    def ok(self) -> bool:
        """Every task finished and succeeded."""
        return all(t.status == "succeeded" for t in self.tasks)

    @property
    def job_ids(self) -> dict[str, str]:
        return {t.name: t.job_id for t in self.tasks}

    @property
    def stderr_paths(self) -> dict[str, Path | None]:
        return {t.name: t.stderr for t in self.tasks}

    def summary(self) -> str:
        lines = [f"{len(self.succeeded)} succeeded, {len(self.failed)} failed of {len(self.tasks)} tasks"]
        lines += [f"  FAILED {t.name} (job {t.job_id}): {t.error}; log: {t.stderr}"
                  for t in self.tasks if t.status == "failed"]
        return "\n".join(lines)


def launch(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    names: Sequence[str],
    mode: str,
    options: SlurmOptions | None = None,
    on_result: OnResult | None = None,
    wait: bool = True,
    job_name: str = "grw-bench",
) -> LaunchReport:
    """Run ``fn(item)`` for every item and call ``on_result(name, result)`` as each one succeeds.

    Failed tasks are reported, not raised: check ``report.ok``. With ``wait=False`` (slurm and
    local only) the tasks are submitted and the report comes back at once; pass it to
    :func:`wait_for_results` later to collect them.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if len(items) != len(names):
        raise ValueError(f"got {len(items)} items but {len(names)} names")
    if len(set(names)) != len(names):
        raise ValueError(f"task names must be unique, got {list(names)}")
    if mode == "none":
        if not wait:
            raise ValueError("not waiting (--no-wait) needs mode slurm or local: mode none runs here")
        return _run_in_process(fn, items, names, on_result)
    report = submit(fn, items, names, mode, options or SlurmOptions(), job_name)
    return wait_for_results(report, on_result) if wait else report


def submit(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    names: Sequence[str],
    mode: str,
    options: SlurmOptions,
    job_name: str = "grw-bench",
) -> LaunchReport:
    """Submit one array (``mode`` slurm or local) and print each task's job id and log folder."""
    if mode == "slurm" and shutil.which("sbatch") is None:
        raise RuntimeError("sbatch not found: run on a SLURM cluster (see slurm/local/README.md) "
                           "or use --launch local / none")
    if not items:
        return LaunchReport(mode, [])
    executor = submitit.AutoExecutor(folder=options.log_dir, cluster=mode)
    executor.update_parameters(name=job_name, **options.executor_parameters())
    jobs = executor.map_array(fn, list(items))
    tasks = [TaskRecord(name, job.job_id, job.paths.folder, job.paths.stderr, job=job)
             for name, job in zip(names, jobs)]
    print(f"submitted {len(tasks)} task(s) ({mode}), logs in {options.log_dir}")
    for task in tasks:
        print(f"  {task.name}: job {task.job_id}")
    return LaunchReport(mode, tasks)


def wait_for_results(report: LaunchReport, on_result: OnResult | None = None) -> LaunchReport:
    """Wait for the submitted tasks, calling ``on_result`` as each succeeds; report the failures."""
    pending = {id(t.job): t for t in report.tasks if t.status == "submitted"}
    jobs = [t.job for t in pending.values()]
    try:
        with tqdm(total=len(jobs), desc=f"{report.mode} tasks", unit="task") as progress:
            for job in submitit.helpers.as_completed(jobs, poll_frequency=POLL_S):
                _collect(pending[id(job)], on_result)
                progress.update()
    except KeyboardInterrupt:
        ids = " ".join(t.job_id for t in pending.values() if t.status == "submitted")
        cancel = "scancel" if report.mode == "slurm" else "kill"
        print(f"stopped waiting; unfinished tasks go on running (stop them with: {cancel} {ids})")
        raise
    print(report.summary())
    return report


def _collect(task: TaskRecord, on_result: OnResult | None) -> None:
    try:
        result = task.job.results()[0]  # task 0 of the job: the main process
    except Exception as error:  # the task raised, was cancelled, or ran out of time
        _record_failure(task, _error_line(error))
        tqdm.write(f"FAILED {task.name} (job {task.job_id}): {task.error}; log: {task.stderr}")
        return
    task.status = "succeeded"
    if on_result is not None:
        on_result(task.name, result)


def _run_in_process(fn: Callable[[Any], Any], items: Sequence[Any], names: Sequence[str],
                    on_result: OnResult | None) -> LaunchReport:
    report = LaunchReport("none", [TaskRecord(name, job_id="in-process") for name in names])
    for task, item in zip(tqdm(report.tasks, desc="tasks", unit="task"), items):
        try:
            result = fn(item)
        except Exception as error:
            if user_error(error) is not None:
                raise  # the user's problem (bad data, options, an unwritable output): the command reports it
            traceback.print_exc()
            _record_failure(task, f"{type(error).__name__}: {error}")
            tqdm.write(f"FAILED {task.name}: {task.error}")
            continue
        task.status = "succeeded"
        if on_result is not None:
            on_result(task.name, result)
    print(report.summary())
    return report


def _record_failure(task: TaskRecord, error: str) -> None:
    task.status, task.error = "failed", error


def _error_line(error: Exception) -> str:
    """One line saying why a task failed.

    submitit's FailedJobError embeds the task's traceback between two dashed rules; its last line
    is the task's exception. Other errors (a cancelled or killed task) say it on their first line.
    """
    text = str(error)
    parts = text.split("-" * 22)
    if isinstance(error, FailedJobError) and len(parts) >= 3:
        lines = parts[1].strip().splitlines()
        return lines[-1] if lines else text
    return f"{type(error).__name__}: {text.strip().splitlines()[0] if text.strip() else ''}"
