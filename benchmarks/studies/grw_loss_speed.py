"""Speed of the GRW-smoothing loss on CPU: Gram-matrix implementation vs the gather reference.

Times forward + backward of ``grw.GrwSmoothingLoss`` and of ``grw.reference.reference_grw_loss`` (which
builds every permuted sequence) in the same run, checks that their losses agree and how far each
float32 gradient is from the float64 one, and prints a markdown table.
Run: ``python -m benchmarks.run grw-loss-speed``.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from grw import GrwSmoothingLoss
from grw.reference import reference_grw_loss


@dataclass(frozen=True)
class Case:
    batch: int  # number of windows
    window: int
    features: int


CASES = (Case(64, 5, 480), Case(64, 7, 480), Case(16, 7, 2048))


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def loss_and_grad(loss_fn: Callable, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    z = z.detach().requires_grad_()
    loss = loss_fn(z)
    loss.backward()
    return loss.detach(), z.grad


def float64_grad(loss_fn: Callable, z: torch.Tensor, chunk: int = 4) -> torch.Tensor:
    """Gradient of the batch-mean loss in float64, a few windows at a time to bound memory."""
    z = z.detach().double().requires_grad_()
    for part in z.split(chunk):
        (loss_fn(part) * len(part) / len(z)).backward()
    return z.grad


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def interleaved_median_ms(steps: dict[str, tuple[Callable, int]], rounds: int) -> dict[str, float]:
    """Median ms per call of each ``name: (step, calls per round)``.

    The steps alternate round by round, so that a machine shared with other jobs loads them alike.
    """
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step, _ in steps.values():
        step()  # warm-up
    for _ in range(rounds):
        for name, (step, calls) in steps.items():
            for _ in range(calls):
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) * 1e3 for name, values in times.items()}


def measure(case: Case, rounds: int) -> dict:
    torch.manual_seed(0)
    fast = GrwSmoothingLoss(case.window)

    def reference(z: torch.Tensor) -> torch.Tensor:
        return reference_grw_loss(z, fast.perms, fast.alpha)

    z = torch.randn(case.batch, case.window, case.features)
    (fast_loss, fast_grad), (ref_loss, ref_grad) = loss_and_grad(fast, z), loss_and_grad(reference, z)
    exact_grad = float64_grad(reference, z)
    ms = interleaved_median_ms(
        {"ref": (lambda: loss_and_grad(reference, z), 1), "fast": (lambda: loss_and_grad(fast, z), 20)}, rounds
    )
    return {
        "shape [B, T, K]": f"[{case.batch}, {case.window}, {case.features}]",
        "window": case.window,
        "P": fast.num_perms,
        "ref ms": f"{ms['ref']:.1f}",
        "fast ms": f"{ms['fast']:.2f}",
        "speed-up": f"{ms['ref'] / ms['fast']:.0f}x",
        "max rel diff (loss)": f"{rel_diff(fast_loss, ref_loss):.1e}",
        "grad err fast": f"{rel_diff(fast_grad, exact_grad):.1e}",
        "grad err ref": f"{rel_diff(ref_grad, exact_grad):.1e}",
    }
