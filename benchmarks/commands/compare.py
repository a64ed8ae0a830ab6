"""``compare``: the command line of :mod:`benchmarks.table1.compare` (whose docstring is its ``--help``)."""

from __future__ import annotations

import argparse
import textwrap

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
    print(render_comparison(result, notes))
    print(f"{failures} row(s) out of tolerance" if failures else "all compared rows within tolerance or documented")
    print()
    print(wrap("Other efficiency methods, published on Kinetics-400 (not Kinetics-600; never in Table 1; "
               f"figure: {kinetics400.FIGURE}):"))
    print(tabulate(kinetics400.table(kinetics400.published_points()), headers="keys", tablefmt="simple",
                   showindex=False, disable_numparse=True))
    return 1 if failures else 0


WIDTH = 120
TOP1_COLUMNS = ("top-1 pub/K600", "top-1 delta", "weights", "top-1 protocol")


def render_comparison(result, notes: list[str]) -> str:
    """The comparison in at most :data:`WIDTH` columns: the top-1 columns only when some row has a stored
    Kinetics-600 top-1, the ledger's causes as wrapped footnotes."""
    from tabulate import tabulate

    shown = result
    if (result[list(TOP1_COLUMNS)] == "-").all().all():
        shown = result.drop(columns=list(TOP1_COLUMNS))
    lines = [tabulate(shown, headers="keys", tablefmt="simple", showindex=False, disable_numparse=True)]
    if shown is not result:
        lines.append("top-1: no Kinetics-600 run is stored for these rows (nothing to compare)")
    if notes:
        lines += ["", "Stated causes (results/flop_ledger.md has each row's measured evidence):"]
        lines += [wrap(note, indent="    ") for note in notes]
    return "\n".join(lines)


def wrap(text: str, indent: str = "") -> str:
    return "\n".join(textwrap.wrap(text, WIDTH, subsequent_indent=indent))
