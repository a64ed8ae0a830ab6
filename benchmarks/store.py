"""The results store: atomic JSON writes, strict reads, provenance.

Layout under the results directory (see ``benchmarks.paths``):
``published/`` the papers' numbers; ``measured/`` one JSON per Table 1 row and device written by
``table1``; ``runs/`` one JSON per accuracy run written by ``eval``. A file that cannot be read is an
error that names the file: results are never skipped silently.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

from benchmarks.paths import REPO_ROOT, measured_dir, runs_dir

# Fields every accuracy run must carry; a run without them is refused.
RUN_FIELDS = (
    "row", "top1", "top5", "dataset", "split", "videos_evaluated", "videos_skipped",
    "checkpoint_sha256", "git_commit", "hardware", "date", "command",
)
MEASUREMENT_FIELDS = ("row", "gflops", "params", "peak_memory_mb", "memory_method", "device", "key")


class ResultFileError(ValueError):
    """A stored result file is malformed; the message names the file."""


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on success it is synced and renamed over
    ``path``, on failure removed. A reader (or a run killed mid-write) sees the old file or the new
    one, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write JSON atomically (see :func:`atomic_file`)."""
    with atomic_file(path) as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
    return Path(path)


def read_json(path: str | Path, required: tuple[str, ...] = ()) -> dict:
    """Read a result file; raise ``ResultFileError`` naming the file when it is not valid."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResultFileError(f"{path}: cannot read result file: {error}") from error
    if not isinstance(data, dict):
        raise ResultFileError(f"{path}: expected a JSON object, got {type(data).__name__}")
    missing = [name for name in required if name not in data]
    if missing:
        raise ResultFileError(f"{path}: missing field(s) {', '.join(missing)}")
    return data


def measurement_path(row: int, device: str) -> Path:
    return measured_dir() / f"row{row:02d}-{device}.json"


def load_measurements() -> list[dict]:
    """Every stored harness measurement (any device)."""
    return [read_json(p, MEASUREMENT_FIELDS) for p in sorted(measured_dir().glob("row*.json"))]


def load_runs() -> list[dict]:
    """Every stored accuracy run, oldest first."""
    runs = [read_json(p, RUN_FIELDS) for p in sorted(runs_dir().glob("*.json"))]
    return sorted(runs, key=lambda run: str(run["date"]))


def git_commit() -> str:
    """The checkout's commit (with ``-dirty`` when there are uncommitted changes), or ``unknown``."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def hardware(device: str = "cpu") -> str:
    import torch  # imported here so that the CLI's --help does not load torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"{_cpu_model()} ({os.cpu_count()} CPUs)"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


_cli_command: str | None = None


def set_cli_command(argv: list[str]) -> None:
    """Record the ``benchmarks.run`` arguments being executed (also when called in-process)."""
    global _cli_command
    _cli_command = " ".join(["python -m benchmarks.run", *map(shlex.quote, argv)])


def command_line() -> str:
    """The command that is running, as a user would type it."""
    if _cli_command is not None:
        return _cli_command
    program = Path(sys.argv[0])
    if program.name == "run.py" and program.parent.name == "benchmarks":
        return " ".join(["python -m benchmarks.run", *sys.argv[1:]])
    return " ".join([program.name, *sys.argv[1:]])


def provenance(device: str = "cpu") -> dict:
    """Where a number came from: command, commit, hardware, software, date."""
    import torch

    return {
        "command": command_line(),
        "git_commit": git_commit(),
        "hardware": hardware(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
