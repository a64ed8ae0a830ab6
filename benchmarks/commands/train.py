"""Train Table 1 rows on Kinetics-format video (``python -m benchmarks.run train``).

The row's spec gives the model, its GRW settings and its input (frames, fps, resolution,
normalisation); ``--frames/--res/--fps`` override the input for small experiments and are recorded
as deviations. GRW: MoViNet GRW rows train their head with the GRW loss (``--no-grw`` keeps the head
and drops the loss); MobileNetV3/TSM rows get intermediate GRW taps with ``--grw``. ``--method``
chooses the training method (``benchmarks.engine.method.METHODS``: ``standard``, or ``a3d`` for an X3D row:
A3D, seed 002, one adaptive network over width x side x frames, ``--a3d-range``; ``vared2`` for an X3D
row: VA-RED2, seed 004, dynamic convolutions with gates, ``--stage joint|finetune``); each method's and
schedule's own options are flags of their own, listed by ``--help``.

Outputs in ``OUT/``: ``config.json``, ``classes.json``, ``metrics.csv`` (one row per epoch: train
loss terms, val top-1 of the raw and the EMA weights, lr, time, skipped videos), ``tb/``
(TensorBoard), ``summary.json``, and checkpoints ``last.pt`` / ``best.pt``.

Preemption: SIGTERM, SIGUSR1 or Ctrl-C stop training at the next optimizer step, write ``last.pt`` and
exit with ``128 + signal`` (130 for Ctrl-C; a second Ctrl-C stops at once); ``--resume`` continues
exactly where it stopped (``benchmarks.engine.train``). A run is never overwritten by accident: into an
``OUT`` that holds an unfinished run or one with other settings, ``train`` refuses (exit 2) until
``--resume`` (continue) or ``--refresh`` (start over) says which. Everything that can be checked before
launching is: the data's folders and video count against the schedule and batch size, a writable
``OUT``, the ``--init`` weights, the options.
Multi-GPU: launch with ``torchrun``, or ``--launch slurm``. Several rows: ``--row 1,6`` trains each in
``OUT/row<N>``; ``--launch slurm`` runs them as a job array through submitit, requeued and resumed
after the time-limit signal (``benchmarks.engine.tasks``); each array task is one DDP run over
``--nodes`` x ``--gpus-per-node`` processes (one per GPU), or ``--nodes`` x ``--tasks-per-node`` CPU
processes on gloo. A row whose ``OUT`` holds a finished run with the same settings is skipped
unless ``--refresh``.

``--schedule multigrid`` trains with multigrid (seed 003; ``benchmarks.methods.multigrid``): long and short
cycles of mini-batch shapes, sub-batch BatchNorm, PySlowFast's lr policy with ``--optimizer sgd
--lr-policy steps --lr-steps ...``; with AdamW or the cosine it runs and records the deviation in
``OUT/config.json`` (``schedule``). It resumes mid-cycle exactly, under SLURM as well.

``--init NAME|FILE`` starts a fresh run from public weights (``benchmarks.engine.public_weights``; e.g. ImageNet
MobileNetV3 for rows 3/4/10/11, a Kinetics-600 MoViNet backbone under a GRW head) or from a suite
checkpoint: every tensor whose name and shape match is loaded, the rest is listed (``OUT/init.json``);
the name and the file's sha256 are recorded in the run config.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from benchmarks.commands.launching import (
    add_launch_arguments,
    check_launch_arguments,
    launch_command,
    options_from_args,
)
from benchmarks.commands.options import add_component_options, component_flags
from benchmarks.core.cli import UsageError, check_writable, default, from_args
from benchmarks.engine.config import CHANNELS_LAST_MODES, RESUMABLE_CHANGES, RunConfig
from benchmarks.engine.method import METHODS
from benchmarks.engine.recipe import AMP_MODES, LR_POLICIES, OPTIMIZERS, Recipe
from benchmarks.engine.schedules import SCHEDULES
from benchmarks.table1.specs import AUTHORS_RECIPE, SUITE_CHOICE, GrwSettings

# The training itself (torch) is imported where it is used: --help and argument errors come back without it.


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--row", required=True,
                        help="Table 1 row number or name; several, comma-separated, train one after another "
                        "(or as an array with --launch), each in OUT/row<N>")
    parser.add_argument("--data", required=True, help="dataset root: ROOT/{train,val}/<class>/<video>.mp4")
    parser.add_argument("--out", required=True, help="run directory (config, metrics, checkpoints); "
                        "with several rows, OUT/row<N> for each")
    parser.add_argument("--annotations", help="directory of <split>.csv or one Kinetics CSV (default DATA/annotations)")
    parser.add_argument("--method", choices=METHODS.names(), default=default(RunConfig, "method"),
                        help="training method (benchmarks.engine.method.METHODS; default: %(default)s); its options "
                        "are listed under 'method NAME' below")
    starts = parser.add_mutually_exclusive_group()
    starts.add_argument("--resume", action="store_true",
                        help="continue from OUT/last.pt when it exists (launched tasks always do)")
    starts.add_argument("--refresh", action="store_true",
                        help="start from scratch, also rows whose run in OUT finished (they are skipped otherwise)")
    parser.add_argument("--init", metavar="NAME|FILE",
                        help="start from public weights (a `weights list` name, from the weights cache) or a suite "
                        "checkpoint; tensors whose shape differs (another class count) and modules the weights lack "
                        "(a GRW head) stay random and are listed in OUT/init.json")
    group = parser.add_argument_group("input and GRW (default: the row's spec; recorded as deviations)")
    group.add_argument("--frames", type=int, help="frames per training clip (default: the row's)")
    group.add_argument("--res", type=int, help="side of the training crop in pixels; evaluation keeps the row's "
                       "resize-to-crop ratio (default: the row's)")
    group.add_argument("--fps", type=float, help="frames per second the clips are sampled at (default: the row's)")
    group.add_argument("--grw", action=argparse.BooleanOptionalAction, default=None,
                       help="GRW-smoothing on/off (default: on for GRW rows; --grw adds taps to MobileNetV3/TSM, X3D)")
    group.add_argument("--grw-weight", type=float,
                       help="weight of the GRW-smoothing term (default: the row's, 1.0 for the GRW rows)")
    group.add_argument("--grw-window", type=int, help="frames per GRW window (default: the row's)")
    group = parser.add_argument_group("recipe (defaults: benchmarks.engine.runs.Recipe)")
    for name, kind, text in (
        ("epochs", int, None), ("batch_size", int, "per process"), ("accumulate", int, "micro-batches per step"),
        ("lr", float, "peak lr for the global batch"), ("weight_decay", float, None), ("warmup_epochs", float, None),
        ("min_lr_ratio", float, "the cosine ends at lr x this"), ("label_smoothing", float, None),
        ("ema_decay", float, "per optimizer step; 0 turns the EMA off"),
        ("dropout", float, "default: the model's"), ("stochastic_depth", float, "default: the model's (MoViNet, X3D)"),
        ("seed", int, None), ("crop_min_area", float, "training crops cover a random [this, 1] of the frame's area"),
    ):
        value = default(Recipe, name)
        shown = "" if value is None else f"default: {value}"
        group.add_argument(f"--{name.replace('_', '-')}", type=kind, default=value,
                           help="; ".join(part for part in (text, shown) if part) or None)
    group.add_argument("--amp", choices=AMP_MODES, default=default(Recipe, "amp"),
                       help="mixed precision on CUDA (default: %(default)s)")
    group.add_argument("--optimizer", choices=OPTIMIZERS, default=default(Recipe, "optimizer"),
                       help="adamw, or sgd (momentum 0.9, Nesterov: PySlowFast's, which multigrid was defined with) "
                            "(default: %(default)s)")
    group.add_argument("--lr-policy", choices=LR_POLICIES, default=default(Recipe, "lr_policy"),
                       help="cosine decay to lr x min-lr-ratio, or steps: lr x lr-gamma at each of --lr-steps "
                            "(both after the linear warm-up) (default: %(default)s)")
    group.add_argument("--lr-steps", type=epoch_list, default=default(Recipe, "lr_steps"), metavar="E1,E2,...",
                       help="epochs at which --lr-policy steps decays the lr (default: none)")
    group.add_argument("--lr-gamma", type=float, default=default(Recipe, "lr_gamma"),
                       help="lr decay per step of --lr-policy steps (default: %(default)s)")
    parser.add_argument("--schedule", choices=SCHEDULES.names(), default=default(RunConfig, "schedule"),
                        help="how the steps are laid out (benchmarks.engine.schedules.SCHEDULES): standard, every step "
                             "at the row's input and --batch-size; multigrid (seed 003): mini-batch shapes that cycle "
                             "over fewer frames and smaller sides with larger batches and lr, sub-batch BatchNorm over "
                             "8 clips, as PySlowFast (default: %(default)s)")
    group = parser.add_argument_group("execution")
    group.add_argument("--no-val", dest="validate", action="store_false", help="skip per-epoch validation")
    group.add_argument("--num-workers", type=int, default=default(RunConfig, "num_workers"),
                       help="data loading processes (default: %(default)s)")
    group.add_argument("--cache-videos", action="store_true",
                       help="keep decoded training videos in memory after their first read (small datasets; "
                            "pays with --num-workers 0)")
    group.add_argument("--device", choices=("cpu", "cuda"), help="(default: cuda when available, else cpu)")
    group.add_argument("--channels-last", choices=CHANNELS_LAST_MODES, default=default(RunConfig, "channels_last"),
                       help="convolutions (and 3D models' clips) in channels-last memory; auto: on CPU, where it "
                            "trains X3D, MoViNet and MobileNetV3 ~3x faster (same results), off on CUDA "
                            "(default: %(default)s)")
    group.add_argument("--log-every", type=int, default=default(RunConfig, "log_every"),
                       help="optimizer steps between log lines (default: %(default)s)")
    add_component_options(parser, METHODS, "method")
    add_component_options(parser, SCHEDULES, "schedule")
    add_launch_arguments(parser, distributed=True)
    parser.epilog = authors_recipe_epilog(parser)


# The options that set what the authors' code leaves open (AUTHORS_RECIPE entries of SUITE_CHOICE),
# plus the EMA decay, which their code leaves open inside its "ema" entry.
SUITE_CHOSEN_OPTIONS = {"lr": "--lr", "weight_decay": "--weight-decay", "epochs": "--epochs",
                        "batch_size": "--batch-size", "ema_decay": "--ema-decay", "grw_weight": "--grw-weight"}


def epoch_list(text: str) -> tuple[int, ...]:
    """``"8,12"`` -> (8, 12)."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated epochs such as 8,12, got {text!r}") from None


def authors_recipe_epilog(parser: argparse.ArgumentParser) -> str:
    """The GRW rows' fine-tuning recipe for ``--help``: what the authors' code states (and where), and
    what this suite chooses where it is silent (the option and its default)."""
    stated = [f"  {name}: {cited.value}\n      ({cited.source})" for name, cited in AUTHORS_RECIPE.items()
              if cited.value is not None]
    defaults = {name: parser.get_default(option[2:].replace("-", "_")) for name, option in SUITE_CHOSEN_OPTIONS.items()}
    defaults["grw_weight"] = GrwSettings.weight  # --grw-weight defaults to the row's spec
    chosen = ["  optimizer: AdamW, no weight decay on biases and norms (fixed)"]
    chosen += [f"  {name}: {option} {defaults[name]}" for name, option in SUITE_CHOSEN_OPTIONS.items()]
    return ("GRW rows 1, 6, 12, 15 (train --init movinet_a{0,1,2}_stream_k600 | movinet_a3_k600) follow the\n"
            "authors' code (benchmarks.table1.specs.AUTHORS_RECIPE) where it states a value:\n" + "\n".join(stated)
            + f"\nWhere it is silent (no training script), {SUITE_CHOICE.split(' (')[0]} (option, default):\n"
            + "\n".join(chosen))


def configs_from_args(args: argparse.Namespace) -> list[RunConfig]:
    """One config per row of ``--row``: it trains in OUT, or in OUT/row<N> when there are several.

    Launched tasks (``--launch slurm|local``) resume, since SLURM may restart them at any time.
    Raises ``UsageError`` for anything that would make a task fail (checked before launching).
    """
    from benchmarks.engine.public_weights import WeightsError, catalogue, resolve_init
    from benchmarks.engine.runs import parse_row_list, resolve_spec

    try:
        specs = parse_row_list(args.row)
    except ValueError as error:
        raise UsageError(str(error)) from error
    resume = not args.refresh and (args.resume or args.launch != "none")
    init = {}
    if args.init:
        try:
            path, sha256 = resolve_init(args.init)
        except WeightsError as error:
            raise UsageError(str(error)) from error
        init = {"init": args.init if args.init in catalogue() else str(path.resolve()), "init_sha256": sha256}
    components = {"method_options": component_flags(args, METHODS, args.method, "method"),
                  "schedule_options": component_flags(args, SCHEDULES, args.schedule, "schedule")}
    configs = [from_args(RunConfig, args, row=spec.row, resume=resume, **init, **components,
                         out=str(Path(args.out) / f"row{spec.row}") if len(specs) > 1 else args.out)
               for spec in specs]
    for config in configs:
        try:
            resolve_spec(config)  # bad row / GRW / input options fail here, before any data is read
        except ValueError as error:
            raise UsageError(str(error)) from error
    check_data(args.data, "train")
    check_writable(args.out, "--out")
    videos = count_video_files(Path(args.data) / "train")
    if args.init:
        check_init(args.init, configs, Path(args.data) / "train")
    for config in configs:
        check_schedule_fits(config, videos, processes_per_run(args))
        if not args.refresh and not resume:
            check_no_other_run(config)
    return configs


def count_video_files(split_dir: Path) -> int:
    """Files in the split's class folders: an upper bound on the readable videos, counted without decoding."""
    count = sum(1 for folder in split_dir.iterdir() if folder.is_dir() for item in folder.iterdir() if item.is_file())
    if count == 0:
        raise UsageError(f"--data: {split_dir} holds no video files (expected {split_dir}/<class>/<video>.mp4)")
    return count


def check_init(init: str, configs: list[RunConfig], split_dir: Path) -> None:
    """``--init`` must read and convert, and match each row's model in some tensor (the model is built
    on the meta device: shapes only); a ``WeightsError`` says what is wrong."""
    import torch

    from benchmarks.engine.public_weights import initial_state, load_initial
    from benchmarks.engine.runs import build_run_model, resolve_spec

    state, path = initial_state(init)
    classes = sum(1 for folder in split_dir.iterdir() if folder.is_dir())
    for config in configs:
        with torch.device("meta"), warnings.catch_warnings():
            # loading into meta parameters copies nothing, and torch says so per tensor: only the match matters
            warnings.filterwarnings("ignore", message=".*copying from a non-meta parameter.*")
            model = build_run_model(resolve_spec(config)[0], classes, config.recipe, config.training_method())
            load_initial(model, state, init, sha256="")


def check_schedule_fits(config: RunConfig, videos: int, processes: int = 1) -> None:
    """The run's schedule must have at least one step with ``videos`` training videos split over its
    ``processes``: checked before launching, not minutes later in a queued job."""
    from benchmarks.engine.runs import build_schedule, resolve_spec

    try:
        build_schedule(config, resolve_spec(config)[0], max(1, videos // processes))
    except ValueError as error:
        raise UsageError(f"row {config.row}: {error} (the train split holds {videos} video files)") from error


def processes_per_run(args: argparse.Namespace) -> int:
    """How many processes share one run's data: torchrun's world here, or a launched task's nodes x tasks."""
    if args.launch == "none":
        return int(os.environ.get("WORLD_SIZE", "1"))
    return args.nodes * (args.tasks_per_node or max(args.gpus_per_node, 1))


def check_no_other_run(config: RunConfig) -> None:
    """A run in ``config.out`` is never overwritten by accident: continuing it takes ``--resume``,
    starting over ``--refresh``."""
    from benchmarks.core.checkpoint import LAST, CheckpointError, load_checkpoint

    path = Path(config.out) / LAST
    if not path.is_file() or finished(config):
        return
    try:
        epoch = load_checkpoint(path)["progress"]["epoch"]
    except (CheckpointError, KeyError) as error:
        raise UsageError(f"{path} cannot be read ({error}): --refresh starts the run again") from error
    raise UsageError(f"{config.out} holds a run at epoch {epoch}: add --resume to continue or --refresh to start over")


def check_data(root: str, split: str) -> None:
    """The dataset root must hold the split's videos (a class folder or annotations)."""
    path = Path(root)
    if not path.is_dir():
        raise UsageError(f"--data {root}: no such directory")
    if not (path / split).is_dir():
        raise UsageError(f"--data {root}: no {split}/ folder (expected ROOT/{split}/<class>/<video>.mp4)")


def finished(config: RunConfig) -> bool:
    """Whether ``config.out`` holds a complete run of these settings (a re-run skips it)."""
    from benchmarks.core.checkpoint import LAST, CheckpointError, load_checkpoint

    path = Path(config.out) / LAST
    if not path.is_file():
        return False
    try:
        saved = load_checkpoint(path)
    except CheckpointError as error:
        raise UsageError(f"{error} (--refresh starts the run again)") from error
    current, before = config.to_dict(), RunConfig.from_dict(saved["config"]).to_dict()  # defaults for newer fields
    return saved["complete"] and all(before.get(name) == value for name, value in current.items()
                                     if name not in RESUMABLE_CHANGES)


def check_processes(args: argparse.Namespace) -> None:
    """``--tasks-per-node`` starts the processes of a launched task; on GPUs, one per GPU."""
    if args.tasks_per_node is None:
        return
    if args.launch == "none":
        raise UsageError("--tasks-per-node needs --launch slurm or local (in this process: torchrun)")
    if args.gpus_per_node and args.tasks_per_node != args.gpus_per_node:
        raise UsageError(f"--tasks-per-node {args.tasks_per_node} with --gpus-per-node {args.gpus_per_node}: "
                         "training runs one process per GPU (leave --tasks-per-node out)")


def print_summary(name: str, summary: dict) -> None:
    keys = ("row", "status", "epochs_completed", "best_val_top1", "last_checkpoint")
    print(json.dumps({key: summary[key] for key in keys}))


def main(args: argparse.Namespace) -> int:
    from benchmarks.engine.tasks import TrainingStopped, TrainTask, preemptible

    try:
        options = preemptible(options_from_args(args))
    except ValueError as error:
        raise UsageError(str(error)) from error
    check_launch_arguments(args)
    check_processes(args)
    configs = configs_from_args(args)
    todo = [config for config in configs if args.refresh or not finished(config)]
    for config in configs:
        if config not in todo:
            print(f"row {config.row}: {config.out} holds a finished run with these settings "
                  "(--refresh trains it again)")
    if not todo:
        return 0
    try:
        return launch_command(TrainTask(), todo, [f"row{config.row}" for config in todo], args, options,
                              on_result=print_summary, job_name="grw-train")
    except TrainingStopped as stopped:
        print(f"train: {stopped}; run the same command with --resume to continue", file=sys.stderr)
        return stopped.exit_code
