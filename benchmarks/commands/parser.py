"""The command line of ``python -m benchmarks.run``: one parser, a subparser per subcommand.

Two kinds of subcommand. A command of the suite (``benchmarks.run.SUBCOMMANDS``) is a module of this
package with ``add_arguments(parser)`` and ``main(args) -> int``. A method's subcommand is declared by
its method folder as data (``benchmarks.core.options.SUBCOMMANDS``): a module with an ``Options``
dataclass of ``option()`` fields, whose flags :func:`benchmarks.commands.options.add_options` builds, and
``run(options, store) -> int``. Either way only the selected subcommand's module is imported, so
``--help`` and usage errors come back without building anything; every command gets ``--results DIR``
(the results store, ``args.store``), and a ``UsageError`` becomes one line on stderr and exit status 2.

Neither imports torch: a command module imports its library where ``main`` uses it, and a method
subcommand that declares where its ``Options`` live (``Subcommand.options``) is imported only to run, its
``--help`` read from its module's source (``tests/test_cli.py`` checks this for every subcommand).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from types import ModuleType

from benchmarks.commands.options import add_options, options_from_args
from benchmarks.core.cli import DEBUG_ENV, debugging, docstring_of, user_error
from benchmarks.core.options import SUBCOMMANDS, Subcommand
from benchmarks.core.paths import RESULTS_ENV
from benchmarks.core.registry import resolve
from benchmarks.core.store import Store, set_cli_command

DESCRIPTION = ("grw-bench: reproduce and compare Table 1 of 'Smooth Regularization for Efficient Video "
               "Recognition' (GRW-smoothing, NeurIPS 2025).")


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (exit status 2), no usage dump, and no abbreviated long
    options: ``--res`` must never silently mean ``--results``."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def method_subcommands(commands: dict[str, tuple[str, str]]) -> dict[str, Subcommand]:
    """The registered method subcommands (``benchmarks.core.options.SUBCOMMANDS``); a name the suite's
    own commands already use is an error."""
    registered = {name: SUBCOMMANDS.get(name) for name in SUBCOMMANDS.names()}
    clashes = sorted({name for sub in registered.values() for name in (sub.name, *sub.aliases)} & set(commands))
    if clashes:
        raise ValueError(f"method subcommand(s) {', '.join(clashes)} clash with the suite's own commands")
    return registered


def _add_results(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", metavar="DIR", help=f"results directory to read and write (default: "
                        f"${RESULTS_ENV}, else results/ of the checkout)")
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback of user errors too (default: off; or set {DEBUG_ENV}=1)")


def _describe(parser: argparse.ArgumentParser, module: ModuleType, help_text: str) -> None:
    """The subcommand's ``--help`` text: the module's ``DESCRIPTION`` (a command of a library module
    shows the library's docstring), else its docstring."""
    _set_description(parser, getattr(module, "DESCRIPTION", None) or module.__doc__ or help_text)


def _set_description(parser: argparse.ArgumentParser, text: str) -> None:
    parser.description = text.strip()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def _add_method_subcommand(parser: argparse.ArgumentParser, name: str, declared: Subcommand) -> None:
    """The flags and ``--help`` of a method subcommand. With ``declared.options`` its module (and its
    torch) is imported only when the subcommand runs, and must define those very ``Options``."""
    if declared.options is None:
        module = importlib.import_module(declared.module)
        options = module.Options
        _describe(parser, module, declared.help)
    else:
        options = resolve(declared.options)
        _set_description(parser, docstring_of(declared.module) or declared.help)
    add_options(parser, options)
    _add_results(parser)
    parser.set_defaults(_main=lambda args: _run_method_subcommand(args, declared, name, options))


def _run_method_subcommand(args: argparse.Namespace, declared: Subcommand, name: str, options: type) -> int:
    module = importlib.import_module(declared.module)
    if getattr(module, "Options", options) is not options:
        raise TypeError(f"subcommand {name}: {declared.module}.Options is not {declared.options}")
    return module.run(options_from_args(args, options, owner=name), args.store)


def build_parser(commands: dict[str, tuple[str, str]], selected: str | None = None) -> argparse.ArgumentParser:
    """The parser of the suite's ``commands`` (name -> (module, one-line help)) and of the method
    subcommands. Only the ``selected`` subcommand's module is imported (and its options added); when it
    is one of ``commands``, the method subcommands are not even looked up."""
    parser = Parser(prog="python -m benchmarks.run", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=Parser)
    sub.required = True
    for name, (module_name, help_text) in commands.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            module = importlib.import_module(module_name)
            _describe(p, module, help_text)
            module.add_arguments(p)
            _add_results(p)
            p.set_defaults(_main=module.main)
    if selected in commands:
        return parser
    for name, declared in method_subcommands(commands).items():
        p = sub.add_parser(name, help=declared.help, description=declared.help, aliases=list(declared.aliases))
        if selected in (name, *declared.aliases):
            _add_method_subcommand(p, name, declared)
    return parser


def main(commands: dict[str, tuple[str, str]], argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run the subcommand; its exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    selected = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(commands, selected).parse_args(argv)
    args.store = Store(args.results) if args.results else Store.default()
    set_cli_command(argv)
    with _debug_environment(args.debug):
        return _run(args)


@contextlib.contextmanager
def _debug_environment(debug: bool) -> Iterator[None]:
    """``--debug`` sets ``GRW_BENCH_DEBUG`` while the command runs (the tasks it starts inherit it)."""
    before = os.environ.get(DEBUG_ENV)
    if debug:
        os.environ[DEBUG_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(DEBUG_ENV, None)
        else:
            os.environ[DEBUG_ENV] = before


def _run(args: argparse.Namespace) -> int:
    """Run the parsed subcommand: a user error is one line and exit status 2, Ctrl-C 130 (module doc)."""
    try:
        return int(args._main(args) or 0)
    except BrokenPipeError:  # the output's reader left (`| head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        if debugging():
            raise
        print(f"{args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        message = user_error(error)
        if message is None or debugging():
            raise
        print(f"{args.command}: error: {message}", file=sys.stderr)
        return 2
