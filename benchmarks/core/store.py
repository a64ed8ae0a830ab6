"""The results store (:class:`Store`), the suite's atomic writers, strict reads, provenance.

Every file the suite writes (results, indexes, checkpoints, figures, videos) goes through
:func:`atomic_path` / :func:`atomic_file` or the writers built on them (:func:`write_text`,
:func:`write_bytes`, :func:`write_json`, :func:`write_csv`): a reader sees the old file or the new one.

Layout of a results directory: ``measured/`` one JSON per Table 1 row and device written by
``table1``; ``runs/`` one JSON per accuracy run written by ``eval``; tables and figures. Published
numbers always come from the checkout (``benchmarks.core.paths.published_dir``). A file that cannot be
read is an error that names the file: results are never skipped silently.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import glob
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from benchmarks.core.paths import REPO_ROOT, RESULTS_ENV

# Fields every accuracy run must carry; a run without them is refused.
if TYPE_CHECKING:
    import pandas as pd

COMMIT_ENV = "GRW_BENCH_COMMIT"  # the commit of a checkout copied without .git (see git_commit)

RUN_FIELDS = (
    "row", "top1", "top5", "dataset", "split", "videos_evaluated", "videos_skipped",
    "checkpoint_sha256", "git_commit", "hardware", "date", "command",
)
DEFAULT_SETTING = "default"  # a run's ``setting`` when its method has no settings of its own (the model as trained)
MEASUREMENT_FIELDS = ("row", "gflops", "params", "peak_memory_mb", "memory_method", "device", "key")


class ResultFileError(ValueError):
    """A stored result file is malformed; the message names the file."""


# --------------------------------------------------------------------------- atomic writers


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for a library that writes by file name (matplotlib, PyAV,
    pandas); on success it is synced and renamed over ``path``, on failure removed. A reader (or a
    run killed mid-write) sees the old file or the new one, never a partial one. An ``OSError`` of the write
    (a full disk) names ``path``, not the temporary file or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.filename in (None, tmp):
            error.filename = str(path)
        raise


def _mode_for(path: Path) -> int:
    """The mode a file written at ``path`` gets: the existing file's (a tracked file keeps its mode), else
    what ``open`` would give under the umask (0644 under umask 022), not ``mkstemp``'s private 0600, so that
    colleagues on a shared file system can read results and checkpoints."""
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """:func:`atomic_path` opened in ``mode`` ("w" or "wb")."""
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f
        f.flush()


def remove_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporary files that writers of ``path`` killed mid-write (SIGKILL, a lost node) left
    beside it (``.<stem>.*.tmp<suffix>``, see :func:`atomic_path`); what was removed. Only for a file no
    other process is writing: a live writer's temporary file would go too."""
    path = Path(path)
    found = sorted(path.parent.glob(f".{glob.escape(path.stem)}.*.tmp{glob.escape(path.suffix)}"))
    for temporary in found:
        temporary.unlink(missing_ok=True)
    return found


def write_text(path: str | Path, text: str) -> Path:
    with atomic_file(path) as f:
        f.write(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_file(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_json(path: str | Path, data: Any) -> Path:
    """JSON with sorted keys and a final newline."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_csv(path: str | Path, table: pd.DataFrame) -> Path:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
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


# --------------------------------------------------------------------------- the results store


@dataclass(frozen=True)
class Store:
    """A results directory: ``measured/`` (one JSON per Table 1 row and device), ``runs/`` (one
    JSON per accuracy run; subfolders hold summaries that are not runs), and the tables and figures
    rendered from them. ``Store.default()`` is ``$GRW_BENCH_RESULTS`` or the checkout's ``results/``."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def default(cls) -> Store:
        return cls(Path(os.environ.get(RESULTS_ENV) or REPO_ROOT / "results"))

    @property
    def measured(self) -> Path:
        return self.root / "measured"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def measurement_path(self, row: int, device: str) -> Path:
        return self.measured / f"row{row:02d}-{device}.json"

    def new_run_path(self, name: str, subfolder: str = "") -> Path:
        """``runs/[subfolder/]<name>-<UTC timestamp>.json``: never an existing file."""
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        return self.runs / subfolder / f"{name}-{stamp}.json"

    def latest(self, name: str, subfolder: str = "") -> dict | None:
        """The newest summary ``runs/[subfolder/]<name>-<time>.json`` (by its timestamp), or None."""
        paths = result_files(self.runs / subfolder, f"{name}-*.json")
        return {**read_json(paths[-1]), "path": str(paths[-1])} if paths else None

    def load_measurements(self) -> list[dict]:
        """Every stored harness measurement (any device)."""
        return [read_json(p, MEASUREMENT_FIELDS) for p in result_files(self.measured, "row*.json")]

    def load_runs(self, with_files: bool = False) -> list[dict]:
        """Every stored accuracy run, oldest first; ``with_files`` adds each run's ``file`` and ``run_id``."""
        runs = [{**read_json(p, RUN_FIELDS), **({"file": str(p), "run_id": run_id(p)} if with_files else {})}
                for p in result_files(self.runs, "*.json")]
        return sorted(runs, key=lambda run: str(run["date"]))


def result_files(folder: Path, pattern: str) -> list[Path]:
    """The files of ``folder`` matching ``pattern``, sorted, without hidden files: the temporary files of
    :func:`atomic_path` (``.<stem>.*.tmp<suffix>``, left behind by a writer that was killed) are never
    results, even when complete (``Path.glob("*.json")`` matches them)."""
    return sorted(p for p in folder.glob(pattern) if not p.name.startswith("."))


def run_id(path: str | Path) -> str:
    """A run's short id: 8 hex digits of its file name's hash (file names are unique: row and UTC time to the
    microsecond), so every stored run has one, those written before ids existed too."""
    return hashlib.sha256(Path(path).stem.encode()).hexdigest()[:8]


# --------------------------------------------------------------------------- provenance


def modified_code() -> list[str] | None:
    """Tracked files changed since the commit, outside ``results/`` (the suite's own outputs do not
    make its code dirty); None when git cannot tell."""
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return sorted(line[3:] for line in status.splitlines() if line.strip())


def git_commit() -> str:
    """The checkout's commit (with ``-dirty`` when code or configuration has uncommitted changes); where
    git cannot tell, ``$GRW_BENCH_COMMIT`` or ``unknown``."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        # A copy of the tree without its .git (e.g. sent to a GPU machine) can be told its commit.
        return os.environ.get(COMMIT_ENV) or "unknown"
    return commit + ("-dirty" if modified_code() else "")


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
    """Where a number came from: command, commit, hardware, software, date; on a CUDA device also
    the GPU, its driver, and the CUDA and cuDNN versions (:func:`cuda_software`)."""
    import torch

    modified = modified_code()
    return {
        "command": command_line(),
        "git_commit": git_commit(),
        **({"modified_files": modified} if modified else {}),
        "hardware": hardware(device),
        "torch": torch.__version__,
        **(cuda_software(device) if device.startswith("cuda") and torch.cuda.is_available() else {}),
        "python": platform.python_version(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def cuda_software(device: str = "cuda") -> dict:
    """What a CUDA number depends on besides the code: the GPU, its driver, CUDA and cuDNN as torch sees them."""
    import torch

    return {
        "gpu": torch.cuda.get_device_name(torch.device(device)),
        "gpu_driver": gpu_driver_version(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
    }


def gpu_driver_version() -> str | None:
    """The NVIDIA driver's version from ``nvidia-smi`` (None when it cannot be run)."""
    try:
        output = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    versions = output.split()
    return versions[0] if versions else None


def provenance_line(record: dict) -> str:
    """The line under a rendered table saying where it came from (a record with :func:`provenance`'s
    fields; with ``wall_time_s``, how long the whole run took)."""
    took = f"; {record['wall_time_s'] / 60:.0f} min in all" if "wall_time_s" in record else ""
    return (f"Command: `{record['command']}`; commit {record['git_commit']}; {record['hardware']}; "
            f"{record['date']}{took}.")
