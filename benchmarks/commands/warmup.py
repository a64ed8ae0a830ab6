"""``warmup``: the command line of :mod:`benchmarks.studies.warmup` (its docstring's first part is ``--help``)."""

from __future__ import annotations

import argparse

from benchmarks.core.cli import docstring_of, from_args
from benchmarks.studies.warmup_config import VIDEO_FRAMES, WarmupConfig

# --help gives what the experiment is; its measured results and ablations stay in the module docstring
# and in docs/warmup-and-proxy.md
DESCRIPTION = (docstring_of("benchmarks.studies.warmup").split("\nWhy not Table 1 row 1")[0].rstrip()
               + "\n\nMeasured results and the ablations behind the design: docs/warmup-and-proxy.md and the "
               "docstring of benchmarks/studies/warmup.py.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = WarmupConfig()
    parser.add_argument("--data", default=defaults.data, help="airplanes dataset root, rendered if needed "
                        "(default: runs_local/airplanes)")
    parser.add_argument("--train", dest="train_videos", type=int, default=defaults.train_videos, metavar="N",
                        help="training videos (default: %(default)s)")
    parser.add_argument("--val", dest="val_videos", type=int, default=defaults.val_videos, metavar="N",
                        help="validation videos, rendered for choosing settings (default: %(default)s)")
    parser.add_argument("--test", dest="test_videos", type=int, default=defaults.test_videos, metavar="N",
                        help="test videos (default: %(default)s)")
    parser.add_argument("--size", type=int, default=defaults.size, metavar="PX",
                        help=f"frame size, even; decord cannot read 16, 24, 48 or 72 (default: {defaults.size})")
    parser.add_argument("--frames", type=int, default=defaults.frames, metavar="T",
                        help=f"clip length, at most {VIDEO_FRAMES} (default: {defaults.frames})")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, metavar="E", help="(default: %(default)s)")
    parser.add_argument("--seeds", type=int, default=defaults.seeds, metavar="K",
                        help="seeds 0..K-1 per arm (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=defaults.lr, help="(default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="(default: %(default)s)")
    parser.add_argument("--grw-weight", type=float, default=defaults.grw_weight, help="(default: %(default)s)")
    parser.add_argument("--grw-window", type=int, default=defaults.grw_window,
                        help="frames per GRW window, at most --frames (default: %(default)s)")
    parser.add_argument("--processes", type=int, default=defaults.processes,
                        help="runs in parallel, one torch thread each (default: %(default)s)")


def main(args: argparse.Namespace) -> int:
    from benchmarks.studies.warmup import run_warmup, summary_table

    config = from_args(WarmupConfig, args)
    summary = run_warmup(config, args.store)
    print(summary_table(summary))
    print(f"wrote {summary['figure']['path']} and {summary['path']} ({summary['wall_time_s']:.0f} s)")
    return 0
