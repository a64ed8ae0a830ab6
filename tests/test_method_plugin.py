"""A method defined entirely in tests/ (``label_smoothing_plugin``) plugs into ``train`` with its own flag,
trains a row and is recorded in the checkpoint, without any file under benchmarks/ knowing of it."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.core import store
from benchmarks.core.checkpoint import LAST, load_checkpoint
from benchmarks.core.paths import REPO_ROOT
from benchmarks.data.toydata import write_motion_dataset
from benchmarks.engine.method import METHODS
from benchmarks.run import main as run_main

PLUGIN = "tests.label_smoothing_plugin"


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch):
    """The plugin registered for one test, and unregistered afterwards."""
    monkeypatch.setattr(store, "_cli_command", None)
    module = importlib.import_module(PLUGIN)
    METHODS.register(module.LabelSmoothing.name, module.LabelSmoothing)  # again, if an earlier test removed it
    yield module
    METHODS.unregister(module.LabelSmoothing.name)


def test_no_file_under_benchmarks_names_the_plugin():
    for path in (REPO_ROOT / "benchmarks").rglob("*.py"):
        text = path.read_text()
        assert "label_smoothing_plugin" not in text and "label-smoothing" not in text, path


def test_plugin_appears_in_train_help(plugin, capsys):
    with pytest.raises(SystemExit) as exited:
        run_main(["train", "--help"])
    assert exited.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "label-smoothing" in help_text and "--smoothing SMOOTHING" in help_text
    assert "label smoothing of this method's cross-entropy" in help_text and "(default: 0.2)" in help_text


def test_plugin_named_in_the_environment_is_found_by_a_fresh_process():
    env = {**os.environ, "GRW_BENCH_PLUGINS": PLUGIN}
    result = subprocess.run([sys.executable, "-m", "benchmarks.run", "train", "--help"], capture_output=True,
                            text=True, cwd=REPO_ROOT, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "label-smoothing" in result.stdout and "--smoothing" in result.stdout


def test_plugin_trains_a_row_and_is_recorded_in_the_checkpoint(plugin, tmp_path: Path):
    data = write_motion_dataset(tmp_path / "data", videos_per_class={"train": 2, "val": 1, "test": 1}, size=32,
                                broken=False)
    out = tmp_path / "run"
    argv = ["train", "--row", "3", "--data", str(data.root), "--out", str(out), "--method", "label-smoothing",
            "--smoothing", "0.3", "--frames", "4", "--res", "32", "--epochs", "1", "--batch-size", "2",
            "--num-workers", "0", "--no-val", "--device", "cpu", "--results", str(tmp_path / "results")]
    assert run_main(argv) == 0
    state = load_checkpoint(out / LAST)
    assert state["complete"] and state["config"]["method"] == "label-smoothing"
    assert state["config"]["method_options"] == {"smoothing": 0.3}
    assert state["progress"]["history"][0]["train_smoothing"] == pytest.approx(0.3)  # the option reached the loss
    # another method's flag with this method is refused, as is a bad value of its own
    assert run_main([*argv, "--refresh", "--a3d-range", "[0.06,1]"]) == 2
    assert run_main([*argv[:argv.index("0.3")], "1.5", *argv[argv.index("0.3") + 1:], "--refresh"]) == 2
