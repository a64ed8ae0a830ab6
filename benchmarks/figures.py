"""Regenerate the tables and figures from stored results only (seconds; no model is built).

Reads measured/, runs/ and memory_vs_frames.csv of the results store and rewrites table1.md,
table1.csv, k600_flops.png/.svg and memory_vs_frames.png there, and the published Kinetics-400 figure
of the other efficiency methods, k400_adaptive_flops.png (``benchmarks.kinetics400``).
"""

from __future__ import annotations

import argparse

from benchmarks import kinetics400, memory, report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def main(args: argparse.Namespace) -> int:
    written = report.write_all(args.store)
    memory_csv = args.store.root / memory.CSV_NAME
    if memory_csv.exists():
        written += memory.plot_memory(memory.load_memory_csv(memory_csv), args.store.root)
    written += kinetics400.write_figure(args.store.root)
    for path in written:
        print(f"wrote {path}")
    return 0
