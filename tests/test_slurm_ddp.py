"""DDP across the processes of one SLURM job: ``train --launch slurm --tasks-per-node 2`` or ``--nodes 2``.

Each process derives the variables torchrun would set from SLURM's (submitit's
``TorchDistributedEnvironment``, through ``benchmarks.engine.tasks.export_distributed_env``): unit-tested
here for a job of two nodes with two processes each, and run for real (slow) as four local processes
told by SLURM's variables that they sit on two nodes. On the local cluster of the session fixture
``slurm_cluster`` (conftest.py; skips where SLURM cannot run) a one-node, two-process job trains one
epoch and must end with the weights and metrics of the same command under ``torchrun
--nproc-per-node 2``, also when it is requeued mid-epoch by the time-limit signal, and so must a
job of one process on each of two nodes (two slurmd on this machine).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest
import submitit
from submitit.core.utils import JobPaths

from benchmarks.commands.launching import options_from_args
from benchmarks.core import store
from benchmarks.core.checkpoint import LAST, load_checkpoint
from benchmarks.core.paths import REPO_ROOT
from benchmarks.engine import distributed
from benchmarks.engine.tasks import export_distributed_env, in_submitit_job
from benchmarks.run import build_parser
from benchmarks.run import main as run_main

TORCHRUN_NAMES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def environ():
    """os.environ restored afterwards, without torchrun's variables to begin with."""
    with mock.patch.dict(os.environ):
        for name in (*TORCHRUN_NAMES, "TORCHELASTIC_RUN_ID"):
            os.environ.pop(name, None)
        yield os.environ


def slurm_env(procid: int, nodelist: str = "node[01-02]", nodes: int = 2, tasks_per_node: int = 2,
              job: str = "4242", array_task: str = "2") -> dict[str, str]:
    """What SLURM sets for process ``procid`` of array task 4240_<array_task> (job id ``job``): ``nodes``
    x ``tasks_per_node`` processes in SLURM's default block distribution (ranks 0, 1 on the first node)."""
    return {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": job, "SLURM_ARRAY_JOB_ID": "4240",
            "SLURM_ARRAY_TASK_ID": array_task, "SLURM_NTASKS": str(nodes * tasks_per_node),
            "SLURM_JOB_NUM_NODES": str(nodes), "SLURM_NODEID": str(procid // tasks_per_node),
            "SLURM_PROCID": str(procid), "SLURM_LOCALID": str(procid % tasks_per_node),
            "SLURM_JOB_NODELIST": nodelist, "SLURM_STEP_NODELIST": nodelist}


def exported(env: dict[str, str]) -> dict[str, str]:
    """The torchrun variables ``export_distributed_env`` sets in a process with SLURM's ``env``."""
    os.environ.update(env)
    export_distributed_env()
    return {name: os.environ[name] for name in TORCHRUN_NAMES}


# ---------------------------------------------------------------------------- unit: the variables


def test_each_rank_of_two_nodes_with_two_tasks_derives_its_torchrun_variables(environ):
    environ["CUDA_VISIBLE_DEVICES"] = "0,1"
    environ.pop("SUBMITIT_EXECUTOR", None)
    assert not in_submitit_job()
    ranks = [exported(slurm_env(procid)) for procid in range(4)]
    port = ranks[0]["MASTER_PORT"]
    assert ranks == [{"RANK": str(rank), "WORLD_SIZE": "4", "LOCAL_RANK": str(rank % 2), "LOCAL_WORLD_SIZE": "2",
                      "MASTER_ADDR": "node01", "MASTER_PORT": port} for rank in range(4)]
    assert 20000 <= int(port) <= 60000
    assert environ["CUDA_VISIBLE_DEVICES"] == "0,1"  # each process picks LOCAL_RANK's GPU itself
    assert in_submitit_job()


@pytest.mark.parametrize("argv, message", [
    (["--tasks-per-node", "2"], "needs --launch slurm or local"),
    (["--launch", "local", "--gpus-per-node", "4", "--tasks-per-node", "2"], "one process per GPU"),
    (["--launch", "local", "--tasks-per-node", "0"], "tasks_per_node must be >= 1"),
])
def test_bad_process_counts_exit_2_before_submitting(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(store, "_cli_command", None)  # run_main sets it: leave it as it was
    (tmp_path / "train").mkdir()
    logs = tmp_path / "logs"
    assert run_main(["train", "--row", "1", "--data", str(tmp_path), "--out", str(tmp_path / "out"),
                     "--log-dir", str(logs), *argv]) == 2
    assert message in capsys.readouterr().err and not logs.exists()


def test_tasks_per_node_is_trainings_own_option():
    """Only a training task is one process group; eval's and table1's would each run every process."""
    args = build_parser("train").parse_args(["train", "--row", "1", "--data", "d", "--out", "o",
                                             "--launch", "slurm", "--nodes", "2", "--tasks-per-node", "2"])
    params = options_from_args(args).executor_parameters()
    assert (params["nodes"], params["tasks_per_node"], params["gpus_per_node"]) == (2, 2, None)
    assert "--tasks-per-node" not in build_parser("eval").format_help()


@pytest.mark.parametrize("nodelist, nodes, master", [
    ("node[01-02]", 2, "node01"),
    ("node[05,12]", 2, "node05"),
    ("cn17,gpu003", 2, "cn17"),
    ("rack[2-3]-gpu[07]", 2, "rack2-gpu07"),
    ("node[01-02,05]", 3, "node01"),
])
def test_the_master_is_the_first_node_of_the_compressed_node_list(environ, nodelist, nodes, master):
    """Rank 0 runs on the first node of the allocation, which SLURM lists first."""
    for procid in (0, 2 * nodes - 1):
        assert exported(slurm_env(procid, nodelist, nodes))["MASTER_ADDR"] == master


def test_the_port_is_the_jobs_own_not_the_submitting_shells(environ):
    """Array tasks sharing a node need different ports; a requeued task (same job id) keeps its own.
    A MASTER_PORT exported where the job was submitted (sbatch --export=ALL) would be every task's."""
    environ["MASTER_PORT"] = "29500"
    first = exported(slurm_env(0, array_task="2"))["MASTER_PORT"]
    other = exported(slurm_env(0, job="4243", array_task="3"))["MASTER_PORT"]
    requeued = exported(slurm_env(1, array_task="2"))["MASTER_PORT"]
    assert first == requeued and first != other and "29500" not in (first, other)


def test_a_job_of_one_process_joins_no_process_group(environ):
    exported(slurm_env(0, nodelist="node07", nodes=1, tasks_per_node=1))
    assert distributed.setup("cpu") == distributed.Distributed(rank=0, local_rank=0, world_size=1, device="cpu")


# Each process exports the variables from SLURM's, joins the group and sums the ranks.
JOIN_SCRIPT = textwrap.dedent("""
    import json
    import torch.distributed as dist
    from benchmarks.engine import distributed
    from benchmarks.engine.tasks import export_distributed_env, in_submitit_job

    export_distributed_env()
    env = distributed.setup("cpu")
    total = distributed.all_reduce({"ranks": float(env.rank)}, env)["ranks"]
    print(json.dumps({"rank": env.rank, "local_rank": env.local_rank, "world_size": env.world_size,
                      "backend": env.backend, "sum": total}))
    distributed.teardown(env)
""")


@pytest.mark.slow
def test_four_processes_on_two_nodes_join_one_process_group_from_slurm_variables(tmp_path):
    """Two "nodes" of this host, named by loopback addresses (the master's name must resolve; the
    local cluster's second node is named so), two processes each."""
    job = str(uuid.uuid4().int % 10**6)  # the port comes from the job id: another one each run
    base = {key: value for key, value in os.environ.items() if key not in (*TORCHRUN_NAMES, "TORCHELASTIC_RUN_ID")}
    processes = [subprocess.Popen([sys.executable, "-c", JOIN_SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, cwd=tmp_path,
                                  env={**base, **slurm_env(procid, nodelist="127.0.0.[1-2]", job=job),
                                       "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"})
                 for procid in range(4)]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert all(process.returncode == 0 for process in processes), [err[-2000:] for _, err in outputs]
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert reports == [{"rank": rank, "local_rank": rank % 2, "world_size": 4, "backend": "gloo", "sum": 6.0}
                       for rank in range(4)]


# ---------------------------------------------------------------------------- on the cluster, against torchrun

# Row 1 (stream MoViNet-A0 with its GRW head) at 32 px and 8 frames, one video per step, validated.
TRAIN = ["train", "--row", "1", "--epochs", "1", "--res", "32", "--frames", "8", "--batch-size", "1",
         "--num-workers", "0", "--log-every", "1", "--warmup-epochs", "0.5", "--ema-decay", "0.9", "--device", "cpu"]
STEP_LINE = re.compile(r"^epoch 0 step (\d+)/\d+ ", re.MULTILINE)


@pytest.fixture(scope="module")
def torchrun_run(tiny_kinetics, tmp_path_factory) -> Path:
    """The reference: the same command in two processes under ``torchrun --nproc-per-node 2`` (gloo)."""
    tmp = tmp_path_factory.mktemp("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT),
           "GRW_BENCH_RESULTS": str(tmp / "results")}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             "-m", "benchmarks.run", *TRAIN, "--data", str(tiny_kinetics.root), "--out",
                             str(tmp / "out")], capture_output=True, text=True, env=env, cwd=tmp, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "out"


@pytest.fixture
def job_env(tmp_path, monkeypatch, jobs_import_this_checkout) -> Path:
    """Jobs on one thread (2 shared cores) with this checkout's code, a temporary results dir; returns the
    submitit log dir."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("GRW_BENCH_RESULTS", str(tmp_path / "results"))
    monkeypatch.setattr(store, "_cli_command", None)  # run_main sets it: leave it as it was
    return tmp_path / "logs"


@pytest.fixture(params=[pytest.param("slurm", marks=pytest.mark.slow), pytest.param("local", marks=pytest.mark.slow)])
def launch_mode(request: pytest.FixtureRequest) -> str:
    """slurm: on the local cluster; local: submitit's local executor (no SLURM, no root)."""
    if request.param == "slurm":
        request.getfixturevalue("slurm_cluster")
    return request.param


def max_abs_diff(expected: dict, final: dict) -> float:
    """Largest difference between two checkpoints' model and EMA tensors (0.0: identical)."""
    return max((expected[part][name].double() - final[part][name].double()).abs().max().item()
               for part in ("model", "ema") for name in expected[part] if expected[part][name].is_floating_point())


def assert_same_training(expected_out: Path, out: Path, same_weights, exact_metrics: bool) -> None:
    """Same model and EMA tensors (exactly) and the same metrics.csv, but for the time taken.

    ``exact_metrics`` False: the loss sums of a resumed epoch are added in another order (to the last
    bits of a float64)."""
    expected, final = load_checkpoint(expected_out / LAST), load_checkpoint(out / LAST)
    assert final["complete"] and final["progress"]["epoch"] == 1
    print(f"\nmax abs weight difference to torchrun: {max_abs_diff(expected, final):.3g}")
    same_weights(expected, final)
    metrics = [pd.read_csv(path / "metrics.csv").drop(columns="time_s") for path in (expected_out, out)]
    assert len(metrics[1]) == 1 and "val_top1_ema" in metrics[1]
    pd.testing.assert_frame_equal(*metrics, check_exact=exact_metrics, rtol=1e-12)


def launched_train(data: Path, out: Path, logs: Path, *extra: str, mode: str = "slurm") -> list[str]:
    """The reference's command, as one launched task of two processes."""
    return [*TRAIN, "--launch", mode, "--tasks-per-node", "2", "--time", "10", "--data", str(data),
            "--out", str(out), "--log-dir", str(logs), *extra]


def rank_logs(folder: Path, job_id: str) -> tuple[str, str]:
    """The stdout of each process of a two-process job."""
    return tuple(JobPaths(folder, job_id, task_id=rank).stdout.read_text() for rank in (0, 1))


def test_one_job_of_two_tasks_trains_like_torchrun(launch_mode, job_env, tiny_kinetics, torchrun_run, tmp_path,
                                                   capsys, same_weights):
    out = tmp_path / "out"
    assert run_main(launched_train(tiny_kinetics.root, out, job_env, mode=launch_mode)) == 0
    [job_id] = re.findall(r"row1: job (\S+)", capsys.readouterr().out)  # one job, not one per process
    assert all("Job completed successfully" in log for log in rank_logs(job_env, job_id))
    if launch_mode == "slurm":
        assert "#SBATCH --ntasks-per-node=2\n" in JobPaths(job_env, job_id).submission_file.read_text()
    config = json.loads((out / "config.json").read_text())
    assert (config["world_size"], config["distributed_backend"]) == (2, "gloo")
    assert_same_training(torchrun_run, out, same_weights, exact_metrics=True)
    assert len(list((out / "tb").glob("events.out.tfevents.*"))) == 1  # only rank 0 writes


def _wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s} s"
        time.sleep(0.2)


@pytest.mark.slow
def test_the_job_requeued_mid_epoch_resumes_and_finishes_once_like_torchrun(slurm_cluster, job_env, tiny_kinetics,
                                                                            torchrun_run, tmp_path, capsys,
                                                                            same_weights):
    out = tmp_path / "out"
    assert run_main(launched_train(tiny_kinetics.root, out, job_env, "--no-wait")) == 0
    [job_id] = re.findall(r"row1: job (\S+)", capsys.readouterr().out)
    job = submitit.SlurmJob(folder=job_env, job_id=job_id, tasks=(0, 1))
    _wait_for(lambda: "epoch 0 step 2/" in (job.stdout() or ""), 120, "the second training step")
    # What SLURM sends --signal-delay-s before the time limit (--signal=USR1@...), to every process:
    subprocess.run(["scancel", "--signal", "USR1", job.job_id], check=True)

    rank0_result, rank1_result = job.results()  # waits, through the requeue
    assert rank0_result["status"] == rank1_result["status"] == "completed"
    assert rank0_result["history"] == rank1_result["history"] and len(rank0_result["history"]) == 1
    stopped = re.search(r"stopped by signal SIGUSR1 at epoch 0 step (\d+)", job.stderr())
    assert stopped, job.stderr()[-3000:]
    rank0, rank1 = rank_logs(job_env, job_id)
    assert rank0.count("Starting with JobEnvironment") == rank1.count("Starting with JobEnvironment") == 2
    assert rank0.count("Requeued job") == 1 and "Not checkpointing nor requeuing" in rank1  # rank 0 requeues
    assert rank0.count("Job completed successfully") == rank1.count("Job completed successfully") == 1
    steps = [int(step) for step in STEP_LINE.findall(rank0)]  # only rank 0 logs steps
    assert steps == list(range(1, rank0_result["global_step"] + 1))  # each step once: resumed, not repeated
    assert 0 < int(stopped.group(1)) < len(steps)  # stopped mid-epoch
    assert_same_training(torchrun_run, out, same_weights, exact_metrics=False)


@pytest.mark.slow
def test_a_job_over_two_nodes_trains_like_torchrun(slurm_cluster, job_env, tiny_kinetics, torchrun_run, tmp_path,
                                                   capsys, same_weights):
    """Two slurmd nodes on this machine (partition multi: 127.0.0.1, 127.0.0.2), one process each."""
    out = tmp_path / "out"
    argv = [*TRAIN, "--launch", "slurm", "--partition", "multi", "--nodes", "2", "--time", "10",
            "--data", str(tiny_kinetics.root), "--out", str(out), "--log-dir", str(job_env)]
    assert run_main(argv) == 0
    [job_id] = re.findall(r"row1: job (\S+)", capsys.readouterr().out)
    nodes = subprocess.run(["sacct", "--noheader", "--allocations", "--jobs", job_id, "--format", "NodeList%40"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert nodes == "127.0.0.[1-2]"  # the node list the master comes from
    rank0, rank1 = rank_logs(job_env, job_id)
    assert "node=0(2), global_rank=0(2)" in rank0 and "node=1(2), global_rank=1(2)" in rank1
    assert_same_training(torchrun_run, out, same_weights, exact_metrics=True)
