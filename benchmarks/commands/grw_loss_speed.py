"""``grw-loss-speed``: the command line of :mod:`benchmarks.studies.grw_loss_speed` (whose docstring is its
``--help``)."""

from __future__ import annotations

import argparse
import os

from benchmarks.core.cli import docstring_of

DESCRIPTION = docstring_of("benchmarks.studies.grw_loss_speed")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=positive_int, default=5, help="timing rounds per case (default: 5)")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: as is)")


def main(args: argparse.Namespace) -> int:
    import torch
    from tabulate import tabulate

    from benchmarks.studies.grw_loss_speed import CASES, cpu_name, measure

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    rows = [measure(case, args.rounds) for case in CASES]
    print(
        f"GRW loss forward+backward on CPU, float32, median of {args.rounds} rounds (reference once, fast 20 "
        f"times per round); torch {torch.__version__}, {cpu_name()} ({os.cpu_count()} cores), "
        f"torch threads: {torch.get_num_threads()}; 1-min load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after"
    )
    print(tabulate(rows, headers="keys", tablefmt="github", disable_numparse=True))
    print("max rel diff: fast vs reference loss, both float32. grad err: max |g - g64| / max |g64| of each")
    print("float32 gradient against the reference computed in float64.")
    return 0

