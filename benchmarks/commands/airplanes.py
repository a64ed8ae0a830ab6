"""``airplanes``: the command line of :mod:`benchmarks.data.airplanes` (whose docstring is its ``--help``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.core.cli import UsageError, check_writable, docstring_of

DESCRIPTION = docstring_of("benchmarks.data.airplanes")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="dataset root (created if missing)")
    parser.add_argument("--train", type=int, default=1000, metavar="N", help="training videos (default: 1000)")
    parser.add_argument("--val", type=int, default=100, metavar="N", help="validation videos (default: 100)")
    parser.add_argument("--test", type=int, default=100, metavar="N", help="test videos (default: 100)")
    parser.add_argument("--frames", type=int, default=16, metavar="T", help="frames per video (default: 16)")
    parser.add_argument(
        "--size", type=int, default=112, metavar="PX",
        help="frame height = width, even, >= 8; decord cannot read 16, 24, 48 or 72 (default: 112)",
    )
    parser.add_argument("--fps", type=int, default=8, metavar="F", help="frame rate of the mp4 files (default: 8)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="dataset seed (default: 0)")
    parser.add_argument("--speed-splits", type=int, default=0, metavar="N",
                        help="also write N videos each of test_static, test_slow and test_fast: the test split's "
                             "videos at one speed range each (for VA-RED2's per-video cost; default: none)")


# Frame sides decord (FFmpeg's H.264 decoder behind it) cannot read back from the files written here.
UNREADABLE_SIDES = (16, 24, 48, 72)


def check_arguments(args: argparse.Namespace) -> None:
    """Every bad value is a one-line usage error before anything is written."""
    for flag in ("train", "val", "test", "speed_splits"):
        if getattr(args, flag) < 0:
            raise UsageError(f"--{flag.replace('_', '-')} must be >= 0, got {getattr(args, flag)}")
    for flag in ("frames", "fps"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    if args.size < 8 or args.size % 2:
        raise UsageError(f"--size must be an even number of pixels >= 8 (H.264 needs even sides), got {args.size}")
    if args.size in UNREADABLE_SIDES:
        readable = next(side for side in range(args.size + 2, args.size + 20, 2) if side not in UNREADABLE_SIDES)
        raise UsageError(f"--size {args.size}: decord cannot read videos of that side back "
                         f"({', '.join(map(str, UNREADABLE_SIDES))}); choose another, e.g. {readable}")
    check_writable(args.out, "--out")


def main(args: argparse.Namespace) -> int:
    from benchmarks.data.airplanes import SPEED_SPLITS, generate, generate_speed_splits

    check_arguments(args)
    root = generate(args.out, args.train, args.val, args.test, args.frames, args.size, args.fps, args.seed)
    counts = json.loads((root / "dataset.json").read_text())["videos"]
    if args.speed_splits:
        generate_speed_splits(root, args.speed_splits, args.frames, args.size, args.fps, args.seed)
        counts.update(dict.fromkeys(SPEED_SPLITS, args.speed_splits))
    print(f"warm-up airplanes dataset at {root}: " + ", ".join(f"{n} {split}" for split, n in counts.items()))
    return 0
