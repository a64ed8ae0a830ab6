"""Command-line entry point: ``python -m benchmarks.run <subcommand> [options]``.

:data:`SUBCOMMANDS` lists the suite's own commands, each a module of ``benchmarks.commands`` with
``add_arguments(parser)`` and ``main(args) -> int``; the method folders add theirs to
``benchmarks.core.options.SUBCOMMANDS`` (listed after these). ``benchmarks.commands.parser`` builds the
command line from both, importing only the selected subcommand's module.
"""

from __future__ import annotations

import argparse
import sys

from benchmarks.commands import parser

# name -> (module, one-line help); the method subcommands (a3d-cost, a3d-study, multigrid-study,
# vared2-cost, vared2-study) are registered by their folders under benchmarks/methods/
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "table1": ("benchmarks.commands.table1",
               "measure every implemented Table 1 row and write tables + Pareto figure"),
    "proxy": ("benchmarks.commands.proxy",
              "CPU proxy of Table 1: train and evaluate each family on the synthetic airplanes"),
    "airplanes": ("benchmarks.commands.airplanes",
                  "render the synthetic warm-up airplanes (yaw/pitch/roll) as mp4 files"),
    "figures": ("benchmarks.commands.figures",
                "regenerate tables and figures from stored results only (no models built)"),
    "compare": ("benchmarks.commands.compare",
                "measured vs published GFLOPs (and top-1); exit 1 when out of tolerance"),
    "zoo": ("benchmarks.commands.zoo",
            "every model of the zoo: measured vs published GFLOPs and parameters"),
    "memory": ("benchmarks.commands.memory",
               "peak memory vs number of frames, base vs stream MoViNet"),
    "train": ("benchmarks.commands.train",
              "train Table 1 rows on Kinetics-format video (resumable, DDP, SLURM)"),
    "eval": ("benchmarks.commands.eval",
             "evaluate a trained checkpoint with the row's protocol; store the run"),
    "runs": ("benchmarks.commands.runs",
             "list, filter and show the stored accuracy runs (ids, files, top-1, weights, commits)"),
    "weights": ("benchmarks.commands.weights",
                "public checkpoints: list, download (resumable, sha256), import"),
    "speed": ("benchmarks.commands.speed",
              "time every implemented row on this machine: latency per video and frame, throughput, stream state"),
    "export": ("benchmarks.commands.export",
               "a row's model as an ONNX graph (stream rows: one frame step with explicit state), verified in "
               "onnxruntime"),
    "warmup": ("benchmarks.commands.warmup",
               "warm-up airplanes: the same model with and without GRW, embeddings figure"),
    "grw-loss-speed": ("benchmarks.commands.grw_loss_speed",
                       "GRW-smoothing loss on CPU: forward+backward time, Gram-matrix vs gather reference"),
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The CLI parser; only the ``selected`` subcommand's module is imported."""
    return parser.build_parser(SUBCOMMANDS, selected)


def main(argv: list[str] | None = None) -> int:
    return parser.main(SUBCOMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
