"""What every subcommand shares: usage errors and dataclass-driven options.

A command raises :class:`UsageError` for bad input; ``benchmarks.run`` turns it into one line on
stderr and exit status 2, before anything is launched. :func:`user_error` is the one rule for what
counts as the user's problem rather than the suite's: a ``UsageError`` (raised anywhere, also inside a
task run in this process) and an operating-system refusal to write (read-only file system, no
permission, disk full). Everything else is a bug and keeps its traceback; ``--debug`` (or
``GRW_BENCH_DEBUG=1``) keeps the traceback of user errors too. Options that configure a dataclass take their
defaults from it (:func:`default`), and :func:`from_args` builds the dataclass back from the parsed
arguments, so a default is written once, in the dataclass.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import errno
import importlib.util
import os
import typing
from typing import Any, TypeVar

T = TypeVar("T")


class UsageError(ValueError):
    """Bad command-line input; reported as ``<command>: error: <message>`` with exit status 2."""


DEBUG_ENV = "GRW_BENCH_DEBUG"
# What the operating system says when the user pointed the suite at a place it cannot write.
_WRITE_REFUSALS = {
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large (for the file system, or the file size limit, ulimit -f)",
}


def user_error(error: BaseException) -> str | None:
    """The one line to show for ``error`` when it is the user's problem (see the module doc), else None."""
    if isinstance(error, UsageError):
        return str(error)
    if isinstance(error, OSError) and error.errno in _WRITE_REFUSALS:
        where = error.filename or "the output"
        return (f"cannot write {where}: {_WRITE_REFUSALS[error.errno]}; choose a writable --out/--results "
                "(or free space) and run the command again (train: with --resume to continue)")
    return None


def check_writable(path: str | os.PathLike, flag: str) -> None:
    """Raise ``UsageError`` unless ``path`` (a folder, existing or not) could be created and written:
    its nearest existing ancestor must be a writable folder. Writes nothing."""
    current = os.path.abspath(path)
    while not os.path.exists(current):
        current = os.path.dirname(current)
    if not os.path.isdir(current):
        raise UsageError(f"{flag} {path}: {current} is a file, not a folder")
    if not os.access(current, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: {current} is not writable (read-only or no permission); choose another "
                         f"{flag}")


def debugging() -> bool:
    """Whether user errors should keep their traceback (``GRW_BENCH_DEBUG=1``; ``--debug`` sets it)."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def docstring_of(module: str) -> str:
    """The docstring of ``module``, read from its source without importing it: a command's ``--help``
    shows a library module's docstring without importing the library (and torch)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"no module named {module!r}")
    with open(spec.origin, encoding="utf-8") as source:
        return ast.get_docstring(ast.parse(source.read()), clean=False) or ""


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
