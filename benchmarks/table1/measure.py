"""The measurement of a Table 1 row (``measure_row``): GFLOPs per video, parameters and peak memory of
one video's inference, cached in the results store under a key of the row's spec and a hash of the
code that builds and measures its model. The counters themselves are ``benchmarks.core.counting``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from benchmarks.core.counting import LogitsOnly, count_gflops, count_params, peak_memory_mb
from benchmarks.core.paths import REPO_ROOT
from benchmarks.core.store import Store, provenance, read_json

if TYPE_CHECKING:
    from benchmarks.table1.specs import RowSpec

STREAM_CHUNK = 1  # frames per streaming call when measuring a stream row: frame by frame, as deployed


def one_video_inference(model: nn.Module, spec: RowSpec, device: str) -> Callable[[], None]:
    """One video's inference the way the row is deployed: views one after another, stream rows
    frame by frame with their state."""

    def run() -> None:
        with torch.inference_mode():
            for _ in range(spec.views):
                if spec.streaming:
                    state = None
                    for _ in range(0, spec.frames, STREAM_CHUNK):
                        chunk = torch.zeros(1, 3, STREAM_CHUNK, spec.res, spec.res, device=device)
                        _, state = model.forward_stream(chunk, state)
                else:
                    model(torch.zeros(spec.clip_shape, device=device))

    return run


def measure_spec(spec: RowSpec, device: str) -> dict:
    """GFLOPs per video (per view x views), parameters and peak memory of one Table 1 row's model."""
    from benchmarks.table1.specs import build_model

    torch.manual_seed(0)
    model = build_model(spec).eval()
    gflops_per_view = count_gflops(LogitsOnly(model), spec.clip_shape)
    model.to(device).eval()
    memory_mb, memory_method = peak_memory_mb(model, one_video_inference(model, spec, device), device)
    return {
        "gflops_per_view": gflops_per_view,
        "gflops": gflops_per_view * spec.views,
        "params": count_params(model),
        "peak_memory_mb": memory_mb,
        "memory_method": memory_method,
        "memory_mode": f"streaming, {STREAM_CHUNK} frame(s) per call" if spec.streaming else "whole clip",
    }


# --------------------------------------------------------------------------- Table 1 measurements

# Source files whose change invalidates a row's cached measurement, by model family.
COMMON_SOURCES = ("baselines/__init__.py", "benchmarks/measure.py", "benchmarks/specs.py")
FAMILY_SOURCES = {
    "movinet": ("baselines/movinet.py", "baselines/movinet_specs.json"),
    "mobilenet_v3": ("baselines/mobilenet.py", "baselines/tsm.py"),
    "x3d": ("baselines/x3d.py",),
}
GRW_SOURCES = ("grw/*.py",)


def model_code_hash(spec: RowSpec) -> str:
    """Hash of the code that builds and measures this row's model."""
    patterns = COMMON_SOURCES + FAMILY_SOURCES[spec.family] + (GRW_SOURCES if spec.grw else ())
    digest = hashlib.sha256()
    for pattern in patterns:
        for path in sorted(REPO_ROOT.glob(pattern)):
            digest.update(path.relative_to(REPO_ROOT).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_key(spec: RowSpec, device: str) -> str:
    return f"{spec.key()}-{model_code_hash(spec)}-{device}"


def measure_row(spec: RowSpec, device: str, command: str | None = None) -> dict:
    """Build the row's model and measure it; returns the JSON record stored in ``measured/``.

    ``command`` is the user's command line when this runs as a submitit task (whose own command
    line is submitit's job script)."""
    started = time.perf_counter()
    numbers = measure_spec(spec, device)
    return {
        "row": spec.row,
        "name": spec.name,
        "model": spec.model,
        "grw": spec.grw is not None,
        "input": {"res": spec.res, "frames": spec.frames, "clips": spec.clips, "crops": spec.crops},
        **numbers,
        "device": device,
        "key": cache_key(spec, device),
        "seconds": round(time.perf_counter() - started, 2),
        **provenance(device),
        **({"command": command} if command else {}),
    }


def cached_measurement(spec: RowSpec, device: str, store: Store) -> dict | None:
    """The stored measurement of the row when it was made with the current code, else None."""
    path = store.measurement_path(spec.row, device)
    if not path.exists():
        return None
    record = read_json(path)
    return record if record.get("key") == cache_key(spec, device) else None


def rows_to_measure(specs: list[RowSpec], device: str, store: Store, refresh: bool = False) -> list[RowSpec]:
    """The rows without a valid cached measurement (all of them with ``refresh``)."""
    return [spec for spec in specs if refresh or cached_measurement(spec, device, store) is None]
