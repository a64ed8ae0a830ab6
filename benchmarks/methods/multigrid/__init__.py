"""Multigrid training (seed 003) as a schedule (``train --schedule multigrid``, ``multigrid-study``)."""

from benchmarks.engine.schedules import SCHEDULES

SCHEDULES.register("multigrid", "benchmarks.methods.multigrid.training:MultigridTraining")
