"""DistributedDataParallel: two processes on gloo (torchrun) train an epoch and agree on the metrics."""

import textwrap

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
