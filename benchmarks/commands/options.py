"""Command-line flags from options dataclasses (``benchmarks.core.options``): one flag per field, its help
text and default from the field, so methods, schedules and method subcommands declare their options as data
and only this package touches argparse."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import TYPE_CHECKING, Any

from benchmarks.core.cli import UsageError
from benchmarks.core.options import flag_of, from_dict

if TYPE_CHECKING:
    from benchmarks.core.registry import Registry

UNSET = None  # flags default to None, so a flag the user gave can be told from a default


def _dest(prefix: str, field: dataclasses.Field) -> str:
    return f"{prefix}__{field.name}" if prefix else field.name


def _value_type(cls: type, field: dataclasses.Field) -> type:
    hint = typing.get_type_hints(cls)[field.name]
    if typing.get_origin(hint) is tuple:
        return hint
    args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    return args[0] if args else hint


def _comma_list(hint: Any):
    """A parser of ``"a,b,c"`` into a tuple of the hint's item type (``tuple[int, ...]``: ints)."""
    item = next((arg for arg in typing.get_args(hint) if arg is not Ellipsis), str)

    def parse(text: str) -> tuple:
        try:
            return tuple(item(part.strip()) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {item.__name__} values, got {text!r}") from None

    parse.__name__ = f"comma-separated {item.__name__} list"
    return parse


def _shown(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def add_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, prefix: str = "",
                defaults: bool = True) -> None:
    """One flag per field of ``cls``. With ``defaults=False`` a flag not given stays None (its default
    shown in the help), so :func:`given_options` can tell what the user set."""
    for field in dataclasses.fields(cls):
        kind = _value_type(cls, field)
        meta = field.metadata
        text = meta.get("help") or ""
        if "%(default)" in text:  # the help says where the default goes
            text = text.replace("%(default)s", _shown(field.default).replace("%", "%%"))
        elif field.default is not None:
            text += f" (default: {_shown(field.default)})"
        kwargs: dict[str, Any] = {"dest": _dest(prefix, field), "help": text}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction if field.default else "store_true"
            kwargs["default"] = field.default if defaults else UNSET
        else:
            parse = _comma_list(kind) if typing.get_origin(kind) is tuple else kind
            kwargs.update(type=parse, default=field.default if defaults else UNSET)
            if meta.get("choices") is not None:
                kwargs["choices"] = meta["choices"]
            if meta.get("choices") is None:
                kwargs["metavar"] = meta.get("metavar") or field.name.upper()
        parser.add_argument(flag_of(field), **kwargs)


def given_options(args: argparse.Namespace, cls: type, prefix: str = "") -> dict[str, Any]:
    """The fields of ``cls`` whose flags were given (added with ``defaults=False``)."""
    values = {field.name: getattr(args, _dest(prefix, field), UNSET) for field in dataclasses.fields(cls)}
    return {name: value for name, value in values.items() if value is not UNSET}


def options_from_args(args: argparse.Namespace, cls: type, prefix: str = "", owner: str = "") -> Any:
    """``cls`` from the parsed flags (added with ``defaults=True``); a bad value is a ``UsageError``."""
    values = {field.name: getattr(args, _dest(prefix, field)) for field in dataclasses.fields(cls)}
    try:
        return from_dict(cls, values, owner or cls.__name__)
    except ValueError as error:
        raise UsageError(str(error)) from error


def component_flags(args: argparse.Namespace, registry: Registry, chosen: str | None, kind: str,
                    option_class: str = "Options", flag_of_choice: str | None = None) -> dict[str, Any]:
    """The options of the ``chosen`` component (a method or a schedule of ``registry``) from its flags; a flag
    of another component is a ``UsageError`` (it would silently do nothing)."""
    chosen_options: dict[str, Any] = {}
    for name in registry.names():
        cls = registry.attribute(name, option_class)
        given = given_options(args, cls, prefix=f"{kind}_{name}")
        if name == chosen:
            chosen_options = given
        elif given:
            fields = {field.name: field for field in dataclasses.fields(cls)}
            flags = ", ".join(flag_of(fields[field]) for field in given)
            raise UsageError(f"{flags} belongs to {kind} {name}: add {flag_of_choice or '--' + kind} {name}")
    return chosen_options


def add_component_options(parser: argparse.ArgumentParser, registry: Registry, kind: str,
                          option_class: str = "Options") -> None:
    """An argument group of flags per component of ``registry`` that has options. The options are read
    where the registration declares them (``Registry.attribute``): no component is imported for them."""
    for name in registry.names():
        cls = registry.attribute(name, option_class)
        if dataclasses.fields(cls):
            group = parser.add_argument_group(f"{kind} {name} ({registry.module_of(name)})")
            add_options(group, cls, prefix=f"{kind}_{name}", defaults=False)


def positive_ints(text: str) -> list[int]:
    """``"1,2,8"`` -> [1, 2, 8] for options that take comma-separated integers >= 1."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 1,2, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values
