"""Trajectory geometry on constructed trajectories with known values, and the statistics over seeds."""

import math

import numpy as np
import pytest
import torch

from benchmarks.core.statistics import format_ci, mean_ci, paired_difference
from benchmarks.studies.geometry import (
    direction_accuracy,
    principal_components,
    relative_acceleration,
    spacing_cv,
    straightness,
    trajectory_metrics,
    unit_mean_velocity,
)


def points(*coordinates) -> torch.Tensor:
    """One trajectory ``[1, T, D]`` from per-dimension coordinate lists."""
    return torch.tensor(coordinates, dtype=torch.float64).T[None]


def circle(frames: int, turn: float = 2 * math.pi, radius: float = 1.0) -> torch.Tensor:
    angles = torch.arange(frames, dtype=torch.float64) * turn / frames
    return torch.stack([radius * angles.cos(), radius * angles.sin()], dim=-1)[None]


def test_straight_evenly_spaced_line():
    t = torch.arange(6, dtype=torch.float64)[:, None]
    z = (torch.tensor([1.0, -2.0, 0.5, 3.0]) + t * torch.tensor([0.3, 0.1, -0.2, 0.0]))[None]
    assert relative_acceleration(z) == pytest.approx(0.0, abs=1e-12)
    assert straightness(z) == pytest.approx(1.0)
    assert spacing_cv(z) == pytest.approx(0.0, abs=1e-12)


def test_zigzag_back_and_forth_on_a_line():
    z = points([0, 1, 0, 1, 0, 1])  # accelerations +-2, steps of 1: on one line, evenly spaced, not smooth
    assert relative_acceleration(z) == pytest.approx(4.0)
    assert straightness(z) == pytest.approx(1.0)
    assert spacing_cv(z) == pytest.approx(0.0, abs=1e-12)


def test_zigzag_in_the_plane():
    z = points([0, 1, 2, 3, 4, 5], [1, -1, 1, -1, 1, -1])  # velocities (1, +-2), accelerations (0, +-4)
    assert relative_acceleration(z) == pytest.approx(16 / 5)
    # centred scatter [[17.5, -3], [-3, 6]]: largest eigenvalue over the trace
    largest = (23.5 + math.sqrt(23.5**2 - 4 * 96)) / 2
    assert straightness(z) == pytest.approx(largest / 23.5)
    assert spacing_cv(z) == pytest.approx(0.0, abs=1e-12)


def test_evenly_spaced_points_on_a_circle():
    z = circle(6)  # a regular hexagon: every step turns by 60 degrees
    assert relative_acceleration(z) == pytest.approx(4 * math.sin(math.pi / 6) ** 2)  # = 1
    assert straightness(z) == pytest.approx(0.5)  # isotropic: no preferred direction
    assert spacing_cv(z) == pytest.approx(0.0, abs=1e-12)


def test_arc_turning_by_a_fixed_angle_per_step():
    step = math.radians(20)
    z = circle(6, turn=6 * step, radius=5.0)
    assert relative_acceleration(z) == pytest.approx(2 * (1 - math.cos(step)))  # independent of the radius
    assert 0.5 < straightness(z) < 1.0


def test_line_with_growing_steps():
    z = points([0, 1, 4, 9, 16, 25])  # steps 1, 3, 5, 7, 9; acceleration 2 everywhere
    assert spacing_cv(z) == pytest.approx(math.sqrt(8) / 5)
    assert straightness(z) == pytest.approx(1.0)
    assert relative_acceleration(z) == pytest.approx(4 / 33)


def test_metrics_are_scale_free_and_averaged_over_clips():
    z = torch.randn(8, 6, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    labels = torch.arange(8) % 2
    for name, value in trajectory_metrics(z, labels).items():
        assert trajectory_metrics(7.5 * z, labels)[name] == pytest.approx(value), name
    both = torch.cat([points([0, 1, 0, 1, 0, 1]), points([0, 1, 2, 3, 4, 5])])
    assert relative_acceleration(both) == pytest.approx(2.0)


def test_random_points_have_relative_acceleration_near_three():
    z = torch.randn(4000, 6, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert relative_acceleration(z) == pytest.approx(3.0, rel=0.03)


def test_direction_accuracy_reads_the_class_from_the_direction_only():
    generator = torch.Generator().manual_seed(2)
    directions = torch.eye(3, 8, dtype=torch.float64)
    labels = torch.arange(30) % 3
    t = torch.arange(6, dtype=torch.float64)[None, :, None]
    starts = 10 * torch.randn(30, 1, 8, generator=generator, dtype=torch.float64)  # far apart, random
    speeds = 0.1 + torch.rand(30, 1, 1, generator=generator, dtype=torch.float64)
    z = starts + speeds * t * directions[labels][:, None]
    assert direction_accuracy(z, labels) == 100.0
    assert unit_mean_velocity(z)[0].tolist() == pytest.approx(directions[0].tolist())
    # every class moving the same way: the direction says nothing
    same = starts + speeds * t * directions[0]
    assert direction_accuracy(same, labels) <= 50.0


@pytest.mark.parametrize("shape", [(6, 8), (2, 2, 8)])
def test_metrics_reject_what_is_not_clips_of_three_frames_or_more(shape):
    with pytest.raises(ValueError, match="frames >= 3"):
        relative_acceleration(torch.zeros(shape))


def test_principal_components_of_points_on_a_line():
    direction = np.array([1.0, 2.0, 2.0]) / 3.0
    projected = principal_components(np.array([1.0, 4.0, -2.0]) + np.arange(5)[:, None] * direction)
    np.testing.assert_allclose(np.abs(projected[:, 0]), np.abs(np.arange(5) - 2.0), atol=1e-9)
    np.testing.assert_allclose(projected[:, 1], 0.0, atol=1e-9)


def test_mean_ci_and_paired_difference():
    stats = mean_ci([90.0, 92.0, 94.0, 96.0, 98.0])
    half = 2.7764 * math.sqrt(10) / math.sqrt(5)
    assert stats["mean"] == 94.0 and stats["std"] == pytest.approx(math.sqrt(10))
    assert stats["ci95"] == pytest.approx([94.0 - half, 94.0 + half], abs=1e-3)
    assert mean_ci([40.0])["ci95"] is None and format_ci(mean_ci([40.0])) == "40.0"
    diff = paired_difference([91.0, 95.0, 93.0], [90.0, 93.0, 90.0])
    assert diff["values"] == [1.0, 2.0, 3.0] and diff["mean"] == 2.0 and diff["std"] == 1.0
    assert format_ci(diff) == "2.0 ± 1.0 [-0.5, 4.5]"
