"""The launching options every launching subcommand (``train``, ``eval``, ``table1``) shares: ``--launch
slurm|local|none`` and the SLURM resources, turned into ``benchmarks.engine.launch.SlurmOptions``."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.core.cli import UsageError
from benchmarks.engine.launch_options import MODES, OnResult, SlurmOptions, parse_sbatch_options


def add_launch_arguments(parser: argparse.ArgumentParser, distributed: bool = False) -> None:
    """Add ``--launch`` and the SLURM resource options. Change defaults with ``parser.set_defaults``.

    ``distributed``: the command's task runs as one process group over all of a job's processes
    (``train``), so it also takes ``--tasks-per-node``; other tasks get one process per GPU.
    """
    defaults = SlurmOptions()
    group = parser.add_argument_group("launching (SLURM job arrays through submitit)")
    group.add_argument("--launch", choices=MODES, default="none",
                       help="slurm: one array task per item; local: the same as local processes; "
                       "none: run in this process (default: %(default)s)")
    group.add_argument("--partition", help="SLURM partition (default: the cluster's default)")
    group.add_argument("--nodes", type=int, default=defaults.nodes, help="nodes per task (default: %(default)s)")
    group.add_argument("--gpus-per-node", type=int, default=defaults.gpus_per_node,
                       help="GPUs per node, one process each (default: %(default)s)")
    if distributed:
        group.add_argument("--tasks-per-node", type=int,
                           help="processes per node, training together (DDP); default: one per GPU, one without "
                           "GPUs; with --gpus-per-node 0, N CPU processes on gloo")
    group.add_argument("--cpus-per-task", type=int, help="CPUs per process")
    group.add_argument("--mem", help="memory per node, e.g. 32G")
    group.add_argument("--time", default=str(defaults.time),
                       help="time limit per task, minutes or [D-]HH:MM:SS (default: %(default)s)")
    group.add_argument("--array-parallelism", type=int, default=defaults.array_parallelism,
                       help="most array tasks running at once (default: %(default)s)")
    group.add_argument("--account", help="SLURM account")
    group.add_argument("--qos", help="SLURM quality of service")
    group.add_argument("--sbatch", action="append", default=[], metavar="KEY=VALUE",
                       help="extra #SBATCH option, repeatable (e.g. --sbatch constraint=a100; default: none)")
    group.add_argument("--signal-delay-s", type=int, default=defaults.signal_delay_s,
                       help="seconds before the time limit at which tasks may checkpoint (default: %(default)s)")
    group.add_argument("--no-wait", action="store_true",
                       help="submit and exit; results are not collected (slurm and local only)")
    group.add_argument("--log-dir", type=Path, default=defaults.log_dir,
                       help="submitit logs and pickles (default: %(default)s)")


def check_launch_arguments(args: argparse.Namespace) -> None:
    """Refuse option combinations that cannot launch (``UsageError``)."""
    if args.no_wait and args.launch == "none":
        raise UsageError("--no-wait needs --launch slurm or local")
    if args.launch == "slurm" and shutil.which("sbatch") is None:
        raise UsageError("sbatch not found: run on a SLURM cluster (see slurm/local/README.md) "
                         "or use --launch local / none")


def options_from_args(args: argparse.Namespace) -> SlurmOptions:
    """The :class:`SlurmOptions` given on the command line (``UsageError`` on bad values)."""
    try:
        return _options_from_args(args)
    except ValueError as error:
        raise UsageError(str(error)) from error


def _options_from_args(args: argparse.Namespace) -> SlurmOptions:
    return SlurmOptions(
        partition=args.partition,
        nodes=args.nodes,
        gpus_per_node=args.gpus_per_node,
        tasks_per_node=getattr(args, "tasks_per_node", None),
        cpus_per_task=args.cpus_per_task,
        mem=args.mem,
        time=args.time,
        array_parallelism=args.array_parallelism,
        account=args.account,
        qos=args.qos,
        signal_delay_s=args.signal_delay_s,
        sbatch=parse_sbatch_options(args.sbatch),
        log_dir=args.log_dir,
    )


def launch_command(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    names: Sequence[str],
    args: argparse.Namespace,
    options: SlurmOptions,
    on_result: OnResult | None = None,
    job_name: str = "grw-bench",
) -> int:
    """:func:`launch` for a CLI subcommand (``args`` from :func:`add_launch_arguments`); returns the
    exit status: 0 after ``--no-wait``, else 0 or 1 (a task failed). Raises ``UsageError`` when
    nothing could be submitted."""
    from benchmarks.engine.launch import launch  # submitit, only when something is launched

    check_launch_arguments(args)
    if not items:
        return 0
    try:
        report = launch(fn, items, names, mode=args.launch, options=options, on_result=on_result,
                        wait=not args.no_wait, job_name=job_name)
    except RuntimeError as error:  # e.g. no sbatch on this machine
        raise UsageError(str(error)) from error
    if args.no_wait:
        print("submitted; run the same command again to collect what is left (finished work is skipped)")
        return 0
    return 0 if report.ok else 1
