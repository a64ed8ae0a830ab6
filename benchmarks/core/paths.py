"""Where the suite's own files are.

Results go to a :class:`benchmarks.core.store.Store`; its default root is ``$GRW_BENCH_RESULTS`` when set,
else ``results/`` of the checkout. Published numbers always come from the checkout.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_ENV = "GRW_BENCH_RESULTS"  # the user-facing default of the results directory


def published_dir() -> Path:
    """Published numbers always come from the checkout, never from a redirected results dir."""
    return REPO_ROOT / "results" / "published"
