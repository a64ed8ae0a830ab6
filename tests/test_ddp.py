"""DistributedDataParallel: two processes on gloo (torchrun) train an epoch and agree on the metrics; one
process started by torchrun trains with DDP too (world size 1)."""

import json
import socket
import textwrap

import pytest
import torch.distributed as dist

from benchmarks.engine import distributed
from benchmarks.engine.config import RunConfig
from benchmarks.engine.recipe import Recipe
from benchmarks.engine.train import train

# Each rank trains and writes what train() returned to REPORTS/rank<r>.json.
SCRIPT = textwrap.dedent("""
    import json, os, sys
    import torch
    from benchmarks.engine.recipe import Recipe
    from benchmarks.engine.config import RunConfig
    from benchmarks.engine.train import train

    torch.set_num_threads(1)
    data, out, reports = sys.argv[1:]
    recipe = Recipe(epochs=1, batch_size=2, lr=3e-4, ema_decay=0.9)
    summary = train(RunConfig(row=1, data=data, out=out, recipe=recipe, res=32, frames=8, num_workers=0,
                                device="cpu"))
    with open(os.path.join(reports, f"rank{os.environ['RANK']}.json"), "w") as f:
        json.dump(summary, f)
""")


def test_two_processes_train_an_epoch_and_report_the_same_metrics(tiny_kinetics, tmp_path, torchrun):
    out = tmp_path / "run"
    rank0, rank1 = torchrun(SCRIPT, tiny_kinetics.root, out)
    assert rank0["world_size"] == rank1["world_size"] == 2
    assert rank0["history"] == rank1["history"] and len(rank0["history"]) == 1
    epoch = rank0["history"][0]
    shards = 2 * -(-tiny_kinetics.videos["train"] // 2)  # DistributedSampler pads to equal shards
    assert epoch["train_videos"] + epoch["skipped_load"] == shards
    assert epoch["val_videos"] == tiny_kinetics.videos["val"]  # validation is sharded without padding
    assert rank0["skipped"] == rank1["skipped"]
    # Only rank 0 writes: one TensorBoard event file, one metrics row.
    assert len(list((out / "tb").glob("events.out.tfevents.*"))) == 1
    assert len((out / "metrics.csv").read_text().strip().splitlines()) == 2


@pytest.fixture
def torchrun_single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variables torchrun sets for one process (``--nproc-per-node 1``), on a free local port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for name, value in {"TORCHELASTIC_RUN_ID": "test", "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1",
                        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}.items():
        monkeypatch.setenv(name, value)
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


def test_a_single_process_started_by_torchrun_joins_a_process_group(torchrun_single_process):
    env = distributed.setup("cpu")
    try:
        assert (env.world_size, env.backend, env.enabled) == (1, "gloo", True) and dist.is_initialized()
        assert distributed.all_reduce({"n": 3.0}, env) == {"n": 3.0}
    finally:
        distributed.teardown(env)
    assert not dist.is_initialized()


def test_without_torchrun_a_single_process_joins_nothing(monkeypatch):
    for name in ("TORCHELASTIC_RUN_ID", "WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.setup("cpu") == distributed.Distributed(device="cpu")
    assert not dist.is_initialized()


def test_one_process_under_torchrun_trains_with_ddp_and_records_the_backend(tiny_kinetics, tmp_path,
                                                                            torchrun_single_process):
    out = tmp_path / "run"
    summary = train(RunConfig(row=1, data=str(tiny_kinetics.root), out=str(out), res=32, frames=8, num_workers=0,
                              device="cpu", validate=False, recipe=Recipe(epochs=1, batch_size=2, ema_decay=0.9)))
    assert summary["status"] == "completed" and summary["world_size"] == 1
    config = json.loads((out / "config.json").read_text())
    assert (config["world_size"], config["distributed_backend"]) == (1, "gloo")
    assert not dist.is_initialized()  # train() leaves the process group it joined
