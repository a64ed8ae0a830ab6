"""Regenerate the tables and figures from stored results only (seconds; no model is built).

Reads results/measured/, results/runs/ and results/memory_vs_frames.csv and rewrites
results/table1.md, results/table1.csv, results/k600_flops.png/.svg and results/memory_vs_frames.png.
"""

from __future__ import annotations

import argparse

from benchmarks import memory, report
from benchmarks.paths import results_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def main(args: argparse.Namespace) -> int:
    written = report.write_all()
    memory_csv = results_dir() / memory.CSV_NAME
    if memory_csv.exists():
        written += memory.plot_memory(memory.load_memory_csv(memory_csv))
    for path in written:
        print(f"wrote {path}")
    return 0
