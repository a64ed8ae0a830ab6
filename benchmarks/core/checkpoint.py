"""Training checkpoints: written atomically, read without unpickling arbitrary objects.

A checkpoint is one ``torch.save`` file holding a dict of tensors, state dicts and JSON-friendly
metadata (numbers, strings, lists, dicts)::

    {"format": "grw-bench-checkpoint", "version": 2,
     "model": state_dict, "ema": state_dict | None, "optimizer": ..., "scheduler": ..., "scaler": ...,
     "progress": {"epoch", "step", "global_step", "best_top1", "best_epoch", "history", "running"},
     "config": RunConfig as a dict, "spec": the resolved RowSpec as a dict, "deviations": {...},
     "row": int, "classes": [class names], "complete": bool}

``progress.epoch``/``progress.step`` say where training resumes: ``step`` optimizer steps of ``epoch`` are done (0 at an
epoch boundary). Files are read with ``torch.load(weights_only=True)``: a file that needs any other
object unpickled is refused with a ``CheckpointError`` naming it.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import torch

from benchmarks.core.store import atomic_file

FORMAT = "grw-bench-checkpoint"
VERSION = 2  # 2: the resolved spec and the deviations are stored (benchmarks.engine.runs.run_record)
LAST = "last.pt"  # the newest state: every epoch, and on preemption
BEST = "best.pt"  # the state with the best validation top-1


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message names the file."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to a temporary file next to ``path``, fsync it, then rename it over ``path``.

    A reader (or a run killed mid-write) sees the old file or the new one, never a partial one. When the
    operating system refuses the write (a full disk), its ``OSError`` is raised, naming ``path``.
    """
    with atomic_file(path, "wb") as f:
        try:
            torch.save({"format": FORMAT, "version": VERSION, **state}, f)
        except RuntimeError as error:
            # torch's zip writer, closing the archive after a write failed, raises "unexpected pos ..." in
            # place of the operating system's error: raise that one (benchmarks.core.cli.user_error).
            if isinstance(error.__context__, OSError):
                raise error.__context__ from None
            raise
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, tensors and plain data only."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's message is long; keep its line naming the offending object.
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        reason = next((line for line in lines if "Unsupported global" in line), lines[-1] if lines else "")
        raise CheckpointError(
            f"{path}: refused: the file contains pickled objects other than tensors and plain data, "
            f"which are never unpickled (torch.load weights_only=True: {reason})"
        ) from error
    except (RuntimeError, EOFError, OSError) as error:
        raise CheckpointError(f"{path}: cannot read checkpoint: {error}") from error
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a grw-bench checkpoint (expected a dict with format={FORMAT!r})")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state.get('version')!r}, this code reads {VERSION}")
    return state


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The checkpoint to resume from in a run directory, or None if the run has none yet."""
    path = Path(out_dir) / LAST
    return path if path.is_file() else None


def model_weights(state: dict[str, Any], weights: str | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """The model state dict to evaluate and which it is: ``"ema"``, ``"raw"``, or None for EMA when
    the checkpoint has one, else raw."""
    if weights not in (None, "ema", "raw"):
        raise ValueError(f"weights must be 'ema' or 'raw', got {weights!r}")
    has_ema = state.get("ema") is not None
    if weights == "ema" and not has_ema:
        raise CheckpointError("the checkpoint has no EMA weights (trained with EMA off); use weights='raw'")
    if weights == "raw" or not has_ema:
        return state["model"], "raw"
    # The EMA is a torch.optim.swa_utils.AveragedModel: the model's entries are under "module.".
    prefix = "module."
    return {key[len(prefix):]: value for key, value in state["ema"].items() if key.startswith(prefix)}, "ema"


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
