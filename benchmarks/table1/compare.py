"""Compare measured against published numbers; exit 1 when a row is out of tolerance.

GFLOPs: every measured implemented row against the paper's Table 1. A row outside the tolerance
fails unless the FLOP ledger (``benchmarks.table1.ledger``, ``flop_ledger.md``) states its cause, which is printed
with a pointer to the ledger's evidence. Top-1: rows with
a reproduced Kinetics-600 run against the published top-1 (runs on other datasets are not compared),
with the weights the run evaluated (a public checkpoint's catalogue name, ``eval --weights NAME``, or
"trained here"), labelled with the run's protocol: per video (the suite's) or per clip (the GRW
authors', whose evaluation the published GRW numbers come from). Then, for reference only, the
published Kinetics-400 points of A3D and VA-RED2 (``benchmarks.table1.kinetics400``).
"""

from __future__ import annotations

import pandas as pd

from benchmarks.table1 import report
from benchmarks.table1.ledger import Verdict

# How each protocol's top-1 is counted (benchmarks.table1.protocols).
PROTOCOL_LABELS = {"suite": "per video (suite)", "authors": "per clip (GRW authors')"}


def compare(table: pd.DataFrame, rows: list[int], tolerance: float, top1_tolerance: float,
            explained: dict[int, Verdict]) -> tuple[pd.DataFrame, int, list[str]]:
    """The comparison table, the number of failing rows, and the stated causes' text; ``explained`` is the
    FLOP ledger's verdict of each row (``benchmarks.table1.ledger.verdicts``)."""
    records, failures, reasons = [], 0, {}
    for _, r in table[table["row"].isin(rows)].iterrows():
        ledger = explained[int(r["row"])]
        if pd.isna(r["measured_gflops"]):
            verdict, failures = "FAIL: not measured (run table1)", failures + 1
        elif abs(r["delta_pct"]) <= tolerance:
            verdict = "ok"
        elif ledger.status in ("explained", "open"):
            note = reasons.setdefault(ledger.cause.text, len(reasons) + 1)
            verdict = f"{ledger.status} (ledger) [{note}]"
        elif ledger.cause is not None:
            note = reasons.setdefault(ledger.cause.text, len(reasons) + 1)
            verdict, failures = f"FAIL: the ledger's evidence misses it [{note}]", failures + 1
        else:
            verdict, failures = f"FAIL: GFLOPs off by more than {tolerance:g}%", failures + 1
        top1_delta = None
        if r["reproduced_dataset"] == report.KINETICS and not r["reproduced_deviates"]:
            top1_delta = r["reproduced_top1"] - r["published_top1"]
            if abs(top1_delta) > top1_tolerance:
                verdict, failures = f"{verdict}; FAIL: top-1 off by {top1_delta:+.1f} pp", failures + 1
        records.append({
            "#": r["row"], "model": r["model"],
            "GFLOPs pub": f"{r['published_gflops']:g}",
            "measured": "-" if pd.isna(r["measured_gflops"]) else f"{r['measured_gflops']:.2f}",
            "delta": "-" if pd.isna(r["delta_pct"]) else f"{r['delta_pct']:+.1f}%",
            "M params": "-" if pd.isna(r["params_m"]) else f"{r['params_m']:.2f}",
            "top-1 pub/K600": "-" if top1_delta is None else f"{r['published_top1']:.1f}/{r['reproduced_top1']:.1f}",
            "top-1 delta": "-" if top1_delta is None else f"{top1_delta:+.1f}",
            "weights": "-" if top1_delta is None else r["reproduced_weights"] or "trained here",
            "top-1 protocol": "-" if top1_delta is None else PROTOCOL_LABELS.get(r["reproduced_protocol"], "per video"),
            "verdict": verdict,
        })
    notes = [f"[{number}] {reason}" for reason, number in reasons.items()]
    return pd.DataFrame.from_records(records), failures, notes
