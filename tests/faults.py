"""A process with one fault injected into the suite's atomic writer, for tests/test_faults.py.

    python -m tests.faults POINT NAME NTH READY MODULE [ARGS...]
    python -m tests.faults POINT NAME NTH READY -c CODE [ARGS...]

runs ``python -m MODULE ARGS...`` (or ``python -c CODE``) in this process, with the NTH write of a file
named NAME through :func:`benchmarks.core.store.atomic_file` (``write_text``, ``write_json``,
``write_bytes``, ``save_checkpoint``) meeting a fault at POINT:

``write``
    the write stops once half of the file is in its temporary file (half as many bytes as the file it
    replaces holds; half of the first write when there is none), flushed and synced to disk;
``rename``
    the write stops when its temporary file is complete and synced, before it is renamed over NAME;
``limit:BYTES``
    nothing stops: from that write on the process may not write past BYTES of any file (RLIMIT_FSIZE,
    with SIGXFSZ ignored), so the write fails with the operating system's EFBIG, as on a file system too
    small for it (how a test fills a disk where it cannot mount a small one).

A stopped write writes the path of its temporary file to READY and waits to be killed (SIGKILL). The
writer itself is the real one: only the file object it writes through (``write``), ``os.replace``
(``rename``) or the process's limit (``limit``) change, and only in this process.
"""

from __future__ import annotations

import os
import resource
import runpy
import signal
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.core import store

_real_open = open
_real_replace = os.replace


def is_temporary_of(path: str | os.PathLike, name: str) -> bool:
    """Whether ``path`` is a temporary file of :func:`benchmarks.core.store.atomic_path` for a file ``name``."""
    target, temporary = Path(name), Path(path).name
    return temporary.startswith(f".{target.stem}.") and temporary.endswith(f".tmp{target.suffix}")


def stop(temporary: str | os.PathLike, ready: Path) -> None:
    """Say where the write stopped (atomically: the test never reads half a path) and wait to be killed."""
    partial = ready.with_name(ready.name + ".part")
    partial.write_text(str(temporary))
    _real_replace(partial, ready)
    while True:
        time.sleep(60)


class StoppingFile:
    """A file that stops (:func:`stop`) once ``stop_at`` bytes (characters in text mode) were written to it."""

    def __init__(self, file: Any, stop_at: int | None, ready: Path) -> None:
        self.file, self.stop_at, self.ready, self.written = file, stop_at, ready, 0

    def write(self, data: Any) -> int:
        stop_at = self.stop_at if self.stop_at is not None else max(1, len(data) // 2)
        if self.written + len(data) < stop_at:
            self.written += len(data)
            return self.file.write(data)
        self.file.write(data[:stop_at - self.written])
        self.file.flush()
        os.fsync(self.file.fileno())
        stop(self.file.name, self.ready)
        raise AssertionError("unreachable")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)

    def __enter__(self) -> StoppingFile:
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        return self.file.__exit__(*exc_info)


def install(point: str, name: str, nth: int, ready: Path) -> None:
    """Arrange the fault (see the module docstring)."""
    writes = 0
    stopping: set[str] = set()  # the temporary file whose rename stops

    def faulty_open(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        nonlocal writes
        file = _real_open(path, mode, *args, **kwargs)
        if "w" not in mode or not is_temporary_of(path, name):
            return file
        writes += 1
        if writes != nth:
            return file
        if point == "write":
            replaced = Path(path).parent / name
            half = replaced.stat().st_size // 2 if replaced.is_file() and replaced.stat().st_size > 1 else None
            return StoppingFile(file, half, ready)
        if point == "rename":
            stopping.add(os.fspath(path))
        else:  # limit:BYTES
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
            resource.setrlimit(resource.RLIMIT_FSIZE, (int(point.split(":", 1)[1]), hard))
        return file

    def faulty_replace(source: Any, destination: Any, *args: Any, **kwargs: Any) -> None:
        if os.fspath(source) in stopping:
            stop(source, ready)
        _real_replace(source, destination, *args, **kwargs)

    if point not in ("write", "rename") and not point.startswith("limit:"):
        raise SystemExit(f"tests.faults: unknown fault point {point!r} (write, rename or limit:BYTES)")
    store.open = faulty_open  # the name atomic_file opens its temporary file with
    if point == "rename":
        os.replace = faulty_replace


def main(argv: list[str]) -> None:
    point, name, nth, ready, *program = argv
    install(point, name, int(nth), Path(ready))
    if program[:1] == ["-c"]:
        sys.argv = ["-c", *program[2:]]
        exec(compile(program[1], "<string>", "exec"), {"__name__": "__main__"})
    else:
        sys.argv = program
        runpy.run_module(program[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
