"""VA-RED2's published Kinetics-400 points (``benchmarks.table1.kinetics400``): Table 5 of the paper,
R(2+1)D, I3D and X3D-M with and without VA-RED2."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def kinetics400_points(published: Path) -> pd.DataFrame:
    vared2 = pd.read_csv(published / "vared2.csv", dtype={"table": str})
    vared2 = vared2[(vared2["table"] == "5") & (vared2["dataset"] == "Kinetics-400")]
    frames = vared2["frames"].astype(int).astype(str)
    return pd.DataFrame({"paper": "VA-RED2 (seed 004)",
                         "method": vared2["method"].where(vared2["method"] == "VA-RED2", "baseline"),
                         "series": vared2["model"] + " " + frames + " frames",
                         "label": vared2["model"] + " " + frames + "f",
                         "gflops": vared2["gflops"].astype(float), "top1": vared2["top1"].astype(float),
                         "source": vared2["source"]})
