"""List, filter and show the stored accuracy runs (``python -m benchmarks.run runs``).

``runs`` (or ``runs list``) prints one line per run in the store's ``runs/``, oldest first, in at most 120
columns: its short id, row, model, method, data (dataset/split), weights (a public checkpoint's name,
``*`` when the bytes came from a local file nobody verified; ``trained`` for a checkpoint trained here),
top-1, videos, commit and file (named by row and UTC time, so it gives the date). Filters combine:
``--row 1,5 --method a3d --dataset kinetics600 --weights x3d --since 2026-12-01 --until 2026-12-31
--commit 3adfab7``.

``runs show FILE|ID`` prints one run's summary (the id is printed at the end of every ``eval``).
"""

from __future__ import annotations

import argparse
import textwrap

from benchmarks.core.cli import UsageError

WIDTH = 120


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=("list", "show"), default="list",
                        help="list the runs (default) or show one")
    parser.add_argument("run", nargs="?", metavar="FILE|ID", help="the run to show (its file or id)")
    parser.add_argument("--row", help="comma-separated Table 1 rows (default: all)")
    parser.add_argument("--method", help="training method, e.g. standard, a3d, vared2 (default: all)")
    parser.add_argument("--dataset", help="dataset name, a substring (default: all)")
    parser.add_argument("--weights", help="evaluated weights, a substring; 'trained' for checkpoints trained here "
                                          "(default: all)")
    parser.add_argument("--since", metavar="DATE", help="runs on or after this ISO date (default: no limit)")
    parser.add_argument("--until", metavar="DATE", help="runs on or before this ISO date (default: no limit)")
    parser.add_argument("--commit", help="git commit prefix of the code that made the run (default: all)")


def main(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from benchmarks.engine.run_index import RunFilter, find_run, list_runs, summary_lines

    if args.action == "show":
        if not args.run:
            raise UsageError("runs show needs the run's FILE or ID (`runs` lists them)")
        try:
            path, run = find_run(args.store, args.run)
        except ValueError as error:
            raise UsageError(str(error)) from error
        for line in summary_lines(path, run):
            print("\n".join(textwrap.wrap(line, WIDTH, subsequent_indent="      ")))
        return 0
    if args.run:
        raise UsageError(f"unexpected {args.run!r}: `runs show {args.run}` shows one run")
    table = list_runs(args.store, RunFilter(rows=_rows(args.row), method=args.method, dataset=args.dataset,
                                            weights=args.weights, since=args.since, until=args.until,
                                            commit=args.commit))
    if table.empty:
        print(f"no stored run matches (store: {args.store.root})")
        return 0
    print(tabulate(_fit(table), headers="keys", tablefmt="simple", showindex=False, disable_numparse=True))
    print(f"{len(table)} run(s); `runs show ID` shows one")
    return 0


def _rows(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UsageError(f"--row expects comma-separated row numbers such as 1,5, got {text!r}") from None


def _fit(table):
    """Shorten the widest text columns (from their start, keeping what tells runs apart) until the table fits
    :data:`WIDTH` columns; ids, numbers and files stay whole. One rendering per column measures the excess."""
    table = table.copy()
    for column, floor in (("data", 14), ("model", 10), ("weights", 10), ("method", 8)):
        excess = _width(table) - WIDTH
        if excess <= 0:
            break
        widest = table[column].str.len().max()
        table[column] = table[column].map(_shortened(max(floor, widest - excess)))
    return table


def _shortened(width: int):
    """Text of at most ``width`` characters: the end kept, the start replaced by ``~``."""
    return lambda text: text if len(text) <= width else "~" + text[-width + 1:]


def _width(table) -> int:
    from tabulate import tabulate

    text = tabulate(table, headers="keys", tablefmt="simple", showindex=False, disable_numparse=True)
    return max(len(line) for line in text.splitlines())
