"""The tasks ``train`` and ``eval`` launch through :mod:`benchmarks.engine.launch`: one per Table 1 row.

The item of a task is the row's ``RunConfig`` or ``EvalConfig``; the task object carries only
what the launching process knows that a job does not. The same task runs in a SLURM array task
(``--launch slurm``), as a local process (``local``) or in this process (``none``).

Multi-GPU, multi-node. SLURM starts one process per GPU (``tasks_per_node = gpus_per_node``, see
``SlurmOptions``), or ``--tasks-per-node`` CPU processes, on each of ``--nodes``; each exports the
variables torchrun would set (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``) from SLURM's, so ``benchmarks.engine.distributed`` runs DDP as under torchrun
(:func:`export_distributed_env`): a job of two processes, on one node or on two, ends with the
weights of the same run under ``torchrun --nproc-per-node 2``, bit for bit (``tests/test_slurm_ddp.py``).

Time limits and preemption (:class:`TrainTask`). submitit's own way (SLURM sends USR2, submitit
calls ``checkpoint()`` from the signal handler, requeues and exits) would interrupt a training step
half-way, losing everything since the last epoch. Instead SLURM sends SIGUSR1 (``--signal=USR1@
signal_delay_s``, :func:`preemptible`), the signal ``train()`` itself listens to, and submitit in
the job is told to listen to it too (``SUBMITIT_PREEMPT_SIGNAL=USR1``):

- during ``train()`` (its handlers take precedence), every process stops at the same optimizer-step
  boundary and rank 0 writes ``last.pt`` with the exact position; the task then hands the signal to
  submitit's handler, which requeues the array task (``scontrol requeue``) and exits;
- at any other moment (starting up, after the run finished) submitit's handler requeues directly:
  there is no progress that is not already in ``last.pt``.

A launched task always resumes (``resume=True``; only ``--refresh`` makes the first attempt start
from scratch), so a requeued task, whoever requeued it (this signal, SLURM after a preemption or a
node failure), continues from ``OUT/last.pt``; resuming is exact (see ``benchmarks.engine.train``).
SIGTERM (``scancel``, or a preemption without the early signal) stops at a step boundary too, but
never requeues: a cancelled job stays cancelled.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import signal
import sys
from dataclasses import dataclass, field

import submitit
from submitit.helpers import DelayedSubmission, TorchDistributedEnvironment

from benchmarks.core.store import Store, command_line, set_cli_command
from benchmarks.engine.config import RunConfig
from benchmarks.engine.evaluate import EvalConfig, evaluate
from benchmarks.engine.launch import ResumableTask, SlurmOptions
from benchmarks.engine.train import train

PREEMPT_SIGNAL = signal.SIGUSR1  # one of benchmarks.engine.train.PREEMPTION_SIGNALS
SUBMITIT_SIGNAL_ENV = "SUBMITIT_PREEMPT_SIGNAL"  # which signal submitit's handler listens to in a job
CLI = "python -m benchmarks.run"


class TrainingStopped(BaseException):
    """Training in this process (``--launch none``) was stopped by a signal; ``last.pt`` holds it.

    A ``BaseException``, like ``KeyboardInterrupt``: the launcher must not go on to the next row.
    """

    def __init__(self, summary: dict) -> None:
        super().__init__(f"row {summary['row']} stopped by {summary['signal']} at epoch "
                         f"{summary['epochs_completed']} step {summary['step_in_epoch']}")
        self.summary = summary
        self.exit_code: int = summary["exit_code"]


def preemptible(options: SlurmOptions) -> SlurmOptions:
    """``options`` with SLURM sending SIGUSR1 ``signal_delay_s`` before the time limit and submitit
    in the job listening to it (see the module docstring)."""
    taken = sorted({"signal", "export"} & set(options.sbatch))
    if taken:
        raise ValueError(f"--sbatch {', '.join(taken)}: training sets these itself (the preemption signal)")
    name = PREEMPT_SIGNAL.name.removeprefix("SIG")
    sbatch = {**options.sbatch, "signal": f"{name}@{options.signal_delay_s}",
              "export": f"ALL,{SUBMITIT_SIGNAL_ENV}={name}"}
    return dataclasses.replace(options, sbatch=sbatch)


def in_submitit_job() -> bool:
    """Whether this process is a task of a submitit job (SLURM or local), not the launching process."""
    try:
        submitit.JobEnvironment()
    except RuntimeError:
        return False
    return True


def export_distributed_env() -> TorchDistributedEnvironment:
    """Set the torchrun variables from the job's (SLURM's) task layout; rank 0's host is the master.

    The master is the first node of ``SLURM_JOB_NODELIST`` (compressed forms such as ``node[01-02,05]``
    included) and its port comes from the job id, so a requeued job keeps it and the array tasks
    sharing a node do not share it. A ``MASTER_PORT`` the job inherited from where it was submitted
    (``--export=ALL``) would be every array task's: it is ignored. Every process keeps seeing all the
    node's GPUs: ``benchmarks.engine.distributed`` picks ``LOCAL_RANK``'s.
    """
    os.environ.pop("MASTER_PORT", None)
    return TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)


def submitit_signal() -> signal.Signals:
    return signal.Signals[f"SIG{os.environ.get(SUBMITIT_SIGNAL_ENV, 'USR2')}"]


class TrainTask(ResumableTask):
    """Train one row (the item: its ``RunConfig``); preemption-safe in a job (module docstring)."""

    def __call__(self, config: RunConfig) -> dict:
        in_job = in_submitit_job()
        if in_job:
            export_distributed_env()
        summary = train(config)
        if summary["status"] == "preempted":
            if not in_job:
                raise TrainingStopped(summary)
            if summary["signal"] != signal.SIGTERM.name:
                # submitit's handler: checkpoint() and requeue on rank 0 (which exits there), nothing elsewhere.
                signal.getsignal(submitit_signal())(submitit_signal(), None)
            # No result: the task is requeued, or cancelled. A result file would end the wait for it.
            sys.exit(summary["exit_code"])
        return summary

    def save_checkpoint(self, config: RunConfig) -> None:
        """Nothing to write here: ``train()`` wrote ``last.pt`` when it stopped (or at its last epoch)."""

    def checkpoint(self, config: RunConfig) -> DelayedSubmission:
        """The requeued task: the same row, resuming from ``last.pt``."""
        return super().checkpoint(dataclasses.replace(config, resume=True))


@dataclass
class EvalTask:
    """Evaluate one checkpoint (the item: its ``EvalConfig``) and store the run in the launching
    process's results store, with its command line as provenance: a job knows neither."""

    results: str = field(default_factory=lambda: str(Store.default().root.resolve()))
    command: str = field(default_factory=command_line)

    def __call__(self, config: EvalConfig) -> dict:
        if self.command.startswith(f"{CLI} "):
            set_cli_command(shlex.split(self.command.removeprefix(f"{CLI} ")))
        return evaluate(config, Store(self.results))
