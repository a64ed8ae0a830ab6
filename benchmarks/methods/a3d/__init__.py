"""A3D (seed 002): one adaptive X3D over width x side x frames (``train --method a3d``, ``eval --sweep``,
``a3d-cost``, ``a3d-study``)."""

from benchmarks.core.options import SUBCOMMANDS, Subcommand
from benchmarks.core.registry import register  # into engine's registries by kind, without importing torch
from benchmarks.studies.reports import PROXY_OVERLAYS, REPORTS, Overlay, Report
from benchmarks.table1.kinetics400 import KINETICS400, PublishedPoints

OPTIONS = "benchmarks.methods.a3d.options"  # the options as data: the command line imports only this module

register("method", "a3d", "benchmarks.methods.a3d.method:A3DMethod",
         Options=f"{OPTIONS}:A3DOptions", EvalOptions=f"{OPTIONS}:A3DEvalOptions")
SUBCOMMANDS.register("a3d-cost", Subcommand(
    "a3d-cost", "A3D on an X3D row: GFLOPs and params of every configuration, memory, training step vs plain X3D",
    "benchmarks.methods.a3d.cost", options=f"{OPTIONS}:CostOptions"))
SUBCOMMANDS.register("a3d-study", Subcommand(
    "a3d-study", "one A3D X3D-XS vs X3D-XS trained at matching inputs on the synthetic airplanes (CPU)",
    "benchmarks.methods.a3d.study", options=f"{OPTIONS}:StudyOptions"))
REPORTS.register("a3d-study", Report("a3d-study", "a3d", "benchmarks.methods.a3d.report:write_outputs"))
PROXY_OVERLAYS.register("a3d-study", Overlay("a3d-study", "a3d", "benchmarks.methods.a3d.report:draw_study"))
KINETICS400.register("a3d", PublishedPoints("A3D (seed 002, Table 1)", "budgets",
                                            "benchmarks.methods.a3d.published:kinetics400_points"))
