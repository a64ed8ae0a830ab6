"""Figures written the same way everywhere: reproducible bytes, atomic files."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from benchmarks.core.store import atomic_path  # noqa: E402


def save_figure(fig: plt.Figure, paths: list[Path]) -> list[Path]:
    """Write ``fig`` to every path (the format from the suffix) and close it.

    No date in the metadata and a fixed SVG id salt, so re-rendering the same results gives the same
    files (no spurious diffs in results/)."""
    for path in paths:
        with plt.rc_context({"svg.hashsalt": "grw-bench"}), atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=150,
                        metadata={"Date": None} if path.suffix in (".svg", ".pdf") else None)
    plt.close(fig)
    return paths
