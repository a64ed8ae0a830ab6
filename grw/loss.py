"""The GRW-smoothing loss (Gaussian random walk on the velocity of per-frame embeddings).

For a window ``Z = (z_1, ..., z_T)`` of normalised frame embeddings and a permutation ``pi`` of the
frames that keeps the first frame first, the ordering logit is the Gaussian log-likelihood of the
reordered accelerations, ``logit(pi) = -1/2 sum_t ||z^pi_{t+2} - 2 z^pi_{t+1} + z^pi_t||^2``. The loss is
the cross-entropy of the true order among the permutations plus ``alpha`` times the velocity prior
``V = 1/2 sum_t ||z_{t+1} - z_t||^2``, both averaged over the batch of windows.

The accelerations of a permutation are a fixed linear map of the window, ``A_pi = M_pi Z``, so
``sum ||a||^2 = <M_pi^T M_pi, Z Z^T>``: every logit is a quadratic form of the window's T x T Gram
matrix. The loss therefore costs O(B T^2 K + B P T^2) and never builds the P permuted sequences.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Windows up to this length use every permutation with the first frame fixed (6! = 720 for T = 7).
MAX_EXHAUSTIVE_WINDOW = 7


def windows(z: Tensor, window: int, stride: int | None = None) -> Tensor:
    """Cut a sequence batch ``[B, N, K]`` into windows ``[B * n, window, K]`` along time.

    Windows start every ``stride`` frames (``window`` by default: non-overlapping); a remainder
    shorter than ``window`` is dropped. Windows of one sequence are consecutive in the output.
    """
    stride = window if stride is None else stride
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be positive, got window={window}, stride={stride}")
    if z.dim() != 3:
        raise ValueError(f"expected a sequence batch [B, N, K], got shape {tuple(z.shape)}")
    if z.shape[1] < window:
        raise ValueError(f"sequence of {z.shape[1]} frames is shorter than one window of {window}")
    # unfold gives [B, n, K, window]; put time before channels again.
    cut = z.unfold(1, window, stride).transpose(2, 3)
    return cut.reshape(-1, window, z.shape[2])


def ordering_permutations(window: int, max_perms: int = 1000, seed: int = 0) -> Tensor:
    """The permutation set ``[P, window]`` (long), identity first, first frame always fixed.

    All ``(window - 1)!`` permutations for ``window <= 7``; otherwise the identity plus
    ``max_perms - 1`` distinct random ones, drawn once from ``seed``.
    """
    if window < 3:
        raise ValueError(f"window must be at least 3 frames (accelerations need 3), got {window}")
    if window <= MAX_EXHAUSTIVE_WINDOW:
        return torch.tensor([(0, *tail) for tail in itertools.permutations(range(1, window))])

    available = math.factorial(window - 1)
    if not 2 <= max_perms <= available:
        raise ValueError(f"max_perms must be between 2 and (window - 1)! = {available}, got {max_perms}")
    generator = torch.Generator().manual_seed(seed)
    identity = tuple(range(window))
    perms, seen = [identity], {identity}
    while len(perms) < max_perms:
        tails = torch.rand(max_perms, window - 1, generator=generator).argsort(dim=1) + 1
        for tail in tails.tolist():
            perm = (0, *tail)
            if perm not in seen:
                seen.add(perm)
                perms.append(perm)
    return torch.tensor(perms[:max_perms])


def difference_matrix(window: int, order: int) -> Tensor:
    """``[window - order, window]`` matrix of ``order``-th differences along time."""
    return torch.eye(window).diff(n=order, dim=0)


def acceleration_quadratic_forms(perms: Tensor) -> Tensor:
    """``Q_pi = M_pi^T M_pi`` for each permutation, ``[P, T, T]``: ``sum ||a^pi||^2 = <Q_pi, Z Z^T>``.

    ``M_pi = D2 P_pi`` maps a window to the accelerations of its reordering, with ``D2`` the
    second-difference matrix and ``P_pi`` the permutation matrix.
    """
    window = perms.shape[1]
    maps = difference_matrix(window, 2) @ F.one_hot(perms, window).float()  # [P, T - 2, T]
    return maps.transpose(1, 2) @ maps


class _Gram(torch.autograd.Function):
    """Batched Gram matrix ``Z Z^T`` whose backward is one matmul: ``dL/dZ = (S + S^T) Z``, ``S = dL/dG``.

    (Autograd's generic matmul backward takes two matmuls and a sum over ``[B, T, K]``.)
    """

    @staticmethod
    def forward(ctx, z: Tensor) -> Tensor:
        ctx.save_for_backward(z)
        return z @ z.transpose(1, 2)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (z,) = ctx.saved_tensors
        return (grad + grad.transpose(1, 2)) @ z


class GrwSmoothingLoss(nn.Module):
    """GRW-smoothing loss on a batch of windows ``z: [B, window, K]``; returns a scalar.

    ``loss = mean_b CE(ordering logits, identity) + alpha * mean_b V``. The permutation set is the
    ``perms`` buffer ``[P, window]`` (identity first); ``quadratic_forms`` holds ``Q_pi`` ``[P, T, T]``
    and ``velocity_form`` the ``[T, T]`` form of the velocities, ``D1^T D1``.
    Computation is in float32 at least (also under autocast); float64 inputs stay float64.
    """

    def __init__(self, window: int, alpha: float = 0.5, max_perms: int = 1000, seed: int = 0) -> None:
        super().__init__()
        self.window = window
        self.alpha = alpha
        perms = ordering_permutations(window, max_perms, seed)
        # Derived from the arguments, so not part of the state dict.
        self.register_buffer("perms", perms, persistent=False)
        self.register_buffer("quadratic_forms", acceleration_quadratic_forms(perms), persistent=False)
        velocity = difference_matrix(window, 1)
        self.register_buffer("velocity_form", velocity.T @ velocity, persistent=False)

    @property
    def num_perms(self) -> int:
        return self.perms.shape[0]

    def _check(self, z: Tensor) -> None:
        if z.dim() != 3 or z.shape[1] != self.window:
            raise ValueError(
                f"expected windows [B, {self.window}, K] (see grw.windows), got shape {tuple(z.shape)}"
            )

    def _centred(self, z: Tensor) -> Tensor:
        # Differences ignore a constant offset; removing it keeps the Gram matrix well conditioned
        # when all frames share a large offset. For the same reason the gradient already has zero
        # mean over time, so the centring needs no backward pass.
        z = z.to(torch.promote_types(z.dtype, torch.float32))
        return z - z.mean(dim=1, keepdim=True).detach()

    def _squared_norms(self, zc: Tensor) -> tuple[Tensor, Tensor]:
        """Per window: ``sum_t ||a^pi_t||^2`` for every permutation ``[B, P]``, and ``sum_t ||v_t||^2`` ``[B]``.

        All are quadratic forms of the Gram matrix, so one matmul gives them all.
        """
        gram = _Gram.apply(zc).flatten(1)  # [B, T * T]
        forms = torch.cat([self.quadratic_forms.flatten(1), self.velocity_form.flatten()[None]])
        norms = gram @ forms.to(gram.dtype).T  # [B, P + 1]
        return norms[:, :-1], norms[:, -1]

    def ordering_logits(self, z: Tensor) -> Tensor:
        """Log-likelihood ``[B, P]`` of each permutation of each window (identity in column 0)."""
        self._check(z)
        with torch.autocast(z.device.type, enabled=False):
            return -0.5 * self._squared_norms(self._centred(z))[0]

    def forward(self, z: Tensor) -> Tensor:
        self._check(z)
        with torch.autocast(z.device.type, enabled=False):
            accelerations, velocities = self._squared_norms(self._centred(z))
            identity = torch.zeros(len(z), dtype=torch.long, device=z.device)  # the true order
            ordering = F.cross_entropy(-0.5 * accelerations, identity)
            velocity_prior = 0.5 * velocities.mean()
        return ordering + self.alpha * velocity_prior

    def extra_repr(self) -> str:
        return f"window={self.window}, alpha={self.alpha}, num_perms={self.num_perms}"
