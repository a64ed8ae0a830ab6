import subprocess
import sys

import pytest

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
