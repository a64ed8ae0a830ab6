"""``proxy``: the command line of :mod:`benchmarks.studies.proxy` (whose docstring is its ``--help``)."""

from __future__ import annotations

import argparse

from benchmarks.core.cli import UsageError, docstring_of, from_args
from benchmarks.studies.proxy_config import VARIANTS, ProxyConfig, select_variants

DESCRIPTION = docstring_of("benchmarks.studies.proxy")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = ProxyConfig()
    parser.add_argument("--epochs", type=int, default=defaults.epochs, metavar="E",
                        help="training epochs of every family (default: each family's own, see "
                             "docs/warmup-and-proxy.md)")
    parser.add_argument("--seeds", type=int, default=defaults.seeds, metavar="K",
                        help="seeds 0..K-1 per model (default: %(default)s)")
    parser.add_argument("--processes", type=int, default=defaults.processes,
                        help="runs in parallel, one torch thread each (default: %(default)s)")
    parser.add_argument("--rows", help="comma-separated Table 1 rows whose proxy models to run (default: all of "
                        f"{', '.join(str(row) for row in sorted({variant.row for variant in VARIANTS}))})")


def main(args: argparse.Namespace) -> int:
    """``--rows`` picks variants; each run uses one torch thread (more spin against each other on 2 cores)."""
    from tabulate import tabulate

    from benchmarks.studies import proxy
    from benchmarks.studies.harness import announce

    config = from_args(ProxyConfig, args)
    try:
        variants = select_variants(args.rows)
    except ValueError as error:
        raise UsageError(str(error)) from error
    summary = proxy.run_proxy(args.store, config, variants)  # looked up when called (tests replace it)
    table = proxy.display_table(proxy.proxy_table(summary))
    return announce(summary, tabulate(table, headers="keys", tablefmt="github", showindex=False, disable_numparse=True))
