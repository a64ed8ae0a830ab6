import argparse
import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.core.paths import REPO_ROOT
from benchmarks.run import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.run", *args], capture_output=True, text=True)


def test_help_lists_subcommands():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "table1" in result.stdout


@pytest.mark.parametrize("args", [["no-such-command"], ["table1", "--no-such-option"], []])
def test_bad_arguments_exit_2_with_one_line(args):
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0]


def every_subcommand() -> list[str]:
    from benchmarks.core.options import SUBCOMMANDS
    from benchmarks.run import SUBCOMMANDS as COMMANDS

    return [*COMMANDS, *(name for registered in SUBCOMMANDS.names()
                         for name in (registered, *SUBCOMMANDS.get(registered).aliases))]


def test_every_subcommand_has_help():
    names = every_subcommand()
    assert {"figures", "grw-loss-speed", "a3d-cost", "a3d-study", "vared2-cost", "vared2-study", "multigrid-study",
            "multigrid"} <= set(names)
    for name in names:
        result = run_cli(name, "--help")
        assert result.returncode == 0, (name, result.stderr)
        assert "--results DIR" in result.stdout, name


def test_method_subcommands_keep_their_flags_and_defaults():
    from benchmarks.commands.parser import build_parser
    from benchmarks.run import SUBCOMMANDS as COMMANDS

    args = build_parser(COMMANDS, "a3d-cost").parse_args(["a3d-cost", "--a3d-range", "[0.06,1]", "--frames", "8"])
    assert (args.row, args.frames, args.res, args.a3d_range, args.batch_size, args.steps) == (13, 8, None, "[0.06,1]",
                                                                                              4, 3)
    args = build_parser(COMMANDS, "vared2-cost").parse_args(["vared2-cost", "--rows", "5"])
    assert args.rows == (5,)
    assert build_parser(COMMANDS, "vared2-cost").parse_args(["vared2-cost"]).rows == (5, 13)
    args = build_parser(COMMANDS, "multigrid").parse_args(["multigrid", "--seeds", "2"])
    assert (args.seeds, args.epochs, args.processes) == (2, 6, 2)


@pytest.mark.parametrize("argv, message", [(["a3d-study", "--seeds", "0"], "at least 1"),
                                           (["vared2-cost", "--rows", "1"], "X3D rows only")])
def test_method_subcommands_report_bad_options_as_usage_errors(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_main_returns_int_for_help():
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0


def test_train_help_separates_the_authors_recipe_from_the_suites_choices():
    from benchmarks.table1.specs import AUTHORS_RECIPE

    help_text = run_cli("train", "--help").stdout
    stated, _, chosen = help_text.partition("Where it is silent")
    assert chosen, "the epilog names what the suite chooses"
    for name, cited in AUTHORS_RECIPE.items():
        if cited.value is None:  # silent in the authors' code: listed with the option that sets it here
            assert f"  {name}: " in chosen and f"  {name}: " not in stated
        else:
            assert f"  {name}: {cited.value}" in stated and cited.source in stated
    assert "  lr: --lr 0.001" in chosen and "  ema_decay: --ema-decay 0.9998" in chosen
    assert "  grw_weight: --grw-weight 1.0" in chosen


# --------------------------------------------------------------------------- layering

BENCHMARKS = REPO_ROOT / "benchmarks"


def benchmark_modules() -> dict[str, Path]:
    return {".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__"): path
            for path in sorted(BENCHMARKS.rglob("*.py"))}


def imported_benchmark_modules(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every ``benchmarks`` module ``path`` imports: at module level, inside functions, and for type
    checkers only (under ``if TYPE_CHECKING:``), which counts too: a cycle there is a cycle of design."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def test_no_import_cycle_among_benchmarks_modules():
    modules = benchmark_modules()
    graph = {name: imported_benchmark_modules(path, modules) - {name} for name, path in modules.items()}
    visiting, done = [], set()

    def visit(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, f"import cycle: {' -> '.join(visiting[visiting.index(name):] + [name])}"
        visiting.append(name)
        for imported in sorted(graph[name]):
            visit(imported)
        visiting.pop()
        done.add(name)

    for name in graph:
        visit(name)


def test_commands_sit_above_the_library():
    """Nothing below a command imports a command module (one with ``add_arguments``/``main``)."""
    modules = benchmark_modules()
    commands = {name for name, path in modules.items()
                if "def add_arguments(" in path.read_text() and "def main(" in path.read_text()}
    assert {"benchmarks.commands.train", "benchmarks.commands.eval", "benchmarks.commands.table1"} <= commands
    for name, path in modules.items():
        if name not in commands and name != "benchmarks.run":
            assert not imported_benchmark_modules(path, modules) & commands, f"{name} imports a command"


IMPORT_EACH_ALONE = """
import importlib, sys
failed = {}
for module in sys.argv[1:]:
    for name in [name for name in sys.modules if name.split(".")[0] in ("benchmarks", "grw", "baselines")]:
        del sys.modules[name]  # this suite's modules afresh; torch and other libraries stay loaded
    try:
        importlib.import_module(module)
    except Exception as error:
        failed[module] = repr(error)
print(failed)
"""


def test_each_module_imports_on_its_own():
    """Each module imported first, with none of the suite's modules loaded before it."""
    result = subprocess.run([sys.executable, "-c", IMPORT_EACH_ALONE, *sorted(benchmark_modules())],
                            capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{}"


ARGPARSE_CALLS = {"add_argument", "add_argument_group", "add_mutually_exclusive_group", "add_parser",
                  "add_subparsers", "ArgumentParser"}


def test_only_commands_define_arguments():
    """No module outside ``benchmarks/commands/`` builds a parser or defines an argument: a method or a
    study declares its options as data (``benchmarks.core.options``) and ``benchmarks.commands`` turns
    them into flags."""
    offenders = []
    for name, path in benchmark_modules().items():
        if name.startswith("benchmarks.commands."):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
                if called in ARGPARSE_CALLS:
                    offenders.append(f"{name}:{node.lineno} {called}")
    assert not offenders, offenders


NO_TORCH = """
import sys
from benchmarks.run import main
import benchmarks.methods  # the methods' registrations: strings, nothing heavy
assert "torch" not in sys.modules, "registering the methods imported torch"
assert main(["figures", "--results", sys.argv[1]]) == 0
assert "torch" not in sys.modules, "figures imported torch"
"""


def test_figures_and_the_method_registrations_import_no_torch(tmp_path):
    result = subprocess.run([sys.executable, "-c", NO_TORCH, str(tmp_path)], capture_output=True, text=True,
                            cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr


# What --help and an argument error must not import: torch alone takes a second or more to import.
HEAVY = ("torch", "torchvision", "fvcore", "decord", "matplotlib", "pandas", "submitit")
ARGUMENT_ERRORS = (
    ["train", "--row", "5", "--bogus"],
    ["train", "--row", "5", "--data", "d", "--out", "o", "--epochs", "x"],  # a bad value
    ["eval", "--frames", "x"],
    ["eval", "--row", "5", "--data", "d", "--checkpoint", "c", "--chunk", "x"],
)

NOTHING_HEAVY = """
import contextlib, io, json, sys
from benchmarks.run import build_parser, main
heavy, names, errors = json.loads(sys.argv[1])
def loaded():
    return sorted(name for name in heavy if name in sys.modules)
assert not loaded(), f"importing benchmarks.run imported {loaded()}"
for name in names:  # each parser built as `python -m benchmarks.run NAME --help` builds it
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            build_parser(name).parse_args([name, "--help"])
        except SystemExit as exited:
            assert exited.code == 0, f"{name} --help exited with {exited.code}"
    assert not loaded(), f"{name} --help imported {loaded()}"
for argv in errors:
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            main(argv)
        except SystemExit as exited:
            assert exited.code == 2, f"{argv} exited with {exited.code}"
        else:
            raise AssertionError(f"{argv} was accepted")
    assert not loaded(), f"{' '.join(argv)} imported {loaded()}"
"""


def test_help_and_argument_errors_import_nothing_heavy():
    """``--help`` of every subcommand and argument errors of ``train`` and ``eval`` come back without
    importing torch and the other heavy libraries (the command modules import them where they use them)."""
    payload = json.dumps([HEAVY, every_subcommand(), ARGUMENT_ERRORS])
    result = subprocess.run([sys.executable, "-c", NOTHING_HEAVY, payload], capture_output=True, text=True,
                            cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr


def test_declared_options_are_the_ones_the_modules_define():
    """What the registrations declare for the command line (options in a light module) is what the
    registered classes and the subcommand modules use."""
    from benchmarks.core.options import SUBCOMMANDS
    from benchmarks.core.registry import resolve
    from benchmarks.engine.method import METHODS
    from benchmarks.engine.schedules import SCHEDULES

    for registry, attributes in ((METHODS, ("Options", "EvalOptions")), (SCHEDULES, ("Options",))):
        for name in registry.names():
            for attribute in attributes:
                assert registry.attribute(name, attribute) is getattr(registry.get(name), attribute), (name, attribute)
    declared = [SUBCOMMANDS.get(name) for name in SUBCOMMANDS.names()]
    assert all(subcommand.options for subcommand in declared), "a method subcommand would import its module for --help"
    for subcommand in declared:
        assert importlib.import_module(subcommand.module).Options is resolve(subcommand.options), subcommand.name


def test_a_declaration_that_is_not_the_class_attribute_is_refused():
    from benchmarks.core.registry import Registry

    registry = Registry("declaration test")
    registry.register("standard", "benchmarks.engine.method:Method", Options="benchmarks.core.options:Subcommand")
    assert registry.attribute("standard", "Options").__name__ == "Subcommand"  # read where declared
    assert registry.module_of("standard") == "benchmarks.engine.method"
    with pytest.raises(ValueError, match="declares Options"):
        registry.get("standard")


def test_no_subcommand_accepts_an_abbreviated_long_option():
    """``eval --res 32`` once meant ``--results 32``: a prefix of a long option is never taken for it."""
    from benchmarks.commands.parser import method_subcommands
    from benchmarks.run import SUBCOMMANDS, build_parser

    names = [*SUBCOMMANDS, *method_subcommands(SUBCOMMANDS)]
    checked = 0
    for name in names:
        parser = build_parser(name)
        sub = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
        command = sub.choices[name]
        for required in (*command._actions, *command._mutually_exclusive_groups):
            required.required = False  # only the prefix is under test
        options = {option for action in command._actions for option in action.option_strings}
        for option in sorted(options):
            prefix = option[:-1]
            if not option.startswith("--") or len(prefix) < 4 or prefix in options:
                continue
            _, unknown = command.parse_known_args([prefix])
            assert unknown == [prefix], f"{name} {prefix} was taken for {option}"
            checked += 1
    assert checked > 100


def test_every_option_explains_itself_and_shows_its_default():
    """Every option of every subcommand has help text; a default worth knowing is shown, and none is
    shown as "None"; a subcommand's --help holds no result tables (they live in docs/)."""
    from benchmarks.commands.parser import method_subcommands
    from benchmarks.run import SUBCOMMANDS, build_parser

    problems = []
    for name in [*SUBCOMMANDS, *method_subcommands(SUBCOMMANDS)]:
        parser = build_parser(name)
        sub = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
        command = sub.choices[name]
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            flag = action.option_strings[0] if action.option_strings else action.dest
            text = action.help or ""
            shown = isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction,
                                        argparse._SubParsersAction)) or action.default in (None, False)
            if not text:
                problems.append(f"{name} {flag}: no help")
            elif "%(default)" in text and action.default is None:
                problems.append(f"{name} {flag}: shows (default: None)")
            elif not shown and "default" not in text:
                problems.append(f"{name} {flag}: default {action.default!r} not shown")
        text = command.format_help()
        if "=====" in text or "|---" in text:
            problems.append(f"{name}: --help holds a result table")
    assert not problems, "\n".join(problems)
