"""Counting GFLOPs and parameters the way the published tables do, and peak inference memory on CPU
or CUDA: the counters every measurement of the suite uses (Table 1 rows, the zoo, the methods' costs).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, flop_registry

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


# fvcore's operator categories (``by_operator`` names) outside the published convention: what its default
# total adds to the multiply-adds of convolutions and linear algebra.
_FVCORE_OUTSIDE_CONVENTION = frozenset(op.removeprefix("aten::") for op in (*_EXCLUDED_OPS, "aten::grid_sampler"))


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
def _flop_analysis(model: nn.Module, input_shape: Sequence[int],
                   handles: str = "convention") -> Iterator[FlopCountAnalysis]:
    """fvcore's analysis of ``model`` on zeros of ``input_shape``, in eval mode, without its warnings;
    ``handles="convention"`` zeroes the operators outside the published convention, ``"fvcore"`` keeps
    fvcore's defaults."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            analysis = FlopCountAnalysis(model, torch.zeros(*input_shape))
            for op in _EXCLUDED_OPS if handles == "convention" else ():
                # a handle counting zero: fvcore ignores `None` for ops that have a default handle
                analysis.set_op_handle(op, _zero_flops)
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            yield analysis
    finally:
        for module, training in modes.items():
            module.train(training)


def fvcore_count(model: nn.Module, input_shape: Sequence[int]) -> dict:
    """fvcore's count of one forward pass on a zero tensor of ``input_shape``, with fvcore's default handles.

    Returns ``gmacs`` (the published convention, :func:`count_gflops`'s number: multiply-adds of
    convolutions and linear algebra), ``total`` (fvcore's own default total, BatchNorm and the other
    normalisations, pooling and resampling included), ``by_operator`` (G per fvcore category),
    ``uncounted`` (operators fvcore met without a handle, with how often) and fvcore's ``version``.
    One trace gives all of them.
    """
    with _flop_analysis(model, input_shape, handles="fvcore") as analysis:
        flops = dict(sorted(analysis.by_operator().items()))
        uncounted = dict(sorted(analysis.unsupported_ops().items()))
    convention = sum(n for name, n in flops.items() if name not in _FVCORE_OUTSIDE_CONVENTION)
    return {"counter": "fvcore", "version": _version("fvcore"), "gmacs": convention / 1e9,
            "total": sum(flops.values()) / 1e9, "by_operator": {name: n / 1e9 for name, n in flops.items()},
            "uncounted": uncounted}


class _OperatorLog(TorchDispatchMode):
    """Every ATen operator that runs (views aside), with how often: what a dispatch-level counter saw."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view:
            self.calls[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def dispatch_count(run: Callable[[], object]) -> dict:
    """``torch.utils.flop_counter.FlopCounterMode``'s count of what ``run()`` executes, as multiply-adds.

    The counter sits at the dispatcher, not in a trace: it counts the operators that really run, so a
    dynamic model is counted on the path its input took. It counts only matrix products, convolutions and
    attention, at 2 FLOPs per multiply-add (halved here). Returns ``gmacs``, ``by_operator`` (G
    multiply-adds per ATen operator), ``uncounted`` (the other operators that ran, views aside, with how
    often) and the ``version`` (torch's). ``run`` may execute on the meta device: shapes are all it needs.
    """
    counter = FlopCounterMode(display=False)
    log = _OperatorLog()
    with torch.no_grad(), counter, log:
        run()
    flops = counter.get_flop_counts().get("Global", {})
    counted = {str(op) for op in flop_registry}
    by_operator = {str(op): n / 2e9 for op, n in sorted(flops.items(), key=lambda item: str(item[0]))}
    uncounted = {op: n for op, n in sorted(log.calls.items()) if op not in counted}
    return {"counter": "FlopCounterMode", "version": torch.__version__, "gmacs": counter.get_total_flops() / 2e9,
            "by_operator": by_operator, "uncounted": uncounted}


def dispatch_count_model(build: Callable[[], nn.Module], input_shape: Sequence[int]) -> dict:
    """:func:`dispatch_count` of one forward pass of a model built by ``build()`` on the meta device (no
    memory, no arithmetic: a static model's count needs only shapes), in eval mode, on ``input_shape``."""
    with torch.device("meta"):
        model = build().eval()
        video = torch.zeros(*input_shape)
        return dispatch_count(lambda: model(video))


def _version(package: str) -> str:
    return importlib.metadata.version(package)


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
