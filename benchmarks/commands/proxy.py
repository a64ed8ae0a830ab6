"""``proxy``: the command line of :mod:`benchmarks.studies.proxy` (whose docstring is its ``--help``)."""

from __future__ import annotations

import argparse

from tabulate import tabulate

from benchmarks.core.cli import UsageError, from_args
from benchmarks.studies import proxy
from benchmarks.studies.harness import announce
from benchmarks.studies.proxy import VARIANTS, ProxyConfig, display_table, proxy_table, select_variants

DESCRIPTION = proxy.__doc__


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
    config = from_args(ProxyConfig, args)
    try:
        variants = select_variants(args.rows)
    except ValueError as error:
        raise UsageError(str(error)) from error
    summary = proxy.run_proxy(args.store, config, variants)  # looked up when called (tests replace it)
    return announce(summary, tabulate(display_table(proxy_table(summary)), headers="keys", tablefmt="github",
                                      showindex=False, disable_numparse=True))
