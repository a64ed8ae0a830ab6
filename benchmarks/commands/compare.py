"""``compare``: the command line of :mod:`benchmarks.table1.compare` (whose docstring is its ``--help``)."""

from __future__ import annotations

import argparse

from benchmarks.core.cli import UsageError, docstring_of
from benchmarks.table1.specs import parse_rows

DESCRIPTION = docstring_of("benchmarks.table1.compare")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tolerance", type=float, default=5.0, metavar="PCT",
                        help="allowed |measured / published - 1| for GFLOPs, in percent (default: 5)")
    parser.add_argument("--top1-tolerance", type=float, default=1.0, metavar="PP",
                        help="allowed |reproduced - published| top-1 on Kinetics-600, in points (default: 1)")
    parser.add_argument("--rows", help="comma-separated rows to compare (default: every implemented row)")


def main(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from benchmarks.table1 import kinetics400, ledger, report
    from benchmarks.table1.compare import compare

    if args.tolerance < 0 or args.top1_tolerance < 0:
        raise UsageError(f"tolerances must be >= 0, got --tolerance {args.tolerance:g} "
                         f"--top1-tolerance {args.top1_tolerance:g}")
    try:
        rows = [spec.row for spec in parse_rows(args.rows)]
    except ValueError as error:
        raise UsageError(str(error)) from error
    result, failures, notes = compare(report.build_table(args.store), rows, args.tolerance, args.top1_tolerance,
                                      ledger.verdicts(args.store, args.tolerance))
    print(tabulate(result, headers="keys", tablefmt="github", showindex=False))
    if notes:
        print("\nKnown deviations (measured, reported as they are):\n" + "\n".join(f"- {note}" for note in notes))
    print(f"{failures} row(s) out of tolerance" if failures else "all compared rows within tolerance or documented")
    print("\nOther efficiency methods, published on Kinetics-400 (not Kinetics-600; never in Table 1; "
          f"figure: {kinetics400.FIGURE}):")
    print(tabulate(kinetics400.table(kinetics400.published_points()), headers="keys", tablefmt="github",
                   showindex=False, disable_numparse=True))
    return 1 if failures else 0
