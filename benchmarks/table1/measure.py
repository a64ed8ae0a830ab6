"""Counting GFLOPs and parameters the way the published tables do, peak inference memory on CPU or
CUDA, and the measurement of a Table 1 row (``measure_row``), cached in the results store under a key
of the row's spec and a hash of the code that builds and measures its model.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from benchmarks.core.paths import REPO_ROOT
from benchmarks.core.store import Store, provenance, read_json

if TYPE_CHECKING:
    from benchmarks.table1.specs import RowSpec

with warnings.catch_warnings():  # fvcore decorates helpers with torch.jit.script, deprecated in torch 2.10+
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    from fvcore.nn import FlopCountAnalysis

# fvcore op handles we switch off. The published convention counts multiply-adds of convolutions and
# linear layers (matmul/bmm/einsum included: attention is linear algebra); normalisation, pooling
# and resampling are not part of it.
_EXCLUDED_OPS = (
    "aten::batch_norm",
    "aten::layer_norm",
    "aten::group_norm",
    "aten::instance_norm",
    "aten::adaptive_avg_pool1d",
    "aten::adaptive_avg_pool2d",
    "aten::adaptive_avg_pool3d",
    "aten::upsample_nearest2d",
    "aten::upsample_bilinear2d",
)


def _zero_flops(inputs, outputs) -> int:
    return 0


def count_gflops(model: nn.Module, input_shape: Sequence[int]) -> float:
    """GFLOPs of one forward pass of ``model`` on a zero tensor of ``input_shape``, batch included.

    Convention (the one behind the published Table 1 numbers, applied identically to every model):
    one multiply-add of a convolution or a linear layer (including matmul/bmm/einsum) counts as one
    FLOP; BatchNorm, LayerNorm/GroupNorm, pooling, upsampling, activations and elementwise ops count
    zero. fvcore's default would add BatchNorm (2 per element), 2-6% on these models, so it is
    switched off here. The model is counted in eval mode; every submodule's own mode is restored afterwards.
    Multi-view rows are counted per clip by the caller and multiplied by the number of views.
    """
    with _flop_analysis(model, input_shape) as analysis:
        return analysis.total() / 1e9


def count_gflops_by_module(model: nn.Module, input_shape: Sequence[int]) -> dict[str, float]:
    """:func:`count_gflops` per submodule (dotted names, ``""`` the whole model; a module includes its children)."""
    with _flop_analysis(model, input_shape) as analysis:
        return {name: flops / 1e9 for name, flops in analysis.by_module().items()}


@contextlib.contextmanager
def _flop_analysis(model: nn.Module, input_shape: Sequence[int]) -> Iterator[FlopCountAnalysis]:
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            analysis = FlopCountAnalysis(model, torch.zeros(*input_shape))
            for op in _EXCLUDED_OPS:
                # a handle counting zero: fvcore ignores `None` for ops that have a default handle
                analysis.set_op_handle(op, _zero_flops)
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            yield analysis
    finally:
        for module, training in modes.items():
            module.train(training)


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers such as BatchNorm statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def _state_bytes(model: nn.Module) -> int:
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """The profiler's C++ backend (kineto) logs start/stop lines to fd 2 on every use, which no
    setting turns off; point fd 2 at /dev/null meanwhile. Python exceptions still propagate."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _profiled_peak_bytes(run: Callable[[], object]) -> int:
    """Peak of live CPU allocations while ``run()`` executes, from the profiler's allocator records.

    Every op's own allocations (positive) are placed at its start and its own frees (negative) at its
    end; the running sum's maximum is the peak.
    """
    with _native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    changes = []
    for event in prof.events():
        delta = event.self_cpu_memory_usage
        if delta > 0:
            changes.append((event.time_range.start, delta))
        elif delta < 0:
            changes.append((event.time_range.end, delta))
    live = peak = 0
    for _, delta in sorted(changes, key=lambda change: change[0]):
        live += delta
        peak = max(peak, live)
    return peak


def peak_memory_mb(model: nn.Module, run: Callable[[], object], device: str) -> tuple[float, str]:
    """Peak memory (MiB) of ``run()`` (one video's inference with ``model``), and how it was measured.

    Both methods report weights + input + the activations alive at the peak, so CPU and CUDA numbers
    mean the same thing: on CUDA, ``torch.cuda.max_memory_allocated`` after a reset (the weights are
    already resident); on CPU, the weights' size plus the profiler's allocator peak during ``run()``.
    ``run`` should create its input itself, as a decoder would hand it over.
    """
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        run()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20, "torch.cuda.max_memory_allocated"
    peak = _state_bytes(model) + _profiled_peak_bytes(run)
    return peak / 2**20, "weights + torch.profiler(profile_memory=True) CPU allocator peak"


class LogitsOnly(nn.Module):
    """fvcore traces ``forward``; GRW models return ``(logits, aux)``: count the logits path only.

    Takes the wrapped model's mode, since ``count_gflops`` restores the wrapper's mode afterwards.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out[0] if isinstance(out, tuple) else out


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
