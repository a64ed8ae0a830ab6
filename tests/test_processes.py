"""Runs side by side in spawned processes: results in job order, one torch thread each, failures raised."""

import math

import pytest
import torch

from benchmarks.core.processes import map_in_processes


@pytest.mark.parametrize("processes", [1, 2])
def test_results_come_back_in_job_order(processes):
    jobs = [(float(n), 2.0) for n in range(6)]
    assert map_in_processes(math.pow, jobs, processes, "test") == [n**2 for n in range(6)]


def test_each_run_uses_one_torch_thread():
    assert map_in_processes(torch.get_num_threads, [(), ()], 2, "test") == [1, 1]


def test_a_failed_run_is_raised():
    with pytest.raises(ValueError, match="math domain error"):
        map_in_processes(math.sqrt, [(4.0,), (-1.0,), (9.0,)], 2, "test")
    with pytest.raises(ValueError, match="processes"):
        map_in_processes(math.sqrt, [(4.0,)], 0, "test")
