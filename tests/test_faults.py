"""Faults lose nothing. A training killed (SIGKILL) while it writes a checkpoint leaves the previous one
loadable and ``--resume`` completes the run; a result file whose write is killed is the old file or none,
never half a JSON, and the store's readers are not misled by the temporary files such kills leave; a disk
that fills up during a checkpoint ends ``train`` with one line (exit 2), keeps the last good checkpoint and
leaves no partial file behind.

The faults are real: the processes run the suite's own writers, killed at a chosen point of a write or
refused by the operating system (tests/faults.py stops them there; the product has no hook)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks.core.checkpoint import LAST, CheckpointError, file_sha256, latest_checkpoint, load_checkpoint
from benchmarks.core.paths import REPO_ROOT
from benchmarks.core.store import MEASUREMENT_FIELDS, RUN_FIELDS, Store, read_json, write_json

# X3D-XS (row 5) at 4 frames x 32 px, two epochs of 3 steps: a checkpoint is 48.6 MB (weights, EMA, AdamW).
TRAIN = ["train", "--row", "5", "--frames", "4", "--res", "32", "--epochs", "2", "--batch-size", "6",
         "--num-workers", "0", "--no-val"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def temporaries(folder: Path) -> list[Path]:
    """Files the atomic writers left behind (their temporary files are hidden: ``.<stem>.*.tmp<suffix>``)."""
    return sorted(p for p in folder.iterdir() if p.name.startswith(".") and ".tmp" in p.name)


def faulted(tmp_path: Path, point: str, name: str, nth: int, *program: str) -> tuple[subprocess.Popen, Path]:
    """Start ``program`` (a module and its arguments, or ``-c CODE``) with the ``nth`` write of ``name`` meeting
    the fault ``point`` (tests/faults.py); returns the process and the file it names the stopped write in."""
    ready = tmp_path / f"stopped-{time.monotonic_ns()}"
    log = open(tmp_path / "log.txt", "a")
    process = subprocess.Popen([sys.executable, "-m", "tests.faults", point, name, str(nth), str(ready), *program],
                               stdout=log, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT, env=ENV)
    log.close()
    return process, ready


def kill_when_stopped(process: subprocess.Popen, ready: Path, tmp_path: Path, timeout_s: float = 120) -> Path:
    """SIGKILL ``process`` once its write has stopped; the write's temporary file."""
    deadline = time.monotonic() + timeout_s
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the write never stopped (exit {process.wait()}):\n"
                        f"{(tmp_path / 'log.txt').read_text()[-3000:]}")
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    return Path(ready.read_text())


def run_train(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.run", *argv], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=ENV, timeout=300)


# --------------------------------------------------------------------------- checkpoints


def test_sigkill_during_a_checkpoint_write_keeps_the_previous_one_and_resume_completes(tmp_path, tiny_kinetics,
                                                                                        same_weights):
    out = tmp_path / "out"
    args = [*TRAIN, "--data", str(tiny_kinetics.root), "--out", str(out)]

    # 1. Killed half-way through the epoch-1 checkpoint: last.pt is still epoch 0's.
    process, ready = faulted(tmp_path, "write", LAST, 2, "benchmarks.run", *args)
    partial = kill_when_stopped(process, ready, tmp_path)
    assert partial.parent == out and 0 < partial.stat().st_size < (out / LAST).stat().st_size
    with pytest.raises(CheckpointError):
        load_checkpoint(partial)
    previous = load_checkpoint(out / LAST)
    assert previous["progress"]["epoch"] == 1 and previous["progress"]["step"] == 0 and not previous["complete"]
    assert latest_checkpoint(out) == out / LAST
    previous_sha256 = file_sha256(out / LAST)

    # 2. Resumed (which removes the partial file first), and killed again with its checkpoint written but
    # not yet renamed: last.pt is unchanged, and the complete temporary is not taken for it either.
    process, ready = faulted(tmp_path, "rename", LAST, 1, "benchmarks.run", *args, "--resume")
    written = kill_when_stopped(process, ready, tmp_path)
    assert file_sha256(out / LAST) == previous_sha256 and latest_checkpoint(out) == out / LAST
    unrenamed = load_checkpoint(written)
    assert unrenamed["complete"] and unrenamed["progress"]["epoch"] == 2
    assert temporaries(out) == [written]
    assert "removed 1 partial checkpoint file(s) of a killed write" in (tmp_path / "log.txt").read_text()

    # 3. Resumed once more, it completes, with the weights the killed run had computed; the temporaries
    # the kills left are gone.
    resumed = run_train(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert '"status": "completed"' in resumed.stdout and "removed 1 partial checkpoint file(s)" in resumed.stderr
    final = load_checkpoint(out / LAST)
    assert final["complete"] and final["progress"]["epoch"] == 2
    same_weights(unrenamed, final)
    assert temporaries(out) == []


@dataclass
class SmallDisk:
    """A folder for ``--out`` where one checkpoint of ``TRAIN`` fits and a second one does not."""

    folder: Path
    limit: list[str] | None  # the tests/faults.py arguments that fill the disk, where no small one is mounted
    refusal: str  # what the one line says

    def train(self, tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
        fault = [sys.executable, "-m", "tests.faults", *self.limit, str(tmp_path / "unused")] if self.limit else []
        return subprocess.run([*(fault or [sys.executable, "-m"]), "benchmarks.run", *argv], capture_output=True,
                              text=True, cwd=REPO_ROOT, env=ENV, timeout=300)

    def grow(self) -> None:
        """Room for the run to finish."""
        if self.limit is None:
            subprocess.run(["mount", "-o", "remount,size=256m", str(self.folder)], check=True)


@pytest.fixture
def small_disk(tmp_path):
    """As root, a 72 MiB tmpfs: one 48.6 MB checkpoint of ``TRAIN`` and the run's small files fit, a second
    checkpoint's temporary file beside it does not (ENOSPC). Otherwise a plain folder, and from the second
    checkpoint on the training process may not write a file past 1 MiB (RLIMIT_FSIZE, tests/faults.py), which
    the operating system refuses with EFBIG, as a file system too small for the file."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=72m", "tmpfs", str(folder)], check=True)
        yield SmallDisk(folder, None, "no space left on the device")
        subprocess.run(["umount", str(folder)], check=True)
    else:
        yield SmallDisk(folder, [f"limit:{1 << 20}", LAST, "2"], "file too large")


def test_a_full_disk_ends_train_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path, tiny_kinetics,
                                                                                   small_disk):
    out = small_disk.folder / "run"
    args = [*TRAIN, "--data", str(tiny_kinetics.root), "--out", str(out)]
    failed = small_disk.train(tmp_path, *args)
    lines = [line for line in failed.stderr.splitlines() if "error:" in line]
    assert failed.returncode == 2 and len(lines) == 1 and "Traceback" not in failed.stderr, failed.stderr[-3000:]
    assert lines[0].startswith(f"train: error: cannot write {out / LAST}: {small_disk.refusal}"), lines[0]
    previous = load_checkpoint(out / LAST)  # epoch 0's, whole
    assert previous["progress"]["epoch"] == 1 and previous["progress"]["step"] == 0 and not previous["complete"]
    assert temporaries(out) == []  # the partial checkpoint is gone: the disk is not left full

    small_disk.grow()
    resumed = run_train(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert load_checkpoint(out / LAST)["complete"]


# --------------------------------------------------------------------------- the results store


def _measurement(note: str) -> dict:
    return {**dict.fromkeys(MEASUREMENT_FIELDS, 1), "row": 1, "device": "cpu", "note": note}


def _run(date: str, note: str) -> dict:
    return {**dict.fromkeys(RUN_FIELDS, 1), "row": 1, "date": date, "note": note}


WRITE = """
import json, sys
from benchmarks.core.store import write_json
write_json(sys.argv[1], json.loads(sys.argv[2]))
"""


@pytest.mark.parametrize("point", ["write", "rename"])
def test_a_killed_result_write_leaves_the_old_file_or_none_and_readers_ignore_its_temporary(tmp_path, point):
    store = Store(tmp_path / "results")
    measurement = store.measurement_path(1, "cpu")
    old_measurement, old_run = _measurement("old"), _run("2025-01-01T00:00:00+00:00", "old")
    write_json(measurement, old_measurement)
    write_json(store.runs / "row01-20250101T000000000000Z.json", old_run)
    new_run = store.runs / "row01-20250102T000000000000Z.json"

    # A file replaced, and a new one, each killed at `point` with a longer content on its way.
    for path, data in ((measurement, _measurement("new " * 200)), (new_run, _run("2025-01-02", "new " * 200))):
        process, ready = faulted(tmp_path, point, path.name, 1, "-c", WRITE, str(path), json.dumps(data))
        temporary = kill_when_stopped(process, ready, tmp_path)
        assert temporary.parent == path.parent and temporary.is_file()
        complete = json.dumps(data, indent=2, sort_keys=True) + "\n"
        assert (temporary.read_text() == complete) == (point == "rename")  # "write": killed half-way

    assert read_json(measurement) == old_measurement and not new_run.exists()
    assert len(temporaries(store.measured)) == 1 and len(temporaries(store.runs)) == 1
    assert store.load_measurements() == [old_measurement]
    assert store.load_runs() == [old_run]
    assert store.latest("row01") == {**old_run, "path": str(store.runs / "row01-20250101T000000000000Z.json")}
