"""VA-RED2 (seed 004): dynamic convolutions with gates in X3D (``train --method vared2``, ``vared2-cost``,
``vared2-study``)."""

from benchmarks.core.options import SUBCOMMANDS, Subcommand
from benchmarks.core.registry import register  # into engine's registries by kind, without importing torch
from benchmarks.studies.reports import PROXY_OVERLAYS, REPORTS, Overlay, Report
from benchmarks.table1.kinetics400 import KINETICS400, PublishedPoints

OPTIONS = "benchmarks.methods.vared2.options"  # the options as data: the command line imports only this module

register("method", "vared2", "benchmarks.methods.vared2.method:VARED2Method",
         Options=f"{OPTIONS}:VARED2Options", EvalOptions="benchmarks.core.options:NoOptions")
SUBCOMMANDS.register("vared2-cost", Subcommand(
    "vared2-cost", "VA-RED2 on X3D rows: GFLOPs per option per dynamic layer, fvcore vs analytic",
    "benchmarks.methods.vared2.cost", options=f"{OPTIONS}:CostOptions"))
SUBCOMMANDS.register("vared2-study", Subcommand(
    "vared2-study", "X3D-XS with and without VA-RED2 on the synthetic airplanes (CPU): top-1 and per-video GFLOPs on "
    "static, slow and fast videos", "benchmarks.methods.vared2.study", options=f"{OPTIONS}:StudyOptions"))
REPORTS.register("vared2-study", Report("vared2-study", "vared2", "benchmarks.methods.vared2.report:write_outputs"))
PROXY_OVERLAYS.register("vared2-study", Overlay("vared2-study", "vared2",
                                                "benchmarks.methods.vared2.report:draw_study"))
KINETICS400.register("vared2", PublishedPoints("VA-RED2 (seed 004, Table 5)", "arrows",
                                               "benchmarks.methods.vared2.published:kinetics400_points"))
