"""Options as data: a dataclass whose fields are a component's options, each with its help text.

Methods, schedules and the method subcommands declare their options this way (``option()`` fields) and
never touch argparse: ``benchmarks.commands`` turns the dataclasses into command-line flags. A method
subcommand is a module with an ``Options`` dataclass and ``run(options, store) -> int``, registered in
:data:`SUBCOMMANDS` as ``Subcommand(name, help, module)``; its module docstring is its ``--help``. A
subcommand whose module imports torch declares where its ``Options`` live (``options="module:Class"``, in a
module light to import), so that its ``--help`` and argument errors import neither.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.core.registry import Registry


@dataclass(frozen=True)
class NoOptions:
    """A method or schedule without options of its own."""


def option(default: Any, help: str, *, flag: str | None = None, choices: Sequence[Any] | None = None,
           metavar: str | None = None) -> Any:
    """A dataclass field that is also a command-line option (``--name-with-dashes`` unless ``flag``)."""
    metadata = {"help": help, "flag": flag, "choices": tuple(choices) if choices is not None else None,
                "metavar": metavar}
    return dataclasses.field(default=default, metadata=metadata)


def flag_of(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def to_dict(options: Any) -> dict[str, Any]:
    """An options dataclass as plain data (how it is stored in run configs and checkpoints)."""
    return dataclasses.asdict(options)


def from_dict(cls: type, values: dict[str, Any] | None, owner: str) -> Any:
    """``cls`` from stored or given values; an unknown name or a bad value is a ``ValueError`` naming ``owner``."""
    values = dict(values or {})
    known = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{owner} has no option {', '.join(map(repr, unknown))}; its options: "
                         f"{', '.join(sorted(known)) or 'none'}")
    for field in dataclasses.fields(cls):
        choices = field.metadata.get("choices")
        if field.name in values and choices is not None and values[field.name] not in choices:
            raise ValueError(f"{owner}: {flag_of(field)} must be one of {', '.join(map(str, choices))}, "
                             f"got {values[field.name]!r}")
    return cls(**values)


@dataclass(frozen=True)
class Subcommand:
    """A subcommand contributed by a method folder: ``module`` defines ``Options`` and ``run(options, store)``."""

    name: str
    help: str  # one line, for the list of subcommands
    module: str
    aliases: tuple[str, ...] = ()  # other names it answers to (an older name, say)
    options: str | None = None  # "module:Class" of the module's Options, light to import (None: module.Options)


SUBCOMMANDS: Registry[Subcommand] = Registry("subcommand")
