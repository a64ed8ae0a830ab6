"""Export a Table 1 row's model to ONNX, verified in onnxruntime (``python -m benchmarks.run export``).

``--row N`` exports the row's network (a GRW row with its temporal head) with seeded random weights, or
with ``--checkpoint CKPT`` the trained model of a `train` checkpoint. Base rows export one graph
``clip [B, 3, T, H, W] -> logits`` at the row's input; stream rows export one frame step
``(chunk [B, 3, 1, H, W], state...) -> (logits, next state...)`` that runs a video frame by frame, starting
from zeros (the state's shapes are in the sidecar; a GRW head's embeddings grow one frame per step).

Before the file is written, onnxruntime (CPU) runs it on a random clip and its logits are compared with
PyTorch eager (frame by frame for stream rows); a difference above 1e-4 refuses the export (exit 2) and
writes nothing. The graph goes to ``--out`` (default ``<results>/exports/row<N>-<model>.onnx``) with a
JSON sidecar beside it (``.json``): row, input and state shapes, opset, exporter, torch/onnx/onnxruntime
versions, the difference found, the checkpoint's sha256. The exporter and why: ``benchmarks.table1.export``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.core.cli import UsageError
from benchmarks.core.store import provenance
from benchmarks.table1.export_formats import EXPORTERS, FORMATS
from benchmarks.table1.specs import build_model, get_spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--row", required=True, help="Table 1 row number or name")
    parser.add_argument("--format", choices=FORMATS, default="onnx", help="(default: %(default)s)")
    parser.add_argument("--out", metavar="PATH", help="the .onnx file (default: <results>/exports/row<N>-<model>.onnx)")
    parser.add_argument("--checkpoint", metavar="CKPT",
                        help="a checkpoint written by `train` (default: the row's model with random weights, seed 0)")
    parser.add_argument("--weights-variant", choices=("ema", "raw"),
                        help="which weights of the checkpoint (default: ema when the checkpoint has it)")
    parser.add_argument("--opset", type=int, help="ONNX opset (default: 17 for torchscript, 18 for dynamo)")
    parser.add_argument("--batch", type=int, default=1, help="the graph's fixed batch size (default: %(default)s)")
    parser.add_argument("--frames", type=int,
                        help="clip length to export and verify at, not the row's (small graphs for quick checks)")
    parser.add_argument("--res", type=int, help="resolution to export at, instead of the row's")
    parser.add_argument("--exporter", choices=EXPORTERS, default="torchscript",
                        help="torch.onnx.export with the TorchScript tracer, or dynamo (needs onnxscript; "
                        "default: %(default)s)")


def _model(args: argparse.Namespace):
    """The spec and model to export, and what the sidecar says about the weights."""
    import torch

    from benchmarks.core.checkpoint import CheckpointError, file_sha256
    from benchmarks.table1.export import SEED

    try:
        spec = get_spec(args.row)
    except ValueError as error:
        raise UsageError(str(error)) from error
    if not spec.implemented:
        raise UsageError(f"row {spec.row} ({spec.name}) is not implemented: {spec.not_implemented_reason}")
    if args.checkpoint is None:
        torch.manual_seed(SEED)
        return spec, build_model(spec), {"weights": f"random (torch.manual_seed({SEED}))"}
    from benchmarks.engine.runs import load_trained

    try:
        trained = load_trained(args.checkpoint, args.weights_variant)
    except (CheckpointError, OSError, KeyError) as error:
        raise UsageError(f"cannot load checkpoint {args.checkpoint}: {error}") from error
    if trained.spec.row != spec.row:
        raise UsageError(f"checkpoint {args.checkpoint} is of row {trained.spec.row} ({trained.spec.name}), "
                         f"not row {spec.row}")
    return trained.spec, trained.model, {"weights": trained.weights, "checkpoint": str(Path(args.checkpoint)),
                                         "checkpoint_sha256": file_sha256(args.checkpoint)}


def main(args: argparse.Namespace) -> int:
    from benchmarks.table1.export import ExportError, export_onnx, sidecar_path, with_input

    if args.batch < 1 or (args.opset or 7) < 7 or min(args.frames or 1, args.res or 1) < 1:
        raise UsageError(f"need --batch, --frames, --res >= 1 and --opset >= 7, got {args.batch}, {args.frames}, "
                         f"{args.res}, {args.opset}")
    spec, model, weights = _model(args)
    row_input = (spec.frames, spec.res)
    spec = with_input(spec, args.frames, args.res)
    if (spec.frames, spec.res) != row_input:
        weights["input_differs_from_row"] = {"row_frames": row_input[0], "row_res": row_input[1]}
    out = Path(args.out) if args.out else args.store.root / "exports" / f"row{spec.row:02d}-{spec.model}.onnx"
    try:
        record = export_onnx(model, spec, out, opset=args.opset, batch=args.batch, exporter=args.exporter,
                             extra={**weights, **provenance()})
    except ExportError as error:
        raise UsageError(str(error)) from error
    check = record["verification"]
    print(f"wrote {out} ({record['bytes'] / 1e6:.1f} MB) and {sidecar_path(out)}: onnxruntime vs PyTorch max abs "
          f"difference {check['max_abs_difference']:.2e} ({check['mode']}, {check['steps_compared']} step(s)), "
          f"{record['seconds']:.1f} s")
    return 0
