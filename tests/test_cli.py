import ast
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
