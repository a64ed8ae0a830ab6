"""``zoo``: the command line of :mod:`benchmarks.table1.zoo` (whose docstring is its ``--help``)."""

from __future__ import annotations

import argparse

from benchmarks.core.cli import UsageError, docstring_of
from benchmarks.core.store import command_line, write_csv, write_text

DESCRIPTION = docstring_of("benchmarks.table1.zoo")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", help="comma-separated registry names (default: every model)")
    parser.add_argument("--refresh", action="store_true", help="count again even when a cached count matches")


def main(args: argparse.Namespace) -> int:
    from benchmarks.table1 import zoo

    published = zoo.load_published_models()
    if args.models:
        wanted = [name.strip() for name in args.models.split(",") if name.strip()]
        unknown = sorted(set(wanted) - set(published["model"]))
        if unknown:
            raise UsageError(f"unknown model(s) {', '.join(unknown)}; valid: {', '.join(published['model'])}")
        published = published[published["model"].isin(wanted)]
    records = zoo.measure_models(published, args.store, args.refresh, command_line())
    table = zoo.zoo_table(published, records)
    markdown = zoo.render(table, records)
    write_text(args.store.root / "model_zoo.md", markdown)
    write_csv(args.store.root / "model_zoo.csv", table)
    print(markdown)
    return 0
