"""The geometry of per-frame embedding trajectories.

A trajectory is one clip's per-frame embeddings ``z_0 .. z_{T-1}`` in R^D; a batch is ``[N, T, D]``.
The GRW prior says that a good trajectory is a straight, evenly spaced line. Each metric below
measures one part of that and is scale-free (multiplying the embeddings by a constant, which the
GRW velocity prior rewards, changes none of them). Per-clip values are averaged over clips.

- ``relative_acceleration``: mean_t ||z_{t+2} - 2 z_{t+1} + z_t||^2 / mean_t ||z_{t+1} - z_t||^2.
  0 for a straight, evenly spaced line; 3 in expectation for independent random points; 4 for a
  zig-zag that goes back and forth by the same step.
- ``straightness``: the share of the trajectory's variance (points centred over time) on its first
  principal direction, lambda_1 / sum(lambda). 1 for any set of points on one line (also a line walked
  back and forth); 1/2 for points evenly spaced around a circle; at least 1/min(T, D) for anything.
- ``spacing_cv``: coefficient of variation (std / mean, population std) of the step lengths
  ||z_{t+1} - z_t||. 0 for evenly spaced points, whatever the path; 0.566 for steps 1, 3, 5, 7, 9.
- ``direction_accuracy``: how well the class is read from the direction of travel alone: the mean
  velocity (z_{T-1} - z_0) / (T - 1) of each clip, normalised to unit length, classified by its
  nearest class centroid (of the unit vectors, largest cosine), k-fold cross-validated (%).

"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

METRICS = ("relative_acceleration", "straightness", "spacing_cv", "direction_accuracy")


def _check(z: Tensor, min_frames: int = 3) -> Tensor:
    z = torch.as_tensor(z, dtype=torch.float64)
    if z.dim() != 3 or z.shape[1] < min_frames:
        raise ValueError(f"expected trajectories [clips, frames >= {min_frames}, dim], got shape {tuple(z.shape)}")
    return z


def _squared_differences(z: Tensor, order: int) -> Tensor:
    """Per clip ``[N]``: the mean over t of the squared norm of the ``order``-th difference along time."""
    return z.diff(n=order, dim=1).pow(2).sum(dim=-1).mean(dim=1)


def relative_acceleration_per_clip(z: Tensor) -> Tensor:
    z = _check(z)
    return _squared_differences(z, 2) / _squared_differences(z, 1).clamp_min(1e-24)


def straightness_per_clip(z: Tensor) -> Tensor:
    z = _check(z, min_frames=2)
    centred = z - z.mean(dim=1, keepdim=True)
    variances = torch.linalg.svdvals(centred).pow(2)  # [N, min(T, D)], largest first
    return variances[:, 0] / variances.sum(dim=1).clamp_min(1e-24)


def spacing_cv_per_clip(z: Tensor) -> Tensor:
    z = _check(z, min_frames=2)
    steps = z.diff(dim=1).norm(dim=-1)
    return steps.std(dim=1, unbiased=False) / steps.mean(dim=1).clamp_min(1e-24)


def relative_acceleration(z: Tensor) -> float:
    """Mean over clips of mean squared acceleration / mean squared velocity (0: straight, even)."""
    return relative_acceleration_per_clip(z).mean().item()


def straightness(z: Tensor) -> float:
    """Mean over clips of the variance share on the first principal direction (1: on a line)."""
    return straightness_per_clip(z).mean().item()


def spacing_cv(z: Tensor) -> float:
    """Mean over clips of the coefficient of variation of the step lengths (0: evenly spaced)."""
    return spacing_cv_per_clip(z).mean().item()


def unit_mean_velocity(z: Tensor) -> Tensor:
    """``[N, D]``: each clip's mean velocity (last minus first frame over T - 1), unit length."""
    z = _check(z, min_frames=2)
    velocity = (z[:, -1] - z[:, 0]) / (z.shape[1] - 1)
    return velocity / velocity.norm(dim=-1, keepdim=True).clamp_min(1e-24)


def direction_accuracy(z: Tensor, labels: Tensor | Sequence[int], folds: int = 5) -> float:
    """Cross-validated nearest-centroid top-1 (%) of the class from the unit mean velocity alone.

    Fold k holds out clips ``k, k + folds, ...`` (deterministic; classes that take turns stay
    balanced); each held-out clip takes the class whose training centroid has the largest cosine.
    """
    directions = unit_mean_velocity(z)
    labels = torch.as_tensor(labels)
    n = len(labels)
    if n != len(directions) or n < 2:
        raise ValueError(f"expected one label per clip and at least 2 clips, got {n} labels, {len(directions)} clips")
    folds = max(2, min(folds, n))
    classes = labels.unique()
    correct = 0
    for k in range(folds):
        test = torch.zeros(n, dtype=torch.bool)
        test[k::folds] = True
        centroids = []
        for c in classes:
            members = directions[~test & (labels == c)]
            centroid = members.mean(dim=0) if len(members) else torch.zeros(directions.shape[1], dtype=directions.dtype)
            centroids.append(centroid / centroid.norm().clamp_min(1e-24))
        predicted = classes[(directions[test] @ torch.stack(centroids).T).argmax(dim=1)]
        correct += (predicted == labels[test]).sum().item()
    return 100.0 * correct / n


def trajectory_metrics(z: Tensor, labels: Tensor | Sequence[int]) -> dict[str, float]:
    """All four metrics of a split's trajectories ``[N, T, D]``."""
    return {"relative_acceleration": relative_acceleration(z), "straightness": straightness(z),
            "spacing_cv": spacing_cv(z), "direction_accuracy": direction_accuracy(z, labels)}


def principal_components(points: np.ndarray, k: int = 2) -> np.ndarray:
    """``points`` ``[n, d]`` projected on their first ``k`` principal components ``[n, k]``."""
    centred = points - points.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    return centred @ components[:k].T
