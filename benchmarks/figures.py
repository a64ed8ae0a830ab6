"""Regenerate the tables and figures from stored results only (seconds; no model is built).

Reads measured/, runs/ and memory_vs_frames.csv of the results store and rewrites table1.md,
table1.csv, k600_flops.png/.svg and memory_vs_frames.png there, the published Kinetics-400 figure
of the other efficiency methods, k400_adaptive_flops.png (``benchmarks.table1.kinetics400``), and the outputs
of the newest stored CPU studies: the proxy (proxy_table1.md, proxy_flops.png), A3D (a3d_airplanes.png)
and VA-RED2 (vared2_airplanes.md).
"""

from __future__ import annotations

import argparse

from benchmarks.methods.a3d import report as a3d_report
from benchmarks.methods.vared2 import report as vared2_report
from benchmarks.studies import proxy
from benchmarks.table1 import kinetics400, memory, report

STUDIES = (("proxy", "proxy", proxy.write_outputs), ("a3d-study", "a3d", a3d_report.write_outputs),
           ("vared2-study", "vared2", vared2_report.write_outputs))  # name, runs/ subfolder, renderer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def main(args: argparse.Namespace) -> int:
    written = report.write_all(args.store)
    memory_csv = args.store.root / memory.CSV_NAME
    if memory_csv.exists():
        written += memory.plot_memory(memory.load_memory_csv(memory_csv), args.store.root)
    written += kinetics400.write_figure(args.store.root)
    for name, subfolder, write_outputs in STUDIES:
        summary = args.store.latest(name, subfolder)
        if summary is not None:
            written += write_outputs(summary, args.store.root)
    for path in written:
        print(f"wrote {path}")
    return 0
