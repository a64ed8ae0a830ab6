"""A3D's published Kinetics-400 points (``benchmarks.table1.kinetics400``): Table 1 of the paper, A3D-Slow
and A3D-SlowFast at several budgets with their Slow and SlowFast baselines and X3D-M."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

BASELINES = ("Slow-8x8-P", "Slow-8x8-R", "SlowFast-4x16-P", "SlowFast-4x16-R", "X3D-M-P")


def kinetics400_points(published: Path) -> pd.DataFrame:
    a3d = pd.read_csv(published / "a3d.csv", dtype={"table": str})
    a3d = a3d[(a3d["table"] == "1") & (a3d["method"].eq("A3D") | a3d["model"].isin(BASELINES))]
    return pd.DataFrame({"paper": "A3D (seed 002)", "method": a3d["method"].where(a3d["method"] == "A3D", "baseline"),
                         "series": a3d["model"], "label": a3d["model"] + a3d["budget_ratio"].map(
                             lambda r: "" if pd.isna(r) else f" x{r:g}"),
                         "gflops": a3d["gflops"].astype(float), "top1": a3d["top1"].astype(float),
                         "source": a3d["source"]})
