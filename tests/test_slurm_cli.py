"""`train`, `eval` and `table1` launched through the CLI (`--launch`), and their submitit tasks.

The slow tests run the commands against the real cluster (one node: its default partition) of the session
fixture ``slurm_cluster`` (conftest.py; they skip, saying why, where SLURM cannot run), with a temporary
results directory. The others check the task logic with fakes, in this process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest
import submitit

from benchmarks.commands.eval import configs_from_args as eval_configs
from benchmarks.commands.train import configs_from_args as train_configs
from benchmarks.core import store
from benchmarks.core.checkpoint import LAST, file_sha256, load_checkpoint, save_checkpoint
from benchmarks.core.cli import UsageError
from benchmarks.core.paths import REPO_ROOT
from benchmarks.core.store import Store, command_line, set_cli_command
from benchmarks.engine import tasks as slurm_tasks
from benchmarks.engine.config import RunConfig
from benchmarks.engine.evaluate import EvalConfig
from benchmarks.engine.launch import SlurmOptions
from benchmarks.engine.tasks import (
    EvalTask,
    TrainTask,
    preemptible,
    submitit_signal,
)
from benchmarks.run import build_parser
from benchmarks.run import main as run_main

# Row 1 (stream MoViNet-A0 with its GRW head) at 32 px and 8 frames, one video per step.
TINY_TRAIN = ["--res", "32", "--frames", "8", "--batch-size", "1", "--num-workers", "0", "--log-every", "1",
              "--no-val", "--warmup-epochs", "0.5", "--ema-decay", "0.9"]
EPOCHS = 3
FAILED_LINE = re.compile(r"FAILED (\S+) \(job (\S+)\): (.+); log: (\S+)")


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary results dir; jobs run on one thread (the 2 cores of the test machine are shared)."""
    monkeypatch.setenv("GRW_BENCH_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(store, "_cli_command", None)  # run_main sets it: leave it as it was
    return tmp_path / "results"


@pytest.fixture
def environ():
    """os.environ restored afterwards, also the variables a test's code adds (RANK, ...)."""
    with mock.patch.dict(os.environ):
        yield os.environ


def slurm_task_env(procid: int, localid: int, nodeid: int, ntasks: int = 8, nodes: int = 2) -> dict[str, str]:
    """What SLURM sets for one process of array task 4240_2, ``ntasks`` processes on ``nodes`` nodes."""
    return {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "4242", "SLURM_ARRAY_JOB_ID": "4240",
            "SLURM_ARRAY_TASK_ID": "2", "SLURM_NTASKS": str(ntasks), "SLURM_JOB_NUM_NODES": str(nodes),
            "SLURM_NODEID": str(nodeid), "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_PROCID": str(procid),
            "SLURM_LOCALID": str(localid)}


def parse(command: str, *argv: str):
    return build_parser(command).parse_args([command, *argv])


# ---------------------------------------------------------------------------- tasks, with fakes


def test_training_asks_slurm_for_the_signal_train_stops_on():
    options = preemptible(SlurmOptions(signal_delay_s=300, sbatch={"constraint": "a100"}))
    assert options.sbatch == {"constraint": "a100", "signal": "USR1@300", "export": "ALL,SUBMITIT_PREEMPT_SIGNAL=USR1"}
    with mock.patch.dict(os.environ, {"SUBMITIT_PREEMPT_SIGNAL": "USR1"}):
        assert submitit_signal() == signal.SIGUSR1  # what submitit listens to in such a job
    with pytest.raises(ValueError, match="signal"):
        preemptible(SlurmOptions(sbatch={"signal": "USR2@60"}))


def preempted_summary(config: RunConfig, signum: signal.Signals) -> dict:
    return {"status": "preempted", "exit_code": 128 + signum, "signal": signum.name, "row": config.row,
            "epochs_completed": 0, "step_in_epoch": 3}


@pytest.mark.parametrize("signum, requeued", [(signal.SIGUSR1, True), (signal.SIGTERM, False)])
def test_stopped_training_task_requeues_on_the_time_limit_signal_only(signum, requeued, environ, monkeypatch, tmp_path):
    """In a job: after the time-limit signal submitit's handler requeues; a SIGTERM (scancel) does not."""
    environ.update(slurm_task_env(procid=0, localid=0, nodeid=0, ntasks=1, nodes=1), SUBMITIT_PREEMPT_SIGNAL="USR1")
    monkeypatch.setattr(slurm_tasks, "train", lambda config: preempted_summary(config, signum))
    handled = []
    previous = signal.signal(signal.SIGUSR1, lambda *args: handled.append(args))  # stands in for submitit's
    try:
        with pytest.raises(SystemExit) as stopped:  # no result: the wait for this task goes on
            TrainTask()(RunConfig(row=1, data="d", out=str(tmp_path)))
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert stopped.value.code == 128 + signum
    assert handled == ([(signal.SIGUSR1, None)] if requeued else [])


def test_requeued_training_task_resumes(tmp_path):
    config = RunConfig(row=1, data="d", out=str(tmp_path), resume=False)  # e.g. a --refresh run
    task = TrainTask()
    requeued = task.checkpoint(config)
    assert requeued.function is task and requeued.args == (dataclasses.replace(config, resume=True),)


def test_eval_task_stores_where_the_launching_process_does(results, monkeypatch, tmp_path):
    set_cli_command(["eval", "--row", "1", "--checkpoint", "a b.pt"])
    task = EvalTask()
    # A job with another environment and command line:
    monkeypatch.setenv("GRW_BENCH_RESULTS", str(tmp_path / "elsewhere"))
    set_cli_command(["something", "else"])
    monkeypatch.setattr(slurm_tasks, "evaluate",
                        lambda config, store: {"results": store.root, "command": command_line()})
    seen = task(EvalConfig(checkpoint="c.pt", data="d"))
    assert seen == {"results": results.resolve(),
                    "command": "python -m benchmarks.run eval --row 1 --checkpoint 'a b.pt'"}
    assert os.environ["GRW_BENCH_RESULTS"] == str(tmp_path / "elsewhere")  # the job's environment is untouched


# ---------------------------------------------------------------------------- the CLI in this process


def test_several_rows_train_in_their_own_folders_and_launched_tasks_resume(tmp_path):
    data, out = str(tmp_path / "data"), tmp_path / "out"
    for split in ("train", "val"):
        (tmp_path / "data" / split / "a").mkdir(parents=True)
        (tmp_path / "data" / split / "a" / "0.mp4").write_bytes(b"")  # counted before launch, never read here
    for row in (1, 3):
        save_checkpoint(tmp_path / f"runs/row{row}/last.pt", {"row": row})
    configs = train_configs(parse("train", "--row", "1,MobileNetV3-S", "--data", data, "--out", str(out)))
    assert [(c.row, c.out, c.resume) for c in configs] == [(1, str(out / "row1"), False), (3, str(out / "row3"), False)]
    [one] = train_configs(parse("train", "--row", "3", "--data", data, "--out", str(out), "--launch", "slurm"))
    assert (one.out, one.resume) == (str(out), True)
    [fresh] = train_configs(parse("train", "--row", "3", "--data", data, "--out", str(out), "--launch", "slurm",
                                  "--refresh"))
    assert not fresh.resume
    with pytest.raises(UsageError, match="twice"):
        train_configs(parse("train", "--row", "1,1", "--data", data, "--out", str(out)))
    checkpoints = str(tmp_path / "runs/row{row}/last.pt")
    evals = eval_configs(parse("eval", "--row", "1,3", "--checkpoint", checkpoints, "--data", data))
    assert [(c.row, c.checkpoint) for c in evals] == [(row, checkpoints.replace("{row}", str(row))) for row in (1, 3)]


@pytest.mark.parametrize("argv, message", [
    (["eval", "--row", "1,3", "--checkpoint", "last.pt"], "several rows need {row}"),
    (["eval", "--row", "3", "--checkpoint", "{tmp}/row1.pt"], "trained for row 1, not row 3"),
    (["eval", "--row", "1", "--checkpoint", "{tmp}/row1.pt", "--no-wait"], "--no-wait needs"),
    (["train", "--row", "1", "--out", "{tmp}/out", "--launch", "slurm", "--sbatch", "signal=USR2@60"], "signal"),
])
def test_bad_launches_exit_2_before_submitting(argv, message, results, tmp_path, capsys):
    save_checkpoint(tmp_path / "row1.pt", {"row": 1})
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    assert run_main([*argv, "--data", str(tmp_path), "--log-dir", str(tmp_path / "logs")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "logs").exists()


def test_a_stopped_row_stops_the_rows_after_it(results, monkeypatch, tmp_path, capsys):
    calls = []

    def stopped_train(config: RunConfig) -> dict:
        calls.append(config.row)
        return preempted_summary(config, signal.SIGTERM)

    monkeypatch.setattr(slurm_tasks, "train", stopped_train)
    (tmp_path / "train" / "a").mkdir(parents=True)
    (tmp_path / "train" / "a" / "0.mp4").write_bytes(b"")  # counted before launch; training is stubbed
    argv = ["train", "--row", "1,3", "--data", str(tmp_path), "--out", str(tmp_path / "out")]
    assert run_main(argv) == 128 + signal.SIGTERM
    assert calls == [1] and "stopped by SIGTERM at epoch 0 step 3" in capsys.readouterr().err


def test_finished_rows_are_skipped_unless_refreshed(results, monkeypatch, tmp_path, capsys):
    (tmp_path / "train" / "a").mkdir(parents=True)
    (tmp_path / "train" / "a" / "0.mp4").write_bytes(b"")  # counted before launch; training is stubbed
    argv = ["train", "--row", "1,3", "--data", str(tmp_path), "--out", str(tmp_path / "out"), "--lr", "0.01"]
    for config in train_configs(parse(*argv)):  # row 1 finished with these settings, row 3 with another lr
        lr = 0.01 if config.row == 1 else 0.02
        changed = dataclasses.replace(config, recipe=dataclasses.replace(config.recipe, lr=lr))
        save_checkpoint(Path(config.out) / LAST, {"complete": True, "config": dataclasses.asdict(changed),
                                                  "progress": {"epoch": 1}})
    trained = []

    def fake_train(config: RunConfig) -> dict:
        trained.append(config)
        return {"row": config.row, "status": "completed", "epochs_completed": 1, "best_val_top1": None,
                "last_checkpoint": str(Path(config.out) / LAST)}

    monkeypatch.setattr(slurm_tasks, "train", fake_train)

    # row 3's run has other settings: never overwritten without --resume or --refresh, nothing launched
    assert run_main(argv) == 2 and trained == []
    assert f"{tmp_path / 'out' / 'row3'} holds a run at epoch 1: add --resume to continue or --refresh" in \
        capsys.readouterr().err
    assert run_main([*argv, "--refresh"]) == 0
    assert [(c.row, c.resume) for c in trained] == [(1, False), (3, False)]


# ---------------------------------------------------------------------------- on the SLURM cluster


@pytest.mark.slow
def test_table1_array_stores_each_row_as_it_finishes(slurm_cluster, results, tmp_path, capsys):
    argv = ["table1", "--launch", "slurm", "--rows", "3,4", "--time", "10", "--log-dir", str(tmp_path / "logs")]
    assert run_main(argv) == 0
    out = capsys.readouterr().out
    job_ids = re.findall(r"row0[34]: job (\S+)", out)
    assert len(job_ids) == 2 and job_ids[0].split("_")[0] == job_ids[1].split("_")[0]  # one array
    for row in (3, 4):
        record = json.loads((results / "measured" / f"row{row:02d}-cpu.json").read_text())
        assert record["row"] == row and record["gflops"] > 0 and record["params"] > 1e6
    table = pd.read_csv(results / "table1.csv").set_index("row")
    assert table.loc[[3, 4], "measured_gflops"].notna().all()
    assert "MobileNetV3-S" in (results / "table1.md").read_text()

    assert run_main(argv) == 0  # measured: nothing is submitted again
    assert "2 row(s) already measured" in capsys.readouterr().out


def _wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s} s"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def interrupted_training(slurm_cluster, tiny_kinetics, tmp_path_factory) -> dict:
    """`train --launch slurm` of row 1, sent SLURM's time-limit signal after its second step.

    Run as a separate process; returns what it printed, its exit status and its job.
    """
    tmp = tmp_path_factory.mktemp("slurm_train")
    out, logs = tmp / "out", tmp / "logs"
    argv = ["train", "--launch", "slurm", "--row", "1", "--data", str(tiny_kinetics.root), "--out", str(out),
            "--epochs", str(EPOCHS), *TINY_TRAIN, "--time", "10", "--log-dir", str(logs)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with open(tmp / "stderr.txt", "w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "benchmarks.run", *argv], stdout=subprocess.PIPE,
                                   stderr=stderr, text=True, cwd=REPO_ROOT, env=env)
        try:
            printed = []
            for line in process.stdout:
                printed.append(line)
                if submitted := re.match(r"\s+row1: job (\S+)", line):
                    break
            assert submitted, "".join(printed) + (tmp / "stderr.txt").read_text()[-3000:]
            job = submitit.SlurmJob(folder=logs, job_id=submitted.group(1))
            _wait_for(lambda: "epoch 0 step 2/" in (job.stdout() or ""), 120, "the second training step")
            # What SLURM sends --signal-delay-s before the time limit (--signal=USR1@...):
            subprocess.run(["scancel", "--signal", "USR1", job.job_id], check=True)
            printed += process.stdout.readlines()
            returncode = process.wait(timeout=300)
        finally:
            process.kill()  # if something above failed; a no-op once it has exited
    return {"argv": argv, "out": out, "job": job, "returncode": returncode, "printed": "".join(printed),
            "stderr": (tmp / "stderr.txt").read_text()}


@pytest.mark.slow
def test_training_task_checkpoints_on_the_time_limit_signal_and_resumes_after_requeue(interrupted_training, results,
                                                                                      capsys):
    run, job = interrupted_training, interrupted_training["job"]
    assert run["returncode"] == 0, run["stderr"][-3000:]
    submission = job.paths.submission_file.read_text()
    assert "#SBATCH --signal=USR1@120\n" in submission
    assert "#SBATCH --export=ALL,SUBMITIT_PREEMPT_SIGNAL=USR1\n" in submission

    stopped = re.search(r"stopped by signal SIGUSR1 at epoch (\d+) step (\d+)", job.stderr())
    assert stopped, job.stderr()[-3000:]
    epoch, step = map(int, stopped.groups())
    log = job.stdout()
    assert log.count("Starting with JobEnvironment") == 2  # the task ran twice
    assert log.count("epoch 0 step 1/") == 1  # ... and did not start over,
    first_after = log.index(f"epoch {epoch} step {step}/") + 1  # but went on where it stopped
    assert re.search(rf"epoch {epoch} step {step + 1}/", log[first_after:])

    summary = next(json.loads(line) for line in run["printed"].splitlines() if line.startswith("{"))
    assert summary["status"] == "completed" and summary["epochs_completed"] == EPOCHS
    final = load_checkpoint(run["out"] / LAST)
    assert final["complete"] and final["progress"]["epoch"] == EPOCHS and final["config"]["resume"]
    assert final["progress"]["global_step"] == EPOCHS * final["progress"]["history"][0]["step"]

    assert run_main(run["argv"]) == 0  # finished: nothing is submitted again
    assert "holds a finished run" in capsys.readouterr().out


@pytest.mark.slow
def test_eval_array_stores_the_run_in_the_callers_results(interrupted_training, tiny_kinetics, results, tmp_path,
                                                           capsys):
    checkpoint = interrupted_training["out"] / LAST
    argv = ["eval", "--launch", "slurm", "--row", "1", "--checkpoint", str(checkpoint), "--data",
            str(tiny_kinetics.root), "--num-workers", "0", "--index-cache", str(tmp_path / "index"),
            "--log-dir", str(tmp_path / "logs")]
    assert run_main(argv) == 0
    [run] = Store(results).load_runs()
    assert run["checkpoint_sha256"] == file_sha256(checkpoint) and run["split"] == "val"
    assert run["command"] == "python -m benchmarks.run " + " ".join(argv)
    assert run["videos_evaluated"] == tiny_kinetics.videos["val"]
    assert Path(run["per_class_csv"]).parent == results / "runs"

    assert run_main(argv) == 0  # evaluated: nothing is submitted again
    assert "already evaluated" in capsys.readouterr().out and len(Store(results).load_runs()) == 1


@pytest.mark.slow
def test_failed_task_is_reported_with_its_log(interrupted_training, tiny_kinetics, results, tmp_path, capsys):
    """The checkpoint is fine, the data's `test` split holds no video: the task fails where it runs."""
    (tmp_path / "data" / "test" / "left").mkdir(parents=True)
    argv = ["eval", "--launch", "slurm", "--row", "1", "--checkpoint", str(interrupted_training["out"] / LAST),
            "--data", str(tmp_path / "data"), "--split", "test", "--num-workers", "0",
            "--log-dir", str(tmp_path / "logs")]
    assert run_main(argv) == 1
    [failed] = {match.groups() for match in FAILED_LINE.finditer(capsys.readouterr().out)}
    name, _, error, log = failed
    assert name == "row1" and "test" in error
    assert error in Path(log).read_text()  # the log holds the task's traceback
    assert not (results / "runs").exists()
