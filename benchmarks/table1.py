"""Measure every implemented Table 1 row and write the tables and the Pareto figure.

For each row: GFLOPs per video (fvcore, per clip x clips x crops), parameters, and the peak memory of
one video's inference (stream rows fed frame by frame, with state, as they are deployed). Results
are cached in results/measured/ (one JSON per row and device, keyed by the row's spec and a hash of
the model code), so a second run only re-renders. Then results/table1.md, results/table1.csv and
results/k600_flops.png/.svg are written from everything stored.

With ``--launch slurm`` (or ``local``) each row to measure is one task of a submitit job array; results
are collected into results/measured/ as tasks finish, and rows already measured are skipped.

``--dataset airplanes --proxy`` does something else: a CPU-scale proxy that trains and evaluates each
family on the synthetic warm-up airplanes, with its own table and figure (``benchmarks.proxy``).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from functools import partial
from pathlib import Path

import torch
from tabulate import tabulate

from benchmarks import report
from benchmarks.launch import add_launch_arguments, launch_command, options_from_args
from benchmarks.measure import measure_spec
from benchmarks.paths import REPO_ROOT
from benchmarks.specs import RowSpec, parse_rows
from benchmarks.store import command_line, measurement_path, provenance, read_json, write_json_atomic

# Source files whose change invalidates a row's cached measurement, by model family.
COMMON_SOURCES = ("baselines/__init__.py", "benchmarks/measure.py", "benchmarks/specs.py")
FAMILY_SOURCES = {
    "movinet": ("baselines/movinet.py", "baselines/movinet_specs.json"),
    "mobilenet_v3": ("baselines/mobilenet.py", "baselines/tsm.py"),
    "x3d": ("baselines/x3d.py",),
}
GRW_SOURCES = ("grw/*.py",)


def model_code_hash(spec: RowSpec) -> str:
    """Hash of the code that builds and measures this row's model."""
    patterns = COMMON_SOURCES + FAMILY_SOURCES[spec.family] + (GRW_SOURCES if spec.grw else ())
    digest = hashlib.sha256()
    for pattern in patterns:
        for path in sorted(REPO_ROOT.glob(pattern)):
            digest.update(path.relative_to(REPO_ROOT).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_key(spec: RowSpec, device: str) -> str:
    return f"{spec.key()}-{model_code_hash(spec)}-{device}"


def measure_row(spec: RowSpec, device: str, command: str | None = None) -> dict:
    """Build the row's model and measure it; returns the JSON record stored in results/measured/.

    ``command`` is the user's command line when this runs as a submitit task (whose own command
    line is submitit's job script)."""
    started = time.perf_counter()
    numbers = measure_spec(spec, device)
    return {
        "row": spec.row,
        "name": spec.name,
        "model": spec.model,
        "grw": spec.grw is not None,
        "input": {"res": spec.res, "frames": spec.frames, "clips": spec.clips, "crops": spec.crops},
        **numbers,
        "device": device,
        "key": cache_key(spec, device),
        "seconds": round(time.perf_counter() - started, 2),
        **provenance(device),
        **({"command": command} if command else {}),
    }


def cached_measurement(spec: RowSpec, device: str) -> dict | None:
    path = measurement_path(spec.row, device)
    if not path.exists():
        return None
    record = read_json(path)
    return record if record.get("key") == cache_key(spec, device) else None


def rows_to_measure(specs: list[RowSpec], device: str, refresh: bool) -> list[RowSpec]:
    """The rows without a valid cached measurement (all of them with ``refresh``)."""
    return [spec for spec in specs if refresh or cached_measurement(spec, device) is None]


def store_measurement(name: str, record: dict) -> None:
    """Called as each row's task finishes (in this process, or collected from a SLURM task)."""
    write_json_atomic(measurement_path(record["row"], record["device"]), record)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", help="comma-separated row numbers or names (default: every implemented row)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="where to measure peak memory (default: cuda when available, else cpu)")
    parser.add_argument("--refresh", action="store_true", help="re-measure even when a cached result matches")
    parser.add_argument("--dataset", choices=("kinetics600", "airplanes"), default="kinetics600",
                        help="airplanes (with --proxy): the CPU proxy on synthetic data instead (default: %(default)s)")
    parser.add_argument("--proxy", action="store_true",
                        help="train and evaluate each family at tiny scale on --dataset airplanes (~25 min on CPU); "
                        "writes results/proxy_table1.md and results/proxy_flops.png (benchmarks.proxy)")
    add_launch_arguments(parser)


def main(args: argparse.Namespace) -> int:
    if args.proxy or args.dataset != "kinetics600":
        if not (args.proxy and args.dataset == "airplanes"):
            print("table1: error: the proxy is --dataset airplanes --proxy; Kinetics-600 rows are measured, "
                  "not trained, here", file=sys.stderr)
            return 2
        from benchmarks import proxy

        return proxy.main(args)
    try:
        specs = parse_rows(args.rows)
        options = options_from_args(args)
    except ValueError as error:
        print(f"table1: error: {error}", file=sys.stderr)
        return 2
    device = args.device or default_device()
    if device == "cuda" and not torch.cuda.is_available() and args.launch == "none":
        print("table1: error: --device cuda requested but CUDA is not available", file=sys.stderr)
        return 2
    todo = rows_to_measure(specs, device, args.refresh)
    if len(todo) < len(specs):
        print(f"{len(specs) - len(todo)} row(s) already measured with this code (cached; --refresh re-measures)")
    status = launch_command("table1", partial(measure_row, device=device, command=command_line()), todo,
                            [f"row{spec.row:02d}" for spec in todo], args, options,
                            on_result=store_measurement, job_name="grw-table1")
    if status == 2 or args.no_wait:
        return status
    table = report.build_table()
    print(tabulate(report.display_table(table), headers="keys", tablefmt="github", showindex=False))
    written = report.write_tables(table) + report.plot_pareto(table)
    print("wrote " + ", ".join(str(_relative(path)) for path in written))
    return status


def _relative(path: Path) -> Path:
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path
