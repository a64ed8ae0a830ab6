"""Multigrid training (seed 003) as a schedule (``train --schedule multigrid``, ``multigrid-study``)."""

from benchmarks.core.options import SUBCOMMANDS, Subcommand
from benchmarks.core.registry import register  # into engine's registries by kind, without importing torch
from benchmarks.studies.reports import REPORTS, Report

OPTIONS = "benchmarks.methods.multigrid.options"  # the options as data: the command line imports only this module

register("schedule", "multigrid", "benchmarks.methods.multigrid.training:MultigridTraining",
         Options=f"{OPTIONS}:MultigridOptions")
SUBCOMMANDS.register("multigrid-study", Subcommand(
    "multigrid-study", "standard vs multigrid training on the synthetic airplanes (CPU): wall-clock, GFLOPs, top-1",
    "benchmarks.methods.multigrid.study", aliases=("multigrid",), options=f"{OPTIONS}:StudyOptions"))
REPORTS.register("multigrid", Report("multigrid", "multigrid", "benchmarks.methods.multigrid.report:write_outputs"))
