"""Named extension points: training methods, schedules, method subcommands, study reports.

Each extension point is a :class:`Registry`, defined in the layer that uses it (``engine.method.METHODS``,
``engine.schedules.SCHEDULES``, ``core.options.SUBCOMMANDS``, ...). Plugins register into them when they
are imported: the methods shipped with the suite by ``benchmarks/methods/__init__.py`` (one line each),
others by naming their modules in ``$GRW_BENCH_PLUGINS`` (comma-separated), or by importing them before
the suite looks a name up. A lookup of an unknown name first imports the plugins (:func:`discover`), so
a layer below ``benchmarks.methods`` never imports a method by name.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

PLUGINS_ENV = "GRW_BENCH_PLUGINS"  # comma-separated modules imported by discover(), after the suite's methods
BUILTIN_PLUGINS = "benchmarks.methods"
_discovered = False
_REGISTRIES: dict[str, Registry] = {}  # by kind
_PENDING: dict[str, dict[str, object]] = {}  # kind -> name -> item, registered before the registry existed


def discover() -> None:
    """Import the suite's methods and the modules in ``$GRW_BENCH_PLUGINS`` (once)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    extra = [name.strip() for name in os.environ.get(PLUGINS_ENV, "").split(",") if name.strip()]
    for module in (BUILTIN_PLUGINS, *extra):
        importlib.import_module(module)


def register(kind: str, name: str, item: object) -> None:
    """Register ``item`` as ``name`` in the registry of ``kind`` (``"method"``, ``"schedule"``, ...) without
    importing the module that defines it (and its torch): it joins the registry when the registry is
    first looked up, after the items registered there directly."""
    if kind in _REGISTRIES:
        _REGISTRIES[kind].register(name, item)
    else:
        _PENDING.setdefault(kind, {})[name] = item


class Registry(Generic[T]):
    """Named items of one kind, in registration order. An item may be registered as ``"module:attribute"``:
    it is imported when first looked up, so registering costs no import."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        _REGISTRIES[kind] = self

    def register(self, name: str, item: T) -> T:
        """Add ``item`` as ``name``; registering the same item again is harmless, another one is an error."""
        if name in self._items and self._items[name] is not item:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = item
        return item

    def unregister(self, name: str) -> None:
        self._items.pop(name, None)

    def _discover(self) -> None:
        discover()
        for name, item in _PENDING.pop(self.kind, {}).items():
            self.register(name, item)  # type: ignore[arg-type]

    def get(self, name: str) -> T:
        if name not in self._items or self.kind in _PENDING:
            self._discover()
        if name not in self._items:
            raise ValueError(f"unknown {self.kind} {name!r}; registered: {', '.join(self.names())}")
        item = self._items[name]
        if isinstance(item, str) and ":" in item:
            module, _, attribute = item.partition(":")
            item = self._items[name] = getattr(importlib.import_module(module), attribute)
        return item

    def names(self) -> tuple[str, ...]:
        self._discover()
        return tuple(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        """Every item, imported (see :meth:`get`)."""
        return iter([(name, self.get(name)) for name in self.names()])

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._items
