"""Where the suite reads and writes results.

Everything lives under one results directory (``results/`` of the checkout by default). Set
``GRW_BENCH_RESULTS`` to point the whole suite somewhere else (tests use a temporary one).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def results_dir() -> Path:
    return Path(os.environ.get("GRW_BENCH_RESULTS", REPO_ROOT / "results"))


def published_dir() -> Path:
    """Published numbers always come from the checkout, never from a redirected results dir."""
    return REPO_ROOT / "results" / "published"


def measured_dir() -> Path:
    return results_dir() / "measured"


def runs_dir() -> Path:
    return results_dir() / "runs"
