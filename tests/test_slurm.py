"""benchmarks.engine.launch on a real SLURM cluster (slurm/local; one node in its default partition), as local
processes and in-process.

The session fixture ``slurm_cluster`` (conftest.py) installs SLURM if needed and starts a private
cluster (its own base directory and ports), so these tests need root and apt-get; elsewhere they
skip, saying why.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
import submitit

from benchmarks.commands.launching import add_launch_arguments, options_from_args
from benchmarks.engine.launch import (
    LaunchReport,
    ResumableTask,
    SlurmOptions,
    launch,
    parse_sbatch_options,
    parse_time_minutes,
    wait_for_results,
)

# Jobs unpickle the tasks below in a fresh interpreter where this test module is not importable.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


# ---------------------------------------------------------------------------- toy tasks

def square(x: int) -> int:
    return x * x


def square_but_fail_on_two(x: int) -> int:
    if x == 2:
        raise ValueError("two is not allowed")
    return x * x


class CountSteps(ResumableTask):
    """Counts to ``total``, one step every ``step_s`` seconds; resumes from its checkpoint file.

    Each run appends the step it started from to ``<name>.starts``, and writes its current step
    to ``<name>.progress`` (for the test to watch; resuming reads only the checkpoint).
    """

    def __init__(self, state_dir: Path, total: int, step_s: float) -> None:
        self.state_dir, self.total, self.step_s = state_dir, total, step_s

    def __call__(self, name: str) -> dict:
        checkpoint = self.state_dir / f"{name}.ckpt.json"
        self.step = json.loads(checkpoint.read_text())["step"] if checkpoint.exists() else 0
        with open(self.state_dir / f"{name}.starts", "a") as f:
            f.write(f"{self.step}\n")
        while self.step < self.total:
            time.sleep(self.step_s)
            self.step += 1
            (self.state_dir / f"{name}.progress").write_text(str(self.step))
        starts = [int(s) for s in (self.state_dir / f"{name}.starts").read_text().split()]
        return {"steps": self.step, "starts": starts}

    def save_checkpoint(self, name: str) -> None:
        (self.state_dir / f"{name}.ckpt.json").write_text(json.dumps({"step": self.step}))


# ---------------------------------------------------------------------------- modes (the cluster: conftest.py)

@pytest.fixture(params=[pytest.param("slurm", marks=pytest.mark.slow), "local", "none"])
def mode(request: pytest.FixtureRequest) -> str:
    if request.param == "slurm":
        request.getfixturevalue("slurm_cluster")
    return request.param


# ---------------------------------------------------------------------------- launching

def test_two_task_array_returns_results_through_on_result(mode: str, tmp_path: Path) -> None:
    results: dict[str, int] = {}
    options = SlurmOptions(time="0:02:00", sbatch={"comment": "grw-test"}, log_dir=tmp_path / "logs")
    report = launch(square, [3, 4], ["three", "four"], mode, options, on_result=results.__setitem__)
    assert results == {"three": 9, "four": 16}
    assert report.ok and report.failed == [] and sorted(report.succeeded) == ["four", "three"]
    if mode == "slurm":
        job_ids = list(report.job_ids.values())
        array_id = job_ids[0].split("_")[0]
        assert job_ids == [f"{array_id}_0", f"{array_id}_1"]
        sbatch_script = report.tasks[0].job.paths.submission_file.read_text()
        assert "#SBATCH --time=2\n" in sbatch_script and "#SBATCH --comment=grw-test\n" in sbatch_script
        assert "#SBATCH --array=0-1%2\n" in sbatch_script  # at most 2 at once: submitit caps it


def test_raising_task_is_reported_failed_with_its_log(mode: str, tmp_path: Path) -> None:
    results: dict[str, int] = {}
    report = launch(square_but_fail_on_two, [1, 2], ["one", "two"], mode,
                    SlurmOptions(log_dir=tmp_path / "logs"), on_result=results.__setitem__)
    assert results == {"one": 1}
    assert not report.ok and report.succeeded == ["one"] and report.failed == ["two"]
    failed = report.tasks[1]
    assert failed.error == "ValueError: two is not allowed"
    if mode == "none":
        assert failed.stderr is None  # in-process: the traceback went to this process's stderr
    else:
        assert failed.stderr.is_file() and "two is not allowed" in failed.stderr.read_text()
    assert "FAILED two" in report.summary()


@pytest.mark.slow
def test_checkpointable_task_resumes_after_the_timeout_signal(slurm_cluster: Path, tmp_path: Path) -> None:
    """SLURM's time-limit signal (USR2, sent here at once) makes the task checkpoint, requeue, resume."""
    task = CountSteps(tmp_path, total=20, step_s=0.25)
    options = SlurmOptions(time=5, log_dir=tmp_path / "logs")
    report = launch(task, ["count"], ["count"], "slurm", options, wait=False)
    progress = tmp_path / "count.progress"
    deadline = time.monotonic() + 60
    while not (progress.exists() and int(progress.read_text() or 0) >= 2):
        assert time.monotonic() < deadline, "the task did not start within 60 s"
        time.sleep(0.05)
    # What SLURM sends signal_delay_s before the time limit: scancel --signal USR2 <job>.
    report.tasks[0].job._interrupt(timeout=True)

    results: dict[str, dict] = {}
    wait_for_results(report, on_result=results.__setitem__)
    assert report.ok, report.summary()
    first_start, resumed_at = results["count"]["starts"]
    assert first_start == 0 and 2 <= resumed_at < 20  # continued from the checkpoint, not from 0
    assert results["count"]["steps"] == 20
    assert json.loads((tmp_path / "count.ckpt.json").read_text())["step"] == resumed_at


@pytest.mark.slow
def test_start_is_idempotent_on_a_running_cluster(slurm_cluster: Path, slurm_script) -> None:
    pids = {f.name: f.read_text() for f in (slurm_cluster / "run").glob("*.pid")}
    result = slurm_script("start.sh", slurm_cluster)
    assert result.stdout.strip() == f"export SLURM_CONF={slurm_cluster}/etc/slurm.conf"
    assert {f.name: f.read_text() for f in (slurm_cluster / "run").glob("*.pid")} == pids
    assert "starting" not in result.stderr


# ---------------------------------------------------------------------------- options

def test_command_line_options_become_slurm_options() -> None:
    parser = argparse.ArgumentParser()
    add_launch_arguments(parser)
    args = parser.parse_args(["--launch", "slurm", "--partition", "gpu", "--gpus-per-node", "4",
                              "--time", "1:30:00", "--mem", "64G", "--sbatch", "constraint=a100",
                              "--sbatch", "exclusive", "--no-wait", "--log-dir", "/tmp/x"])
    options = options_from_args(args)
    assert args.launch == "slurm" and args.no_wait
    assert options.partition == "gpu" and options.timeout_min == 90 and options.log_dir == Path("/tmp/x")
    params = options.executor_parameters()
    assert params["gpus_per_node"] == 4 and params["tasks_per_node"] == 4  # one process per GPU
    assert params["slurm_mem"] == "64G"
    assert params["slurm_additional_parameters"] == {"constraint": "a100", "exclusive": True}
    assert parser.parse_args([]).launch == "none"


@pytest.mark.parametrize("cluster", ["slurm", "local"])
def test_executor_accepts_the_parameters(cluster: str, tmp_path: Path) -> None:
    options = SlurmOptions(partition="debug", cpus_per_task=2, mem="4G", account="a", qos="q",
                           sbatch={"constraint": "x"})
    executor = submitit.AutoExecutor(folder=tmp_path, cluster=cluster)
    executor.update_parameters(**options.executor_parameters())  # raises on an unknown name


@pytest.mark.parametrize("value, minutes", [(90, 90), ("45", 45), ("1:30:00", 90), ("0:00:30", 1),
                                            ("2-01:00:00", 49 * 60)])
def test_parse_time_minutes(value: int | str, minutes: int) -> None:
    assert parse_time_minutes(value) == minutes


@pytest.mark.parametrize("value", ["", "1h", "1:30", "0", "0:00:00", "-5"])
def test_parse_time_minutes_rejects_bad_values(value: str) -> None:
    with pytest.raises(ValueError, match="time must be"):
        parse_time_minutes(value)


def test_parse_sbatch_options() -> None:
    assert parse_sbatch_options(["--qos=high", "exclusive", "comment=a=b"]) == {
        "qos": "high", "exclusive": True, "comment": "a=b"}
    for bad in ["=x", "key="]:
        with pytest.raises(ValueError, match="KEY=VALUE"):
            parse_sbatch_options([bad])


@pytest.mark.parametrize("field, value", [("nodes", 0), ("gpus_per_node", -1), ("array_parallelism", 0),
                                          ("tasks_per_node", 0), ("time", "soon")])
def test_slurm_options_reject_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field if field != "time" else "time must be"):
        SlurmOptions(**{field: value})


def test_launch_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        launch(square, [1], ["a"], "cluster")
    with pytest.raises(ValueError, match="1 items but 2 names"):
        launch(square, [1], ["a", "b"], "none")
    with pytest.raises(ValueError, match="unique"):
        launch(square, [1, 2], ["a", "a"], "none")
    with pytest.raises(ValueError, match="slurm or local"):
        launch(square, [1], ["a"], "none", wait=False)


def test_empty_launch_succeeds_without_submitting(tmp_path: Path) -> None:
    report = launch(square, [], [], "local", SlurmOptions(log_dir=tmp_path))
    assert isinstance(report, LaunchReport) and report.ok and report.tasks == []
