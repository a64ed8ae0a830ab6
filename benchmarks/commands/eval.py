"""Evaluate trained checkpoints and store the runs (``python -m benchmarks.run eval``).

Each checkpoint is evaluated with its row's protocol (single clip, multi-view, or streaming) at the
input it was trained with; the run goes to ``runs/`` of the results store with its provenance
(``benchmarks.engine.evaluate``). Several rows: ``--row 1,6 --checkpoint OUT/row{row}/last.pt`` evaluates
each row's checkpoint; ``--launch slurm`` runs them as a job array through submitit, storing the runs
in this process's results store. A checkpoint with a stored run on the same data and split (same
sha256) is skipped unless ``--refresh``.

Public weights: ``--weights NAME`` instead of ``--checkpoint`` evaluates a catalogued checkpoint
(``benchmarks.engine.public_weights``) from the weights cache (``--download`` fetches it first), converted for the
row into ``<cache>/imported/NAME.row<N>.pt``; the stored run carries the checkpoint's ``provenance``
as ``weights_source`` (name, URL, source sha256, converter), labelled "public weights, evaluated here".

``--protocol authors`` (GRW rows 1, 6, 12, 15 only) evaluates as the GRW authors' scripts do
(``benchmarks.table1.protocols``): every N-frame clip of every video is one sample, square resize, top-1
over clips; the run records ``protocol``.

A method may evaluate its checkpoints its own way, with flags of its own (``Method.EvalOptions``). A3D
checkpoints (``train --method a3d``): ``--sweep`` evaluates every configuration of the run's range
with BatchNorm recalibrated per configuration and stores the configuration-budget table
(``benchmarks.methods.a3d.sweep``; ``--configs`` and ``--gflops LO:HI`` sweep a subset); ``--config WxSxT``
evaluates one configuration, ``--budget GFLOPS`` the one the latest complete stored sweep chose for that budget,
each stored as an eval run whose ``setting`` is the configuration (a stored run counts for a checkpoint only at
the same setting).
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from benchmarks.commands.launching import (
    add_launch_arguments,
    check_launch_arguments,
    launch_command,
    options_from_args,
)
from benchmarks.commands.options import add_component_options, component_flags
from benchmarks.commands.train import check_data
from benchmarks.core.cli import UsageError, check_writable, default, from_args
from benchmarks.core.options import from_dict
from benchmarks.core.store import DEFAULT_SETTING, Store
from benchmarks.engine.config import EvalConfig
from benchmarks.engine.method import METHODS
from benchmarks.table1.clip_protocol import OVERRIDABLE, PROTOCOLS, authors_protocol
from benchmarks.table1.specs import AUTHORS_EVALUATION

# The evaluation itself (torch) is imported where it is used: --help and argument errors come back without it.

AUTHORS_ROWS = ", ".join(map(str, sorted(AUTHORS_EVALUATION)))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--row", required=True,
                        help="Table 1 row number or name the checkpoint is for; several, comma-separated, are "
                        "evaluated one after another (or as an array with --launch)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint",
                        help="a checkpoint written by `train` (last.pt or best.pt); {row} in it is replaced by "
                        "the row number, which several rows need (e.g. OUT/row{row}/last.pt)")
    source.add_argument("--weights", dest="public_weights", metavar="NAME",
                        help="public weights of the catalogue (`weights list`), from the weights cache, converted "
                        "for the row; the run is labelled 'public weights, evaluated here'")
    parser.add_argument("--data", required=True, help="dataset root: ROOT/<split>/<class>/<video>.mp4")
    parser.add_argument("--split", default=default(EvalConfig, "split"), help="(default: %(default)s)")
    parser.add_argument("--annotations", help="directory of <split>.csv or one Kinetics CSV (default DATA/annotations)")
    parser.add_argument("--weights-variant", choices=("ema", "raw"),
                        help="which weights of the checkpoint (default: ema when the checkpoint has it)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default=default(EvalConfig, "protocol"),
                        help="suite: the row's own per-video protocol; authors: the GRW authors' evaluation, every "
                        f"N-frame clip one sample, square resize, top-1 over clips (rows {AUTHORS_ROWS} only; "
                        "default: %(default)s)")
    parser.add_argument("--protocol-override", action="append", type=_override, metavar="KEY=VALUE",
                        help=f"change one value of the authors' protocol ({', '.join(OVERRIDABLE)}), for tests and "
                        "smoke runs; recorded as a deviation. Repeatable")
    group = parser.add_argument_group("public weights (--weights NAME)")
    group.add_argument("--download", action="store_true", help="fetch NAME into the cache first when it is not there")
    group.add_argument("--classes", help="NAME's class names in its order, one per line (default: the class folders "
                       "of DATA, sorted, which must be all of NAME's classes)")
    group.add_argument("--cache-dir",
                       help="weights cache (default: $GRW_BENCH_WEIGHTS, else ~/.cache/grw-bench/weights)")
    parser.add_argument("--method", choices=METHODS.names(),
                        help="the method the checkpoint was trained with, checked (default: read from the checkpoint; "
                             "vared2 stores each video's GFLOPs and options, a3d takes --sweep/--config/--budget)")
    parser.add_argument("--setting", help="the training method's evaluation setting (default: its first)")
    parser.add_argument("--chunk", type=int, default=default(EvalConfig, "chunk"),
                        help="frames per call in streaming evaluation (default: %(default)s)")
    parser.add_argument("--compare-whole-clip", action="store_true",
                        help="stream rows: also run the whole clip at once and report the difference")
    parser.add_argument("--dataset-name", help="name stored with the run (default: DATA/dataset.json, see --help)")
    parser.add_argument("--batch-size", type=int, default=default(EvalConfig, "batch_size"),
                        help="(default: %(default)s)")
    parser.add_argument("--num-workers", type=int, default=default(EvalConfig, "num_workers"),
                        help="(default: %(default)s)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="(default: cuda when available, else cpu)")
    parser.add_argument("--index-cache", help="folder for the video index cache (default: next to the data)")
    parser.add_argument("--refresh", action="store_true",
                        help="evaluate again checkpoints with a stored run on this data and split (skipped otherwise)")
    add_component_options(parser, METHODS, "method", option_class="EvalOptions")
    add_launch_arguments(parser)


def _override(text: str) -> tuple[str, float]:
    key, sep, value = text.partition("=")
    try:
        return key.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected KEY=NUMBER, got {text!r}") from None


def configs_from_args(args: argparse.Namespace) -> list[EvalConfig]:
    """One config per row of ``--row``, each with its checkpoint (``{row}`` in ``--checkpoint`` filled
    in), each checked: the checkpoint readable and trained for that row, the data present."""
    from benchmarks.engine.runs import parse_row_list

    try:
        specs = parse_row_list(args.row)
    except ValueError as error:
        raise UsageError(str(error)) from error
    if args.checkpoint is not None and len(specs) > 1 and "{row}" not in args.checkpoint:
        raise UsageError(f"several rows need {{row}} in --checkpoint (e.g. OUT/row{{row}}/last.pt), "
                         f"got {args.checkpoint!r}")
    if args.protocol == "authors":
        others = [spec.row for spec in specs if spec.row not in AUTHORS_EVALUATION]
        if others:
            raise UsageError(f"--protocol authors is the GRW authors' evaluation of their models, rows {AUTHORS_ROWS}; "
                             f"row(s) {others} have none")
    overrides = dict(args.protocol_override or [])
    try:
        for spec in specs if args.protocol == "authors" else ():
            authors_protocol(spec.row, overrides)  # checks the overrides
    except ValueError as error:
        raise UsageError(str(error)) from error
    checkpoints = {spec.row: public_checkpoint(args, spec.row) if args.public_weights
                   else args.checkpoint.replace("{row}", str(spec.row)) for spec in specs}
    configs = [from_args(EvalConfig, args, row=spec.row, checkpoint=checkpoints[spec.row], protocol_overrides=overrides)
               for spec in specs]
    known = {config.row: check_checkpoint(config, args.method) for config in configs}
    check_data(args.data, args.split)
    for config in configs:
        check_classes_overlap(config, known[config.row])
    return configs


def check_classes_overlap(config: EvalConfig, classes: tuple[str, ...]) -> None:
    """The data's class folders must share classes with the checkpoint's (``classes``): evaluating on data of
    other classes is a usage error, not "no readable video" after indexing. (With annotation files the
    labels are checked when indexing, which counts the videos of unknown classes.)"""
    split_dir = Path(config.data) / config.split
    folders = {p.name for p in split_dir.iterdir() if p.is_dir()} if split_dir.is_dir() else set()
    known = set(classes)
    if folders and known and not folders & known:
        raise UsageError(f"{config.checkpoint} knows {len(known)} classes and {split_dir} has {len(folders)} class "
                         f"folders, none of them the same (e.g. {sorted(known)[0]!r} vs {sorted(folders)[0]!r}): "
                         "evaluate on data of the checkpoint's classes")


def public_checkpoint(args: argparse.Namespace, row: int) -> str:
    """``--weights NAME`` converted for ``row`` into ``<cache>/imported/NAME.row<N>.pt`` (fetched first
    with ``--download``), with the class names of ``--classes`` or of the data's class folders."""
    from benchmarks.engine.public_weights import WeightsError, cache_dir, cached_file, download, import_checkpoint

    name = args.public_weights
    out = cache_dir(args.cache_dir) / "imported" / f"{name}.row{row}.pt"
    try:
        if args.download:
            download(name, args.cache_dir)
        import_checkpoint(name, cached_file(name, args.cache_dir), out, row=row, classes_file=args.classes,
                          data=None if args.classes else args.data, folder=args.cache_dir)
    except WeightsError as error:
        raise UsageError(str(error)) from error
    return str(out)


def check_checkpoint(config: EvalConfig, method: str | None = None) -> tuple[str, ...]:
    """Fail before launching on a checkpoint that is missing, unreadable, for another row or another
    ``method`` (when given), or imported without class names; its class names."""
    from benchmarks.core.checkpoint import CheckpointError, load_checkpoint
    from benchmarks.engine.public_weights import WeightsError, check_classes

    try:
        checkpoint = load_checkpoint(config.checkpoint)
        check_classes(checkpoint, config.checkpoint)
    except (CheckpointError, WeightsError) as error:
        raise UsageError(str(error)) from error
    if checkpoint["row"] != config.row:
        raise UsageError(f"{config.checkpoint} was trained for row {checkpoint['row']}, not row {config.row}")
    trained_with = checkpoint.get("config", {}).get("method", "standard")
    if method is not None and trained_with != method:
        raise UsageError(f"{config.checkpoint} was trained with --method {trained_with}, not {method}")
    return tuple(checkpoint.get("classes", ()))


def stored_run(config: EvalConfig, store: Store) -> dict | None:
    """The stored run of this checkpoint (by sha256) on the same data and split under the same protocol, at
    the same setting of its method (an A3D configuration, ``eval --config``, is not the model as trained)."""
    from benchmarks.core.checkpoint import file_sha256

    sha256 = file_sha256(config.checkpoint)
    data_root = str(Path(config.data).resolve())
    return next((run for run in store.load_runs(with_files=True) if run["checkpoint_sha256"] == sha256
                 and run["split"] == config.split and run.get("data_root") == data_root
                 and run.get("protocol", "suite") == config.protocol
                 and run.get("setting", DEFAULT_SETTING) == (config.setting or DEFAULT_SETTING)), None)


def print_run(name: str, record: dict) -> None:
    """A run's result in lines of at most 120 columns, ending with its id and file."""
    k = record.get("top5_k", 5)
    lines = [f"row {record['row']} {record['name']} on {record['dataset']} {record['split']}: top-1 "
             f"{record['top1']:.2f}, top-{k} {record['top5']:.2f}"]
    if record.get("protocol") == "authors":
        clips = record["clips"]
        lines.append(f"authors' protocol: per clip; {clips['evaluated']} clips from {clips['videos']} videos, "
                     f"{clips['skipped']} clips skipped, {clips['videos_without_clip']} videos without a full clip; "
                     f"top-1 per video {record['top1_per_video']:.2f}")
    else:
        lines.append(f"{record['videos_evaluated']} videos evaluated, {record['videos_skipped_total']} skipped")
    unknown = record.get("videos_skipped", {}).get("unknown_class", 0)
    if unknown:
        lines.append(f"{unknown} video(s) of classes the checkpoint does not know were not evaluated "
                     f"({', '.join(record.get('unknown_classes', [])[:5])})")
    lines.append(f"run {record['run_id']}: {record['path']}")
    for line in lines:
        print("\n".join(textwrap.wrap(line, 120, subsequent_indent="    ")))


def method_evaluation(args: argparse.Namespace, configs: list[EvalConfig]) -> int | None:
    """A method's own evaluation when its flags were given (A3D: ``--sweep``, ``--config``, ``--budget``),
    else None. It runs here, for one checkpoint trained with that method."""
    from tabulate import tabulate

    from benchmarks.core.checkpoint import load_checkpoint

    trained_with = {load_checkpoint(config.checkpoint).get("config", {}).get("method", "standard")
                    for config in configs}
    method_name = args.method or (next(iter(trained_with)) if len(trained_with) == 1 else None)
    given = component_flags(args, METHODS, method_name, "method", option_class="EvalOptions",
                            flag_of_choice="a checkpoint trained with --method")
    if not given:
        return None
    if len(configs) != 1:
        raise UsageError(f"{', '.join('--' + name.replace('_', '-') for name in given)} take one row and checkpoint")
    if args.launch != "none":
        raise UsageError(f"{', '.join('--' + name.replace('_', '-') for name in given)} run here; drop --launch")
    method = METHODS.get(method_name)()
    try:
        options = from_dict(method.EvalOptions, given, f"method {method_name}")
        record = method.evaluate(options, configs[0], args.store)
    except ValueError as error:
        raise UsageError(str(error)) from error
    print(tabulate(record["table"], headers="keys", tablefmt="github", floatfmt=".4g"))
    print(f"wrote {record['path']}")
    return 0


def main(args: argparse.Namespace) -> int:
    from benchmarks.engine.tasks import EvalTask

    check_launch_arguments(args)
    check_writable(args.store.root, "--results")
    configs = configs_from_args(args)
    own = method_evaluation(args, configs)
    if own is not None:
        return own
    options = options_from_args(args)
    stored = {config.row: None if args.refresh else stored_run(config, args.store) for config in configs}
    todo = [config for config in configs if stored[config.row] is None]
    for config in configs:
        if stored[config.row] is not None:
            done = stored[config.row]
            print(textwrap.fill(f"row {config.row}: {config.checkpoint} already evaluated on this data and split: "
                                f"run {done['run_id']} of {done['date']}, {done['file']} (--refresh evaluates it "
                                "again)", 120, subsequent_indent="    "))
    task = EvalTask(results=str(args.store.root.resolve()))
    return launch_command(task, todo, [f"row{config.row}" for config in todo], args, options,
                          on_result=print_run, job_name="grw-eval")
