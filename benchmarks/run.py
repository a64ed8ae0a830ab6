"""Command-line entry point: ``python -m benchmarks.run <subcommand> [options]``.

Each subcommand lives in its own module, which provides ``add_arguments(parser)`` and
``main(args) -> int``; this file only wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from benchmarks.store import set_cli_command

# name -> (module, one-line help); each module provides add_arguments(parser) and main(args).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "table1": ("benchmarks.table1", "measure every implemented Table 1 row and write tables + Pareto figure"),
    "airplanes": ("benchmarks.airplanes", "render the synthetic warm-up airplanes dataset (yaw/pitch/roll) as mp4 files"),
    "figures": ("benchmarks.figures", "regenerate tables and figures from stored results only (no models built)"),
    "compare": ("benchmarks.compare", "measured vs published GFLOPs (and top-1); exit 1 when out of tolerance"),
    "zoo": ("benchmarks.zoo", "every model of the zoo: measured vs published GFLOPs and parameters"),
    "memory": ("benchmarks.memory", "peak memory vs number of frames, base vs stream MoViNet"),
    "train": ("benchmarks.train", "train a Table 1 row on Kinetics-format video (resumable, DDP via torchrun)"),
    "eval": ("benchmarks.evaluate", "evaluate a trained checkpoint with the row's protocol; store the run in results/runs/"),
    "warmup": ("benchmarks.warmup", "warm-up airplanes experiment: the same model with and without GRW, embeddings figure"),
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
            p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    selected = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(selected).parse_args(argv)
    set_cli_command(argv)
    return int(args._module.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
