"""Slow, obviously-correct GRW-smoothing loss, used as the oracle in tests and benchmarks.

It gathers every permuted sequence (``[B, P, T, K]``) and computes the accelerations literally, as
the definition reads. Use ``grw.GrwSmoothingLoss`` in models: same values, without the O(B P T K) cost.
"""

from __future__ import annotations

import torch
from torch import Tensor


def reference_ordering_logits(z: Tensor, perms: Tensor) -> Tensor:
    """``-1/2 sum_t ||a^pi_t||^2`` for every window in ``z: [B, T, K]`` and permutation in ``perms: [P, T]``."""
    reordered = z[:, perms]  # [B, P, T, K]
    accel = reordered[:, :, 2:] - 2 * reordered[:, :, 1:-1] + reordered[:, :, :-2]
    return -0.5 * accel.square().sum(dim=(2, 3))


def reference_grw_loss(z: Tensor, perms: Tensor, alpha: float = 0.5) -> Tensor:
    """``mean_b CE(logits, identity) + alpha * mean_b 1/2 sum_t ||z_{t+1} - z_t||^2``; ``perms[0]`` is the identity."""
    logits = reference_ordering_logits(z, perms)
    ordering = torch.logsumexp(logits, dim=1) - logits[:, 0]
    velocity = 0.5 * (z[:, 1:] - z[:, :-1]).square().sum(dim=(1, 2))
    return ordering.mean() + alpha * velocity.mean()
