"""Command-line entry point: ``python -m benchmarks.run <subcommand> [options]``.

Each subcommand's module provides ``add_arguments(parser)`` and ``main(args) -> int``; nothing else in
the suite imports those. This file wires them together, gives every command ``--results DIR`` (the
results store, ``args.store``), and turns a ``UsageError`` into one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from benchmarks.core.cli import UsageError
from benchmarks.core.paths import RESULTS_ENV
from benchmarks.core.store import Store, set_cli_command

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "table1": ("benchmarks.commands.table1",
                "measure every implemented Table 1 row and write tables + Pareto figure"),
    "proxy": ("benchmarks.studies.proxy",
               "CPU proxy of Table 1: train and evaluate each family on the synthetic airplanes"),
    "airplanes": ("benchmarks.data.airplanes",
                   "render the synthetic warm-up airplanes (yaw/pitch/roll) as mp4 files"),
    "figures": ("benchmarks.figures",
                 "regenerate tables and figures from stored results only (no models built)"),
    "compare": ("benchmarks.table1.compare",
                 "measured vs published GFLOPs (and top-1); exit 1 when out of tolerance"),
    "zoo": ("benchmarks.table1.zoo",
             "every model of the zoo: measured vs published GFLOPs and parameters"),
    "memory": ("benchmarks.table1.memory",
                "peak memory vs number of frames, base vs stream MoViNet"),
    "train": ("benchmarks.commands.train",
               "train Table 1 rows on Kinetics-format video (resumable, DDP, SLURM)"),
    "eval": ("benchmarks.commands.eval",
              "evaluate a trained checkpoint with the row's protocol; store the run"),
    "weights": ("benchmarks.commands.weights",
                 "public checkpoints: list, download (resumable, sha256), import"),
    "multigrid": ("benchmarks.methods.multigrid.study",
                   "standard vs multigrid training on the synthetic airplanes (CPU): wall-clock, GFLOPs, top-1"),
    "a3d-cost": ("benchmarks.methods.a3d.cost",
                  "A3D on an X3D row: GFLOPs and params of every configuration, memory, training step vs plain X3D"),
    "a3d-study": ("benchmarks.methods.a3d.study",
                   "one A3D X3D-XS vs X3D-XS trained at matching inputs on the synthetic airplanes (CPU)"),
    "vared2-cost": ("benchmarks.methods.vared2.cost",
                     "VA-RED2 on X3D rows: GFLOPs per option per dynamic layer, fvcore vs analytic"),
    "vared2-study": ("benchmarks.methods.vared2.study",
                      "X3D-XS with and without VA-RED2 on the synthetic airplanes (CPU): top-1 and per-video GFLOPs on "
                      "static, slow and fast videos"),
    "speed": ("benchmarks.commands.speed",
              "time every implemented row on this machine: latency per video and frame, throughput, stream state"),
    "export": ("benchmarks.commands.export",
               "export a row's model to ONNX (stream rows: a frame step with its state), checked in onnxruntime"),
    "warmup": ("benchmarks.studies.warmup",
                "warm-up airplanes: the same model with and without GRW, embeddings figure"),
}


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (exit status 2), no usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The CLI parser. Only the ``selected`` subcommand's module is imported (and its options added),
    so ``--help`` and errors come back without loading torch."""
    parser = _Parser(
        prog="python -m benchmarks.run",
        description="grw-bench: reproduce and compare Table 1 of 'Smooth Regularization for "
        "Efficient Video Recognition' (GRW-smoothing, NeurIPS 2025).",
    )
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=_Parser)
    sub.required = True
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            module = importlib.import_module(module_name)
            p.description = (module.__doc__ or help_text).strip()
            p.formatter_class = argparse.RawDescriptionHelpFormatter
            module.add_arguments(p)
            p.add_argument("--results", metavar="DIR",
                           help=f"results directory to read and write (default: ${RESULTS_ENV}, else results/ "
                           "of the checkout)")
            p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    selected = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(selected).parse_args(argv)
    args.store = Store(args.results) if args.results else Store.default()
    set_cli_command(argv)
    try:
        return int(args._module.main(args) or 0)
    except UsageError as error:
        print(f"{args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
