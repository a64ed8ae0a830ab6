"""Time every implemented Table 1 row on this machine (``python -m benchmarks.run speed``).

For each row: latency per video at the row's input (one clip timed, times its views), throughput in
videos per second per ``--batch-sizes``, and for stream rows the latency of one frame and the bytes of the
state carried between frames. Median and interquartile range over the timed calls after warm-up
(``--warmup``, then ``--repeats`` calls or ``--max-seconds``, at least 3), torch's threads pinned to each of
``--threads`` in turn. The load average is read before and after; a run made while the load exceeded the
usable cores is marked in the report (``--refuse-loaded`` does not store it).

Each setting (device, threads, backend, layout, AMP) is one stored run, ``runs/speed/speed-<time>.json``,
with its provenance (CPU model, torch and oneDNN versions); ``results/speed.md`` and Table 1's latency
column are rendered from the stored runs (``figures`` re-renders them). Times from other machines do not
transfer: compare rows within one run.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial

from benchmarks.commands.options import positive_ints
from benchmarks.core.cli import UsageError
from benchmarks.core.store import provenance, write_json
from benchmarks.table1.specs import implemented_specs, parse_rows
from benchmarks.table1.speed_config import BACKENDS, DEVICES, SpeedConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SpeedConfig()
    parser.add_argument("--rows", help="comma-separated row numbers or names (default: every implemented row)")
    parser.add_argument("--device", choices=DEVICES, default=defaults.device, help="(default: %(default)s)")
    parser.add_argument("--threads", type=positive_ints, default=(defaults.threads,), metavar="N1,N2",
                        help="torch intra-op threads; one run per value (default: 1)")
    parser.add_argument("--batch-sizes", type=positive_ints, default=defaults.batch_sizes, metavar="B1,B2",
                        help="throughput at these batch sizes (default: 1)")
    parser.add_argument("--backend", choices=BACKENDS, default=defaults.backend,
                        help="eager, or torch.compile (default: %(default)s)")
    parser.add_argument("--channels-last", action="store_true", help="convolutions and clips in channels-last memory")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--fold-bn", action="store_true",
                        help="the suite's inference path: BatchNorm folded into the convolutions, refused unless the "
                             "logits equal the unfolded model's within 1e-4")
    parser.add_argument("--warmup", type=int, default=defaults.warmup, help="untimed calls (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=defaults.repeats,
                        help="timed calls per quantity, at most (default: %(default)s)")
    parser.add_argument("--max-seconds", type=float, default=defaults.max_seconds,
                        help="stop timing a quantity after this long, once 3 calls are timed (default: %(default)s)")
    parser.add_argument("--profile", action="store_true",
                        help="also store where one call's time goes: the top operators of torch.profiler, per row "
                             "(stream rows: one frame) and, with --peers, for ours and the peer")
    parser.add_argument("--peers", action="store_true",
                        help="instead of the rows, time this suite's models against the public implementations of the "
                             "same architectures (MoViNet-pytorch, PyTorchVideo X3D, torchvision MobileNetV3) on the "
                             "same input and threads, alternating, and report ours/peer time ratios")
    parser.add_argument("--refuse-loaded", action="store_true",
                        help="do not store a run made while the load average exceeded the usable cores")


def configs_from_args(args: argparse.Namespace) -> list[SpeedConfig]:
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA device is available here")
    try:
        return [SpeedConfig(device=args.device, threads=threads, batch_sizes=args.batch_sizes, backend=args.backend,
                            channels_last=args.channels_last, amp=args.amp, fold_bn=args.fold_bn,
                            profile=args.profile, warmup=args.warmup,
                            repeats=args.repeats, min_repeats=min(3, args.repeats), max_seconds=args.max_seconds)
                for threads in args.threads]
    except ValueError as error:
        raise UsageError(str(error)) from error


def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from benchmarks.table1 import deploy, report, speed_report
    from benchmarks.table1.peers import PEERS
    from benchmarks.table1.speed import peers_run, speed_run

    try:
        specs = parse_rows(args.rows) if args.rows else implemented_specs()
    except ValueError as error:
        raise UsageError(str(error)) from error
    missing = [f"{spec.row} ({spec.name})" for spec in specs if not spec.implemented]
    if missing:
        raise UsageError(f"rows not implemented, nothing to time: {', '.join(missing)}")
    configs = configs_from_args(args)
    status = 0
    for config in configs:
        total = len(PEERS) if args.peers else len(specs)
        with tqdm(total=total, desc=f"speed ({config.threads} threads)", unit="model", file=sys.stderr) as bar:
            measure = peers_run if args.peers else partial(speed_run, specs)
            try:
                run = measure(config, on_row=lambda record, bar=bar: bar.update())
            except deploy.FoldError as error:
                raise UsageError(f"--fold-bn refused: {error}") from error
        run.update(provenance(config.device))
        if run["load"]["overloaded"] and args.refuse_loaded:
            print(f"not stored: load {run['load']['before']:.2f} -> {run['load']['after']:.2f} exceeded the "
                  f"{run['load']['cores']} usable cores", file=sys.stderr)
            status = 1
            continue
        path = write_json(args.store.new_run_path("peers" if args.peers else "speed", speed_report.SUBFOLDER), run)
        print(f"wrote {path}")
    for path in speed_report.write_report(args.store) + report.write_all(args.store):
        print(f"wrote {path}")
    return status
