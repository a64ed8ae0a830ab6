"""Shared pytest fixtures: the tiny video dataset, and one real SLURM cluster per test session."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from benchmarks.core.paths import REPO_ROOT
from benchmarks.data import airplanes
from benchmarks.data.toydata import ToyDataset, write_motion_dataset

SLURM_SCRIPTS = REPO_ROOT / "slurm" / "local"


@pytest.fixture
def one_thread():
    """One intra-op thread: the inputs in these tests are tiny, and on a busy 2-core machine torch's
    default threads spin against each other (a 3 s test took 78 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_kinetics(tmp_path_factory: pytest.TempPathFactory) -> ToyDataset:
    """A tiny Kinetics-format dataset of real mp4 files, written once per test session.

    Three classes that differ only in motion direction ("down", "left", "right"), 64 px, 24-40
    frames at 10 fps; train (6 videos per class) and val (3 per class) with annotation CSVs, and in
    train one broken file of each kind (see ``benchmarks.data.toydata``). Shared by all tests: copy it
    (``shutil.copytree``) before changing any file in it.
    """
    return write_motion_dataset(tmp_path_factory.mktemp("tiny_kinetics"))


@pytest.fixture
def torchrun(tmp_path: Path) -> Callable[..., tuple[dict, dict]]:
    """Run a training script in two CPU processes (``torch.distributed.run``, gloo): the script gets
    ``DATA OUT REPORTS`` and writes what ``train`` returned to ``REPORTS/rank<r>.json``; returns both."""
    def run(script_text: str, data: str | Path, out: Path) -> tuple[dict, dict]:
        script, reports = tmp_path / "ddp_script.py", tmp_path / "reports"
        script.write_text(script_text)
        reports.mkdir()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
        result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                                 "2", str(script), str(data), str(out), str(reports)],
                                capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return tuple(json.loads((reports / f"rank{r}.json").read_text()) for r in (0, 1))

    return run


@pytest.fixture
def same_weights() -> Callable[[dict, dict], None]:
    """Assert that two checkpoints hold the same model and EMA tensors, exactly."""
    def check(expected: dict, final: dict) -> None:
        for part in ("model", "ema"):
            assert expected[part].keys() == final[part].keys(), part
            assert all(torch.equal(expected[part][k], final[part][k]) for k in expected[part]), part

    return check


@pytest.fixture(scope="session")
def planes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 training, 6 val and 6 test airplanes of 8 frames at 32 px (a few seconds to render), once per session."""
    return airplanes.generate(tmp_path_factory.mktemp("planes"), 64, 6, 6, frames=8, size=32, fps=8)


# ---------------------------------------------------------------------------- the SLURM cluster


def run_slurm_script(name: str, *args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``slurm/local/<name>``; a failure fails the test with the end of its output (the daemons' logs)."""
    result = subprocess.run(["bash", str(SLURM_SCRIPTS / name), *map(str, args)], capture_output=True, text=True,
                            env={**os.environ, **(env or {})}, timeout=300)
    if result.returncode != 0:
        pytest.fail(f"slurm/local/{name} failed (exit {result.returncode}):\n"
                    f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return result


def _free_port_base() -> int:
    """A port P with P..P+4 free on localhost (slurmctld, slurmd, slurmdbd, mariadbd, the second slurmd)."""
    for base in range(16817, 30000, 10):
        try:
            for port in range(base, base + 5):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no five consecutive free ports found for the test cluster")


def _wait_for_jobs_to_end(base: Path, timeout_s: float = 60) -> None:
    """Let the cluster's jobs end before it stops.

    A task's result arrives before its processes have exited; a job step still ending when
    slurmctld stops never completes, and its slurmstepd and the slurmd wait for it forever.
    """
    env = {**os.environ, "SLURM_CONF": str(base / "etc" / "slurm.conf")}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        queue = subprocess.run(["squeue", "--noheader"], capture_output=True, text=True, env=env)
        if queue.returncode != 0 or not queue.stdout.strip():
            return
        time.sleep(0.5)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """A running cluster (slurm/local) in a temporary base dir, with SLURM_CONF set: two nodes on this
    machine, 127.0.0.1 in the default partition (debug) and both in partition ``multi``.

    Started once per session, by the first test that needs it, and stopped at the end of the
    session, also when tests fail. Needs root and apt-get (or SLURM installed); skips otherwise.
    """
    if os.geteuid() != 0:
        pytest.skip("starting SLURM daemons needs root")
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        pytest.skip("SLURM is not installed and there is no apt-get to install it")
    started = time.monotonic()
    run_slurm_script("install.sh")
    base = tmp_path_factory.mktemp("slurm")

    def stop() -> None:
        _wait_for_jobs_to_end(base)
        run_slurm_script("stop.sh", base)

    request.addfinalizer(stop)  # registered first: runs even when start.sh fails half-way
    result = run_slurm_script("start.sh", base, env={"GRW_SLURM_PORT": str(_free_port_base()), "GRW_SLURM_NODES": "2"})
    assert result.stdout.strip() == f"export SLURM_CONF={base}/etc/slurm.conf"
    print(f"\nSLURM cluster ready in {time.monotonic() - started:.1f}s (install + start)")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLURM_CONF", str(base / "etc" / "slurm.conf"))
        patch.setenv("PYTHONPATH", jobs_pythonpath())
        yield base


def jobs_pythonpath() -> str:
    """PYTHONPATH for jobs (they inherit it): this checkout first, not one a virtualenv installed
    in editable mode, which a job started outside this checkout would import instead."""
    return os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])


@pytest.fixture
def jobs_import_this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    """:func:`jobs_pythonpath` for the jobs of one test (those of the SLURM cluster have it already)."""
    monkeypatch.setenv("PYTHONPATH", jobs_pythonpath())


@pytest.fixture(scope="session")
def slurm_script() -> Callable[..., subprocess.CompletedProcess]:
    """:func:`run_slurm_script`, for tests of the cluster scripts themselves."""
    return run_slurm_script
