"""What the stored studies contribute to ``figures`` and to the proxy's figure, as registries.

A study stores its summary as ``runs/<subfolder>/<name>-<time>.json``. Its :class:`Report` renders its
outputs again from the newest one (``figures`` renders every registered report); a study drawn on the
proxy's figure (same data, same input) registers an :class:`Overlay`. The method folders register
theirs in their ``__init__`` as ``"module:function"`` strings, so registering imports nothing heavy and
nothing here or in ``benchmarks.commands`` names a method.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.core.registry import Registry

if TYPE_CHECKING:
    from benchmarks.core.store import Store


def load(reference: str) -> Callable[..., Any]:
    """The function named ``"module:function"``."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class StoredStudy:
    name: str  # runs/<subfolder>/<name>-<time>.json
    subfolder: str

    def latest(self, store: Store) -> dict | None:
        return store.latest(self.name, self.subfolder)


@dataclass(frozen=True)
class Report(StoredStudy):
    """A study's outputs from its newest stored summary: ``write_outputs(summary, out_dir) -> [paths]``."""

    write_outputs: str = ""  # "module:function"

    def render(self, store: Store) -> list[Path]:
        summary = self.latest(store)
        return load(self.write_outputs)(summary, store.root) if summary is not None else []


@dataclass(frozen=True)
class Overlay(StoredStudy):
    """A study the proxy's figure draws: ``draw(ax, summary)`` on its axes (top-1 vs GFLOPs per clip)."""

    draw: str = ""  # "module:function"


REPORTS: Registry[Report] = Registry("study report")
PROXY_OVERLAYS: Registry[Overlay] = Registry("proxy overlay")

REPORTS.register("proxy", Report("proxy", "proxy", "benchmarks.studies.proxy_report:write_outputs"))
