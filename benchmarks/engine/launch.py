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

import math
import re
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
from benchmarks.core.paths import REPO_ROOT

MODES = ("slurm", "local", "none")
DEFAULT_LOG_DIR = REPO_ROOT / "runs_local" / "submitit"
POLL_S = 1.0  # how often to look for finished tasks; submitit itself rate-limits sacct calls

OnResult = Callable[[str, Any], None]


@dataclass
class SlurmOptions:
    """Resources of each array task, and where submitit keeps logs and pickles.

    ``time`` is minutes (``90`` or ``"90"``) or ``"[D-]HH:MM:SS"``. ``tasks_per_node`` defaults to
    one process per GPU (one without GPUs). SLURM sends the timeout signal ``signal_delay_s``
    seconds before the time limit, which is how a :class:`ResumableTask` gets to checkpoint.
    ``sbatch`` holds extra ``#SBATCH`` options, e.g. ``{"constraint": "a100", "exclusive": True}``.
    """

    partition: str | None = None
    nodes: int = 1
    gpus_per_node: int = 0
    tasks_per_node: int | None = None
    cpus_per_task: int | None = None
    mem: str | None = None  # e.g. "32G"
    time: int | str = 60
    array_parallelism: int = 256
    account: str | None = None
    qos: str | None = None
    signal_delay_s: int = 120
    sbatch: dict[str, str | bool] = field(default_factory=dict)
    log_dir: Path = DEFAULT_LOG_DIR

    def __post_init__(self) -> None:
        self.log_dir = Path(self.log_dir)
        parse_time_minutes(self.time)  # a bad time limit fails here, not at submission
        for name in ("nodes", "array_parallelism"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("gpus_per_node", "signal_delay_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("tasks_per_node", "cpus_per_task"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 when given, got {getattr(self, name)}")

    @property
    def timeout_min(self) -> int:
        return parse_time_minutes(self.time)

    def executor_parameters(self) -> dict[str, Any]:
        """Parameters for ``submitit.AutoExecutor.update_parameters`` (``None`` means unset)."""
        return {
            "timeout_min": self.timeout_min,
            "nodes": self.nodes,
            "gpus_per_node": self.gpus_per_node or None,
            "tasks_per_node": self.tasks_per_node or max(self.gpus_per_node, 1),
            "cpus_per_task": self.cpus_per_task,
            "slurm_partition": self.partition,
            "slurm_mem": self.mem,
            "slurm_account": self.account,
            "slurm_qos": self.qos,
            "slurm_array_parallelism": self.array_parallelism,
            "slurm_signal_delay_s": self.signal_delay_s,
            "slurm_additional_parameters": dict(self.sbatch) or None,
        }


def parse_time_minutes(value: int | str) -> int:
    """Minutes in a SLURM time limit: ``90``, ``"90"``, ``"1:30:00"`` or ``"2-00:00:00"``.

    Seconds round up to the next minute (submitit takes whole minutes).
    """
    text = str(value).strip()
    match = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d\d):(\d\d)", text)
    if match:
        days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
        total = ((days * 24 + hours) * 60 + minutes) + math.ceil(seconds / 60)
    elif text.isdigit():
        total = int(text)
    else:
        raise ValueError(f"time must be minutes (e.g. 90) or [D-]HH:MM:SS (e.g. 1:30:00), got {value!r}")
    if total < 1:
        raise ValueError(f"time must be at least one minute, got {value!r}")
    return total


def parse_sbatch_options(pairs: Sequence[str]) -> dict[str, str | bool]:
    """``["constraint=a100", "exclusive"]`` -> ``{"constraint": "a100", "exclusive": True}``."""
    options: dict[str, str | bool] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().lstrip("-")
        if not key or (sep and not value):
            raise ValueError(f"--sbatch expects KEY=VALUE or a bare flag such as exclusive, got {pair!r}")
        options[key] = value if sep else True
    return options


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
