"""Peak inference memory against the number of frames, for a base and a stream MoViNet.

The claim of the MoViNet paper (Table 3) that this reproduces is the shape: a base model's memory
grows with the clip length, a stream model fed frame by frame (with its state buffers) stays flat.
Writes results/memory_vs_frames.csv (with provenance columns) and results/memory_vs_frames.png.
Measuring imports torch and the models; reading and plotting the CSV (``figures``) does not.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks.core.store import atomic_path, provenance  # noqa: E402

if TYPE_CHECKING:
    from torch import nn

CSV_NAME = "memory_vs_frames.csv"


def _inference(model: nn.Module, frames: int, res: int, device: str, stream: bool):
    import torch

    def run() -> None:
        with torch.inference_mode():
            if stream:
                state = None
                for _ in range(frames):
                    _, state = model.forward_stream(torch.zeros(1, 3, 1, res, res, device=device), state)
            else:
                model(torch.zeros(1, 3, frames, res, res, device=device))

    return run


def measure_memory(models: list[str], frame_counts: list[int], res: int, device: str) -> pd.DataFrame:
    from tqdm import tqdm

    import baselines
    from benchmarks.core.counting import peak_memory_mb

    records = []
    where = provenance(device)
    jobs = [(name, frames) for name in models for frames in frame_counts]
    for name, frames in tqdm(jobs, desc="memory", unit="run", file=sys.stderr):
        model = baselines.build(name).eval().to(device)
        stream = name.endswith("_stream")
        mb, method = peak_memory_mb(model, _inference(model, frames, res, device, stream), device)
        records.append({
            "model": name, "mode": "stream, frame by frame" if stream else "whole clip", "frames": frames,
            "res": res, "peak_memory_mb": round(mb, 2), "device": device, "method": method,
            "hardware": where["hardware"], "git_commit": where["git_commit"], "date": where["date"],
            "command": where["command"],
        })
    return pd.DataFrame.from_records(records)


def load_memory_csv(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path)
    missing = {"model", "frames", "peak_memory_mb", "device"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    return table


def plot_memory(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, group in table.groupby("model", sort=False):
        group = group.sort_values("frames")
        ax.plot(group["frames"], group["peak_memory_mb"], marker="o", label=f"{name} ({group['mode'].iloc[0]})")
    devices = ", ".join(sorted(table["device"].unique()))
    ax.set_xscale("log", base=2)
    ax.set_xlabel("frames in the video")
    ax.set_ylabel(f"peak inference memory (MiB, {devices})")
    ax.set_title("Base memory grows with frames; stream memory stays flat")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = out_dir / "memory_vs_frames.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=150)
    plt.close(fig)
    return [path]
