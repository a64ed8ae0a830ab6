"""Regenerate the tables and figures from stored results only (seconds; no model is built).

Reads measured/, runs/ and memory_vs_frames.csv of the results store and rewrites table1.md,
table1.csv, k600_flops.png/.svg, k600_latency.png, speed.md (from runs/speed/) and memory_vs_frames.png
there, the published Kinetics-400 figure
of the other efficiency methods, k400_adaptive_flops.png (``benchmarks.table1.kinetics400``), and the outputs
of the newest stored study of every registered report (``benchmarks.studies.reports.REPORTS``): the
proxy (proxy_table1.md, proxy_flops.png, with the studies it draws), and those the method folders
register: A3D (a3d_airplanes.png/.md), VA-RED2 (vared2_airplanes.md/.png), multigrid
(multigrid_airplanes.md).
"""

from __future__ import annotations

import argparse

from benchmarks.studies.reports import REPORTS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def main(args: argparse.Namespace) -> int:
    from benchmarks.table1 import kinetics400, memory, report, speed_report

    written = report.write_all(args.store) + speed_report.write_report(args.store)
    memory_csv = args.store.root / memory.CSV_NAME
    if memory_csv.exists():
        written += memory.plot_memory(memory.load_memory_csv(memory_csv), args.store.root)
    written += kinetics400.write_figure(args.store.root)
    for _, study in REPORTS.items():
        written += study.render(args.store)
    for path in written:
        print(f"wrote {path}")
    return 0
