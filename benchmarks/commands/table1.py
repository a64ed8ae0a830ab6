"""Measure every implemented Table 1 row and write the tables and the Pareto figure.

For each row: GFLOPs per video (fvcore, per clip x clips x crops), parameters, and the peak memory of
one video's inference (stream rows fed frame by frame, with state, as they are deployed). Results are
cached in the store's ``measured/`` (one JSON per row and device, keyed by the row's spec and a hash
of the model code), so a second run only re-renders. Then ``table1.md``, ``table1.csv`` and
``k600_flops.png/.svg`` are written from everything stored, with ``flop_ledger.md``: both counters per row
and every gap to the published figure with its cause, from counterfactual counts (``measured/ledger/``,
seconds: counted on the meta device).

With ``--launch slurm`` (or ``local``) each row to measure is one task of a submitit job array; results
are collected as tasks finish, and rows already measured are skipped.

``table1`` only measures. The CPU proxy that trains and evaluates each family on synthetic data is
``python -m benchmarks.run proxy``.
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

from benchmarks.commands.launching import (
    add_launch_arguments,
    check_launch_arguments,
    launch_command,
    options_from_args,
)
from benchmarks.core.cli import UsageError, check_writable
from benchmarks.core.store import command_line, write_json
from benchmarks.table1.specs import parse_rows

PROXY_MOVED = "table1 only measures; the CPU proxy on the airplanes is its own command: python -m benchmarks.run proxy"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", help="comma-separated row numbers or names (default: every implemented row)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="where to measure peak memory (default: cuda when available, else cpu)")
    parser.add_argument("--refresh", action="store_true", help="re-measure even when a cached result matches")
    # Former options of the CPU proxy, refused with a pointer to `proxy`.
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    parser.add_argument("--proxy", action="store_true", help=argparse.SUPPRESS)
    add_launch_arguments(parser)


def main(args: argparse.Namespace) -> int:
    import torch

    from benchmarks.table1 import ledger, measure, report  # measure.measure_row looked up here (tests replace it)

    if args.proxy or args.dataset is not None:
        raise UsageError(PROXY_MOVED)
    check_launch_arguments(args)
    try:
        specs = parse_rows(args.rows)
    except ValueError as error:
        raise UsageError(str(error)) from error
    options = options_from_args(args)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available() and args.launch == "none":
        raise UsageError("--device cuda requested but CUDA is not available")
    store = args.store
    check_writable(store.root, "--results")
    todo = measure.rows_to_measure(specs, device, store, args.refresh)
    if len(todo) < len(specs):
        print(f"{len(specs) - len(todo)} row(s) already measured with this code (cached; --refresh re-measures)")

    def save(name: str, record: dict) -> None:
        write_json(store.measurement_path(record["row"], record["device"]), record)

    status = launch_command(partial(measure.measure_row, device=device, command=command_line()), todo,
                            [f"row{spec.row:02d}" for spec in todo], args, options, on_result=save,
                            job_name="grw-table1")
    if args.no_wait:
        return status
    ledger.update_counterfactuals(store, args.refresh, command_line())
    table = report.build_table(store)
    print(report.render_table(table, tablefmt="simple"))
    written = report.write_all(store, table)
    print("wrote " + ", ".join(str(_relative(path)) for path in written))
    return status


def _relative(path: Path) -> Path:
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path
