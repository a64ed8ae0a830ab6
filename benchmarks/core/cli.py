"""What every subcommand shares: usage errors and dataclass-driven options.

A command raises :class:`UsageError` for bad input; ``benchmarks.run`` turns it into one line on
stderr and exit status 2, before anything is launched. Options that configure a dataclass take their
defaults from it (:func:`default`), and :func:`from_args` builds the dataclass back from the parsed
arguments, so a default is written once, in the dataclass.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any, TypeVar

T = TypeVar("T")


class UsageError(ValueError):
    """Bad command-line input; reported as ``<command>: error: <message>`` with exit status 2."""


def default(cls: type, name: str) -> Any:
    """The default of field ``name`` of dataclass ``cls`` (for ``add_argument(default=...)``)."""
    for field in dataclasses.fields(cls):
        if field.name == name:
            if field.default is not dataclasses.MISSING:
                return field.default
            if field.default_factory is not dataclasses.MISSING:
                return field.default_factory()
            raise KeyError(f"{cls.__name__}.{name} has no default")
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def from_args(cls: type[T], args: argparse.Namespace, **given: Any) -> T:
    """``cls`` from the parsed arguments: each field from ``given``, else the argument of the same
    name, else the field's default; a field whose type is a dataclass is built the same way.

    Invalid values (the dataclass's ``__post_init__`` raises ``ValueError``) become a ``UsageError``.
    """
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        if field.name in given:
            values[field.name] = given[field.name]
        elif dataclasses.is_dataclass(hints.get(field.name)):
            values[field.name] = from_args(hints[field.name], args)
        elif hasattr(args, field.name):
            values[field.name] = getattr(args, field.name)
    try:
        return cls(**values)
    except ValueError as error:
        raise UsageError(str(error)) from error
