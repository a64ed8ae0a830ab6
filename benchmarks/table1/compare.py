"""Compare measured against published numbers; exit 1 when a row is out of tolerance.

GFLOPs: every measured implemented row against the paper's Table 1. A row outside the tolerance
fails unless its spec documents a known deviation, which is printed with its reason. Top-1: rows with
a reproduced Kinetics-600 run against the published top-1 (runs on other datasets are not compared),
with the weights the run evaluated (a public checkpoint's catalogue name, ``eval --weights NAME``, or
"trained here"), labelled with the run's protocol: per video (the suite's) or per clip (the GRW
authors', whose evaluation the published GRW numbers come from). Then, for reference only, the
published Kinetics-400 points of A3D and VA-RED2 (``benchmarks.table1.kinetics400``).
"""

from __future__ import annotations

import argparse

import pandas as pd
from tabulate import tabulate

from benchmarks.core.cli import UsageError
from benchmarks.table1 import kinetics400, report
from benchmarks.table1.specs import get_spec, parse_rows

# How each protocol's top-1 is counted (benchmarks.table1.protocols).
PROTOCOL_LABELS = {"suite": "per video (suite)", "authors": "per clip (GRW authors')"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tolerance", type=float, default=5.0, metavar="PCT",
                        help="allowed |measured / published - 1| for GFLOPs, in percent (default: 5)")
    parser.add_argument("--top1-tolerance", type=float, default=1.0, metavar="PP",
                        help="allowed |reproduced - published| top-1 on Kinetics-600, in points (default: 1)")
    parser.add_argument("--rows", help="comma-separated rows to compare (default: every implemented row)")


def compare(table: pd.DataFrame, rows: list[int], tolerance: float,
            top1_tolerance: float) -> tuple[pd.DataFrame, int, list[str]]:
    """The comparison table, the number of failing rows, and the documented deviations' reasons."""
    records, failures, reasons = [], 0, {}
    for _, r in table[table["row"].isin(rows)].iterrows():
        spec = get_spec(int(r["row"]))
        if pd.isna(r["measured_gflops"]):
            verdict, failures = "FAIL: not measured (run `python -m benchmarks.run table1` first)", failures + 1
        elif abs(r["delta_pct"]) <= tolerance:
            verdict = "ok"
        elif spec.known_deviation:
            note = reasons.setdefault(spec.known_deviation, len(reasons) + 1)
            verdict = f"known deviation [{note}]"
        else:
            verdict, failures = f"FAIL: GFLOPs off by more than {tolerance:g}%", failures + 1
        top1_delta = None
        if r["reproduced_dataset"] == report.KINETICS and not r["reproduced_deviates"]:
            top1_delta = r["reproduced_top1"] - r["published_top1"]
            if abs(top1_delta) > top1_tolerance:
                verdict, failures = f"{verdict}; FAIL: top-1 off by {top1_delta:+.1f} pp", failures + 1
        records.append({
            "#": r["row"], "model": r["model"],
            "GFLOPs published": f"{r['published_gflops']:g}",
            "GFLOPs measured": "-" if pd.isna(r["measured_gflops"]) else f"{r['measured_gflops']:.2f}",
            "delta": "-" if pd.isna(r["delta_pct"]) else f"{r['delta_pct']:+.1f}%",
            "params (M)": "-" if pd.isna(r["params_m"]) else f"{r['params_m']:.2f}",
            "top-1 pub/K600": "-" if top1_delta is None else f"{r['published_top1']:.1f}/{r['reproduced_top1']:.1f}",
            "top-1 delta": "-" if top1_delta is None else f"{top1_delta:+.1f}",
            "weights": "-" if top1_delta is None else r["reproduced_weights"] or "trained here",
            "top-1 protocol": "-" if top1_delta is None else PROTOCOL_LABELS.get(r["reproduced_protocol"], "per video"),
            "verdict": verdict,
        })
    notes = [f"[{number}] {reason}" for reason, number in reasons.items()]
    return pd.DataFrame.from_records(records), failures, notes


def main(args: argparse.Namespace) -> int:
    if args.tolerance < 0 or args.top1_tolerance < 0:
        raise UsageError(f"tolerances must be >= 0, got --tolerance {args.tolerance:g} "
                         f"--top1-tolerance {args.top1_tolerance:g}")
    try:
        rows = [spec.row for spec in parse_rows(args.rows)]
    except ValueError as error:
        raise UsageError(str(error)) from error
    result, failures, notes = compare(report.build_table(args.store), rows, args.tolerance, args.top1_tolerance)
    print(tabulate(result, headers="keys", tablefmt="github", showindex=False))
    if notes:
        print("\nKnown deviations (measured, reported as they are):\n" + "\n".join(f"- {note}" for note in notes))
    print(f"{failures} row(s) out of tolerance" if failures else "all compared rows within tolerance or documented")
    print("\nOther efficiency methods, published on Kinetics-400 (not Kinetics-600; never in Table 1; "
          f"figure: {kinetics400.FIGURE}):")
    print(tabulate(kinetics400.table(kinetics400.published_points()), headers="keys", tablefmt="github",
                   showindex=False, disable_numparse=True))
    return 1 if failures else 0
