"""Write ``tests/fixtures/legacy_multigrid_mobilenet_v3_s.pt``: a checkpoint as the suite wrote it before methods
owned their options (commit 463c7d5, where ``RunConfig`` carried ``a3d_range``, ``vared2_stage``,
``vared2_weight``, ``multigrid`` and ``multigrid_epoch_factor`` as its own fields).

Run it in a worktree of that commit (its module paths are that commit's)::

    git worktree add /tmp/legacy 463c7d5 && cd /tmp/legacy && python tools/make_legacy_checkpoint.py OUT.pt

It trains MobileNetV3-S frame-wise (row 3) with multigrid's short cycle (epoch factor 1) for one epoch
on a generated motion dataset at 4 frames x 32 px, then keeps what loading a trained model reads (format,
version, config, spec, deviations, row, classes, progress, complete) and the raw weights in float16
(no EMA), so that the fixture stays small. ``tests/test_legacy_checkpoint.py`` loads it with the current code.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch
from benchmarks.checkpoint import LAST, load_checkpoint, save_checkpoint
from benchmarks.runs import Recipe, RunConfig
from benchmarks.toydata import write_motion_dataset
from benchmarks.train import train

KEEP = ("config", "spec", "deviations", "row", "classes", "progress", "complete")


def main(out: str) -> None:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        data = write_motion_dataset(Path(tmp) / "data", videos_per_class={"train": 4, "val": 1, "test": 1},
                                    size=32, broken=False)
        config = RunConfig(row=3, data=str(data.root), out=str(Path(tmp) / "run"), schedule="multigrid",
                           multigrid="short", multigrid_epoch_factor=1.0, frames=4, res=32, fps=8,
                           recipe=Recipe(epochs=1, batch_size=2, ema_decay=0.9), validate=False, num_workers=0,
                           log_every=1000, device="cpu")
        train(config)
        state = load_checkpoint(Path(config.out) / LAST)
    slim = {name: state[name] for name in KEEP}
    slim["model"] = {name: t.half() if t.is_floating_point() else t for name, t in state["model"].items()}
    slim["ema"] = None
    slim["written_by"] = "tools/make_legacy_checkpoint.py at commit 463c7d5 (raw weights as float16, no EMA)"
    save_checkpoint(out, {k: v for k, v in slim.items() if k not in ("format", "version")})
    print(f"wrote {out}: {Path(out).stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/legacy_multigrid_mobilenet_v3_s.pt")
