"""``memory``: the command line of :mod:`benchmarks.table1.memory` (whose docstring is its ``--help``)."""

from __future__ import annotations

import argparse

from benchmarks.commands.options import positive_ints
from benchmarks.core.cli import UsageError, docstring_of
from benchmarks.core.store import write_csv

DESCRIPTION = docstring_of("benchmarks.table1.memory")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="movinet_a0,movinet_a0_stream",
                        help="comma-separated registry names (default: movinet_a0,movinet_a0_stream)")
    parser.add_argument("--frames", type=positive_ints, default=[8, 16, 32, 64, 128, 256],
                        help="comma-separated frame counts (default: 8,16,32,64,128,256)")
    parser.add_argument("--res", type=int, default=172, help="input resolution (default: 172, A0's)")
    parser.add_argument("--device", choices=("cpu", "cuda"),
                        help="where the peak memory is measured (default: cuda when available, else cpu)")


def main(args: argparse.Namespace) -> int:
    import torch
    from tabulate import tabulate

    import baselines
    from benchmarks.table1.memory import CSV_NAME, measure_memory, plot_memory

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    models = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = [name for name in models if name not in baselines.available()]
    if unknown:
        raise UsageError(f"unknown model(s) {', '.join(unknown)}; valid: {', '.join(baselines.available())}")
    if args.res < 1:
        raise UsageError(f"--res must be >= 1, got {args.res}")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda requested but CUDA is not available")
    table = measure_memory(models, args.frames, args.res, device)
    out_dir = args.store.root
    written = [write_csv(out_dir / CSV_NAME, table), *plot_memory(table, out_dir)]
    print(tabulate(table[["model", "mode", "frames", "res", "peak_memory_mb", "device"]], headers="keys",
                   tablefmt="github", showindex=False))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
