"""Named extension points: training methods, schedules, method subcommands, study reports.

Each extension point is a :class:`Registry`, defined in the layer that uses it (``engine.method.METHODS``,
``engine.schedules.SCHEDULES``, ``core.options.SUBCOMMANDS``, ...). Plugins register into them when they
are imported: the methods shipped with the suite by ``benchmarks/methods/__init__.py`` (one line each),
others by naming their modules in ``$GRW_BENCH_PLUGINS`` (comma-separated), or by importing them before
the suite looks a name up. A lookup of an unknown name first imports the plugins (:func:`discover`), so
a layer below ``benchmarks.methods`` never imports a method by name.

An item registered as ``"module:attribute"`` may declare where some of its attributes live
(``register("method", "a3d", "...method:A3DMethod", Options="...options:A3DOptions")``), in a module that
is light to import: the command line reads them (:meth:`Registry.attribute`) without importing the item
and its torch, which keeps ``--help`` and argument errors fast. When the item is imported, its attributes
must be the declared objects (a ``ValueError`` otherwise), so the declaration never drifts from the class.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

PLUGINS_ENV = "GRW_BENCH_PLUGINS"  # comma-separated modules imported by discover(), after the suite's methods
BUILTIN_PLUGINS = "benchmarks.methods"
_discovered = False
_REGISTRIES: dict[str, Registry] = {}  # by kind
# kind -> name -> (item, declared attributes), registered before the registry existed
_PENDING: dict[str, dict[str, tuple[object, dict[str, str]]]] = {}


def discover() -> None:
    """Import the suite's methods and the modules in ``$GRW_BENCH_PLUGINS`` (once)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    extra = [name.strip() for name in os.environ.get(PLUGINS_ENV, "").split(",") if name.strip()]
    for module in (BUILTIN_PLUGINS, *extra):
        importlib.import_module(module)


def register(kind: str, name: str, item: object, **declared: str) -> None:
    """Register ``item`` as ``name`` in the registry of ``kind`` (``"method"``, ``"schedule"``, ...) without
    importing the module that defines it (and its torch): it joins the registry when the registry is
    first looked up, after the items registered there directly. ``declared``: where some of the item's
    attributes live, as ``"module:attribute"`` (see the module docstring)."""
    if kind in _REGISTRIES:
        _REGISTRIES[kind].register(name, item, **declared)
    else:
        _PENDING.setdefault(kind, {})[name] = (item, declared)


def resolve(reference: str) -> object:
    """The object a ``"module:attribute"`` string names (the module is imported)."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _is_reference(item: object) -> bool:
    return isinstance(item, str) and ":" in item


class Registry(Generic[T]):
    """Named items of one kind, in registration order. An item may be registered as ``"module:attribute"``:
    it is imported when first looked up, so registering costs no import."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._declared: dict[str, dict[str, str]] = {}  # name -> attribute -> "module:attribute"
        _REGISTRIES[kind] = self

    def register(self, name: str, item: T, **declared: str) -> T:
        """Add ``item`` as ``name``; registering the same item again is harmless, another one is an error.
        ``declared``: where some of its attributes live (module docstring)."""
        if name in self._items and self._items[name] is not item:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        declared = {**self._declared.get(name, {}), **declared}
        if not _is_reference(item):
            self._check_declared(name, item, declared)
        self._items[name], self._declared[name] = item, declared
        return item

    def unregister(self, name: str) -> None:
        self._items.pop(name, None)
        self._declared.pop(name, None)

    def _discover(self) -> None:
        discover()
        for name, (item, declared) in _PENDING.pop(self.kind, {}).items():
            self.register(name, item, **declared)  # type: ignore[arg-type]

    def _registered(self, name: str) -> T:
        """The item as registered (perhaps still a ``"module:attribute"`` string)."""
        if name not in self._items or self.kind in _PENDING:
            self._discover()
        if name not in self._items:
            raise ValueError(f"unknown {self.kind} {name!r}; registered: {', '.join(self.names())}")
        return self._items[name]

    def _check_declared(self, name: str, item: object, declared: dict[str, str]) -> None:
        """The declaration must name the item's own attributes: the command line reads the declaration,
        the training and evaluation read the item."""
        for attribute, reference in declared.items():
            if getattr(item, attribute, None) is not resolve(reference):
                raise ValueError(f"{self.kind} {name!r} declares {attribute} as {reference}, but its {attribute} "
                                 f"is {getattr(item, attribute, None)!r}")

    def get(self, name: str) -> T:
        item = self._registered(name)
        if _is_reference(item):
            item = resolve(item)  # type: ignore[arg-type, assignment]
            self._check_declared(name, item, self._declared.get(name, {}))
            self._items[name] = item
        return item

    def attribute(self, name: str, attribute: str) -> Any:
        """``getattr(self.get(name), attribute)``, read from where the registration declared it when it did,
        without importing the item."""
        self._registered(name)
        reference = self._declared.get(name, {}).get(attribute)
        return resolve(reference) if reference is not None else getattr(self.get(name), attribute)

    def module_of(self, name: str) -> str:
        """The name of the module that defines item ``name``, without importing it."""
        item = self._registered(name)
        return item.partition(":")[0] if _is_reference(item) else item.__module__  # type: ignore[union-attr]

    def names(self) -> tuple[str, ...]:
        self._discover()
        return tuple(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        """Every item, imported (see :meth:`get`)."""
        return iter([(name, self.get(name)) for name in self.names()])

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._items
