"""Multi-process training under ``torchrun`` (or SLURM + torchrun): process group, device, reductions.

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; without them everything here is a
single-process no-op. NCCL is used with CUDA, gloo on CPU. A process group is joined whenever there are
several processes, and also by a single process that ``torchrun`` started (``--nproc-per-node 1``): a
run launched for DDP trains with DDP, also on one GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    """Where this process stands: its rank, how many there are, and its device."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: str = "cpu"
    backend: str | None = None  # of the process group joined ("nccl", "gloo"); None: a single process, no DDP

    @property
    def enabled(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        """Only the main process writes files (checkpoints, logs, results)."""
        return self.rank == 0


def setup(device: str | None = None) -> Distributed:
    """Join the process group when launched by torchrun; pick this process's device.

    ``device`` None means CUDA (the local rank's GPU) when available, else CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but CUDA is not available")
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    joins = world_size > 1 or launched_by_torchrun()
    if joins and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", rank=rank, world_size=world_size)
    return Distributed(rank, local_rank, world_size, device, str(dist.get_backend()) if joins else None)


def launched_by_torchrun() -> bool:
    """Whether torchrun (``torch.distributed.run``) started this process; its agent sets this variable."""
    return "TORCHELASTIC_RUN_ID" in os.environ


def teardown(env: Distributed) -> None:
    if env.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: Distributed) -> None:
    if env.enabled:
        dist.barrier()


def all_reduce(values: dict[str, float], env: Distributed, op: str = "sum") -> dict[str, float]:
    """Sum (or max, or min) each value over all processes; every process gets the result."""
    if not env.enabled or not values:
        return dict(values)
    ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
    tensor = torch.tensor(list(values.values()), dtype=torch.float64, device=env.device)
    dist.all_reduce(tensor, op=ops[op])
    return dict(zip(values, tensor.tolist(), strict=True))
