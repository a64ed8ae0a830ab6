"""A row's model as an ONNX graph, verified in onnxruntime (``python -m benchmarks.run export``).

**Exporter.** ``torch.onnx.export(..., dynamo=False)``, the TorchScript tracer, at opset 17. In this torch
(2.14) the default ``dynamo=True`` (``torch.export``) also exports these models with the same outputs
(tried on MoViNet base and stream, GRW heads, MobileNetV3+TSM, X3D), but it needs the extra package
``onnxscript``, takes two to three times as long, and writes opset 18 or later only; it stays available
as ``exporter="dynamo"`` (``export --exporter dynamo``) for when the tracer is retired. The opset written
is read back from the file and must be the one asked for.

**Shapes.** A graph has a fixed input shape: batch (1 unless asked), frames and resolution of the row.
TensorFlow 'same' padding and TSM's shift compute sizes in Python, so the tracer writes them into the
graph as constants (a batch of 3 fed to a batch-1 TSM graph fails in its Reshape).

**Stream rows** (``spec.streaming``) export ``forward_stream`` as one step,
``(chunk [B, 3, 1, H, W], state...) -> (logits, next state...)``: the state dict the model fills (nested
for GRW models) is flattened into a fixed, ordered list of tensors (:class:`StateEntry`), inputs named
``state.<key>`` and outputs ``next_state.<key>``. Feeding the outputs back runs a video frame by frame.
The initial state is zeros of the entries' shapes, which gives the same outputs as ``state=None``
(checked at export). Most entries keep their size (a causal conv's last frames, a CGAP's running sum and
frame count); a GRW head's per-frame embeddings grow by one frame per step (the head attends over all
frames seen), so that one axis is dynamic and starts at 0.

**Verification.** Before the file is moved into place, onnxruntime (CPUExecutionProvider) runs it on a
seeded random clip of the row's input and its logits are compared with PyTorch eager: the whole clip,
or every step of a stream row fed frame by frame from the zero state against eager ``forward_stream``
from ``None``. A largest absolute difference above ``tolerance`` (1e-4), or above 1e-3 of the largest
logit (random weights can make logits tiny), refuses the export (:class:`ExportError`) and nothing is
written. :class:`OnnxRunner` runs an exported graph, whole clip or frame by frame.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from benchmarks.core.counting import LogitsOnly
from benchmarks.core.store import atomic_path, write_json
from benchmarks.table1.export_formats import EXPORTERS, FORMATS  # noqa: F401  (also as export.*)
from benchmarks.table1.specs import RowSpec

# the dynamo exporter writes opset 18 or later; asked for less, it tries a version converter that fails on Pad
DEFAULT_OPSETS = {"torchscript": 17, "dynamo": 18}
TOLERANCE = 1e-4
# Random weights give some models tiny logits (MobileNetV3: ~1e-9), where 1e-4 alone would check nothing;
# so the difference must also stay below this share of the largest logit (float32 exports: ~1e-6).
RELATIVE_TOLERANCE = 1e-3
SEED = 0
PROVIDERS = ["CPUExecutionProvider"]

_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64,
                "tensor(int32)": np.int32, "tensor(bool)": np.bool_}


class ExportError(ValueError):
    """An export that cannot be made, or whose graph would not compute what the model computes."""


def require_onnx() -> tuple[ModuleType, ModuleType]:
    """``onnx`` and ``onnxruntime``, or an :class:`ExportError` saying how to install them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as error:
        raise ExportError(f"ONNX export needs the packages onnx and onnxruntime ({error}); "
                          "install them with: pip install onnx onnxruntime") from error
    return onnx, onnxruntime


# --------------------------------------------------------------------------- stream state as tensors


@dataclass(frozen=True)
class StateEntry:
    """One tensor of a stream state: its key path in the (nested) dict, its initial shape and dtype, and
    the axis that grows by one per frame (None when its size is fixed)."""

    path: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: torch.dtype
    growing_axis: int | None = None

    @property
    def name(self) -> str:
        return ".".join(self.path)

    def zeros(self) -> Tensor:
        return torch.zeros(self.shape, dtype=self.dtype)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": str(self.dtype).removeprefix("torch."),
                "growing_axis": self.growing_axis}


def flatten_state(state: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Tensor]:
    """A nested dict of tensors as ``{key path: tensor}``, in the dict's order."""
    flat: dict[tuple[str, ...], Tensor] = {}
    for key, value in state.items():
        if isinstance(value, dict):
            flat.update(flatten_state(value, (*prefix, key)))
        elif isinstance(value, Tensor):
            flat[(*prefix, key)] = value
        else:
            raise ExportError(f"stream state entry {'.'.join((*prefix, key))} is a {type(value).__name__}, "
                              "not a tensor: it cannot be a graph input")
    return flat


def unflatten_state(paths: Sequence[tuple[str, ...]], tensors: Sequence[Tensor]) -> dict[str, Any]:
    """The inverse of :func:`flatten_state`."""
    root: dict[str, Any] = {}
    for path, tensor in zip(paths, tensors):
        node = root
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = tensor
    return root


def stream_layout(model: nn.Module, chunk: Tensor) -> list[StateEntry]:
    """The state ``model.forward_stream`` carries, read from two eager steps started with ``state=None``:
    an entry whose size differs between them grows by that difference per step and starts at 0."""
    with torch.no_grad():
        _, first = model.forward_stream(chunk, None)
        _, second = model.forward_stream(chunk, first)
    first, second = flatten_state(first), flatten_state(second)
    if list(first) != list(second):
        raise ExportError("the stream state changes its keys from one step to the next")
    entries = []
    for path, tensor in first.items():
        after = second[path]
        changed = [axis for axis, (a, b) in enumerate(zip(tensor.shape, after.shape)) if a != b]
        if tensor.dim() != after.dim() or len(changed) > 1 or (changed and 2 * tensor.shape[changed[0]]
                                                                != after.shape[changed[0]]):
            raise ExportError(f"stream state entry {'.'.join(path)} changes shape {tuple(tensor.shape)} -> "
                              f"{tuple(after.shape)}: neither fixed nor growing by one chunk per step")
        shape = list(tensor.shape)
        if changed:
            shape[changed[0]] = 0
        entries.append(StateEntry(path, tuple(shape), tensor.dtype, changed[0] if changed else None))
    return entries


class StreamGraph(nn.Module):
    """``forward_stream`` with the state as positional tensors: ``(chunk, *state) -> (logits, *next_state)``,
    in the order of ``layout``."""

    def __init__(self, model: nn.Module, layout: Sequence[StateEntry]) -> None:
        super().__init__()
        self.model = model
        self.layout = list(layout)
        self.train(model.training)

    def initial_state(self) -> list[Tensor]:
        return [entry.zeros() for entry in self.layout]

    def forward(self, chunk: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        paths = [entry.path for entry in self.layout]
        logits, next_state = self.model.forward_stream(chunk, unflatten_state(paths, state))
        flat = flatten_state(next_state)
        return (logits, *(flat[path] for path in paths))


def check_zero_state(graph: StreamGraph, chunks: Sequence[Tensor], spec: RowSpec) -> None:
    """Refuse a stream model for which the zero state is not the start of a video (``state=None``)."""
    with torch.no_grad():
        state: Any = None
        zero = graph.initial_state()
        for chunk in chunks:
            expected, state = graph.model.forward_stream(chunk, state)
            logits, *zero = graph(chunk, *zero)
            difference = (logits - expected).abs().max().item()
            if difference > 1e-6:
                raise ExportError(f"row {spec.row} ({spec.name}): a zero stream state differs from state=None "
                                  f"by {difference:.3g}; the exported graph would need another initial state")


# --------------------------------------------------------------------------- export and verification


def _example_clip(shape: Sequence[int], seed: int) -> Tensor:
    return torch.rand(tuple(shape), generator=torch.Generator().manual_seed(seed))


def _onnx_export(graph: nn.Module, inputs: tuple[Tensor, ...], path: Path, input_names: list[str],
                 output_names: list[str], growing: dict[str, int], opset: int, exporter: str, label: str) -> None:
    """``torch.onnx.export`` of ``graph``; ``growing`` names the inputs/outputs with one dynamic axis."""
    if exporter not in EXPORTERS:
        raise ExportError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    options: dict[str, Any] = dict(input_names=input_names, output_names=output_names, opset_version=opset)
    if exporter == "dynamo":
        try:
            import onnxscript  # noqa: F401
        except ImportError as error:
            raise ExportError("--exporter dynamo needs the package onnxscript: pip install onnxscript") from error
        seen = torch.export.Dim("seen")
        shapes = [{growing[name]: seen} if name in growing else None for name in input_names]
        # torch.export groups forward(chunk, *state)'s varargs into one tuple
        dynamic_shapes = (shapes[0], tuple(shapes[1:])) if len(shapes) > 1 else (shapes[0],)
        options.update(dynamo=True, external_data=False, dynamic_shapes=dynamic_shapes)
    else:
        options.update(dynamo=False, dynamic_axes={name: {axis: f"{name}.frames"} for name, axis in growing.items()})
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # the tracer warns of every Python value it freezes; verify() checks the graph's outputs instead
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, inputs, str(path), **options)
    except Exception as error:  # the exporters raise many types; the first line says which op failed
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ExportError(f"{label}: torch.onnx.export ({exporter}) failed: {first_line}") from error


def eager_stream(model: nn.Module, clip: Tensor) -> list[Tensor]:
    """Eager ``forward_stream`` frame by frame from ``state=None``: the logits after each frame."""
    logits, state = [], None
    with torch.no_grad():
        for t in range(clip.shape[2]):
            step, state = model.forward_stream(clip[:, :, t:t + 1], state)
            logits.append(step)
    return logits


def max_difference(ours: Sequence[np.ndarray], expected: Sequence[Tensor]) -> float:
    return max(float(np.abs(a - b.numpy()).max()) for a, b in zip(ours, expected, strict=True))


def verify(path: Path, model: nn.Module, spec: RowSpec, clip: Tensor, tolerance: float = TOLERANCE) -> dict:
    """Run the graph at ``path`` in onnxruntime on ``clip`` and compare with eager; :class:`ExportError`
    when the largest absolute difference of the logits exceeds ``tolerance``."""
    runner = OnnxRunner(path)
    if runner.streaming:
        ours = runner.run_stream(clip[:, :, t:t + 1] for t in range(clip.shape[2]))
        expected = eager_stream(model, clip)
    else:
        ours = [runner.run(clip)]
        with torch.no_grad():
            expected = [LogitsOnly(model)(clip)]
    difference = max_difference(ours, expected)
    scale = max(float(e.abs().max()) for e in expected)
    relative = difference / scale if scale > 0 else 0.0
    if not (difference <= tolerance and relative <= RELATIVE_TOLERANCE):  # also refuses NaN
        mode = "frame by frame" if runner.streaming else "on the whole clip"
        raise ExportError(f"row {spec.row} ({spec.name}): onnxruntime differs from PyTorch by {difference:.3g} "
                          f"{mode}, {relative:.3g} of the largest logit (tolerance {tolerance:g}, relative "
                          f"{RELATIVE_TOLERANCE:g}); export refused")
    result = {"max_abs_difference": difference, "tolerance": tolerance, "steps_compared": len(ours),
              "max_abs_logit": scale, "relative_difference": relative, "relative_tolerance": RELATIVE_TOLERANCE,
              "mode": "frame by frame" if runner.streaming else "whole clip"}
    if runner.streaming:  # for information: the stream's last logits against eager on the whole clip at once
        with torch.no_grad():
            result["last_step_vs_eager_whole_clip"] = max_difference(ours[-1:], [LogitsOnly(model)(clip)])
    return result


def versions() -> dict[str, str]:
    onnx, onnxruntime = require_onnx()
    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def sidecar_path(path: str | Path) -> Path:
    """Where the provenance JSON of the graph at ``path`` goes: ``x.onnx`` -> ``x.json``."""
    return Path(path).with_suffix(".json")


def export_onnx(model: nn.Module, spec: RowSpec, path: str | Path, *, opset: int | None = None, batch: int = 1,
                exporter: str = "torchscript", tolerance: float = TOLERANCE, seed: int = SEED,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Export ``model`` (the row's network, put in eval mode) to ``path`` and verify it in onnxruntime.

    Writes the graph (atomically, only once verified) and its sidecar :func:`sidecar_path` (row, input
    and state layout, opset, exporter, versions, the difference found, and ``extra``); returns the sidecar.
    ``opset`` None is the exporter's default (:data:`DEFAULT_OPSETS`).
    """
    onnx, _ = require_onnx()
    path = Path(path)
    opset = DEFAULT_OPSETS.get(exporter, 0) if opset is None else opset
    model.eval()
    started = time.perf_counter()
    clip = _example_clip((batch, *spec.clip_shape[1:]), seed)
    record: dict[str, Any] = {"row": spec.row, "name": spec.name, "model": spec.model, "streaming": spec.streaming,
                              "format": "onnx", "opset": opset, "exporter": exporter, "batch": batch,
                              "clip_shape": list(clip.shape), "weights_seed": seed, **versions()}
    with atomic_path(path) as tmp:
        if spec.streaming:
            chunk = clip[:, :, :1]
            layout = stream_layout(model, chunk)
            graph: nn.Module = StreamGraph(model, layout)
            check_zero_state(graph, [clip[:, :, t:t + 1] for t in range(min(2, clip.shape[2]))], spec)
            names = [entry.name for entry in layout]
            inputs = ["chunk", *(f"state.{name}" for name in names)]
            outputs = ["logits", *(f"next_state.{name}" for name in names)]
            growing = {f"{prefix}.{entry.name}": entry.growing_axis for entry in layout
                       if entry.growing_axis is not None for prefix in ("state", "next_state")}
            # trace on a state a few frames in, so that a growing axis is not traced at size 0
            example: tuple[Tensor, ...] = (chunk, *_advanced_state(graph, chunk, steps=2))
            record.update(input_shape=list(chunk.shape), state=[entry.to_dict() for entry in layout],
                          initial_state="zeros of each state entry's shape (a growing axis starts at 0)")
        else:
            graph, example, inputs, outputs, growing = LogitsOnly(model), (clip,), ["clip"], ["logits"], {}
            record.update(input_shape=list(clip.shape))
        _onnx_export(graph, example, tmp, inputs, outputs, growing, opset, exporter, f"row {spec.row} ({spec.name})")
        _check_graph(onnx, tmp, spec, opset)
        record["verification"] = verify(tmp, model, spec, clip, tolerance)
    record.update(inputs=inputs, outputs=outputs, path=str(path), bytes=path.stat().st_size,
                  seconds=round(time.perf_counter() - started, 2), **(extra or {}))
    write_json(sidecar_path(path), record)
    return record


def _check_graph(onnx: ModuleType, path: Path, spec: RowSpec, opset: int) -> None:
    """A valid ONNX file of the opset asked for (an exporter may fall back to another one)."""
    try:
        onnx.checker.check_model(str(path))
    except Exception as error:
        raise ExportError(f"row {spec.row} ({spec.name}): the exported graph is not valid ONNX: {error}") from error
    written = {entry.domain: entry.version for entry in onnx.load(str(path), load_external_data=False).opset_import}
    if written.get("", written.get("ai.onnx")) != opset:
        raise ExportError(f"row {spec.row} ({spec.name}): asked for opset {opset}, the exporter wrote "
                          f"{written.get('', written.get('ai.onnx'))}")


def _advanced_state(graph: StreamGraph, chunk: Tensor, steps: int) -> list[Tensor]:
    state = graph.initial_state()
    with torch.no_grad():
        for _ in range(steps):
            _, *state = graph(chunk, *state)
    return state


# --------------------------------------------------------------------------- running an exported graph


class OnnxRunner:
    """An exported graph in an onnxruntime session (CPU): ``run(clip)`` for the logits of a clip (a
    stream graph runs it frame by frame), ``run_stream(chunks)`` for the logits after each chunk.

    The initial stream state is read from the graph's inputs: zeros, a dynamic axis of size 0.
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        _, onnxruntime = require_onnx()
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        # no busy-waiting between calls: a spinning thread would steal the core of whatever runs next
        # (the peer that speed --peers times alternately, the rest of a deployed pipeline)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.path = Path(path)
        self.session = onnxruntime.InferenceSession(str(path), options, providers=PROVIDERS)
        first, *state = self.session.get_inputs()
        self.input_name = first.name
        self.input_shape = tuple(first.shape)
        self.state_names = [node.name for node in state]
        self._initial = [np.zeros([d if isinstance(d, int) else 0 for d in node.shape], _NUMPY_TYPES[node.type])
                         for node in state]

    @property
    def streaming(self) -> bool:
        return bool(self.state_names)

    def initial_state(self) -> list[np.ndarray]:
        return [array.copy() for array in self._initial]

    def step(self, chunk: Tensor | np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """One call of a stream graph: the logits and the next state."""
        feed = {self.input_name: _numpy(chunk), **dict(zip(self.state_names, state, strict=True))}
        logits, *state = self.session.run(None, feed)
        return logits, state

    def run_stream(self, chunks: Iterable[Tensor | np.ndarray]) -> list[np.ndarray]:
        """The logits after each chunk of one video, from the initial state."""
        if not self.streaming:
            raise ValueError(f"{self.path} is not a stream graph (it has no state inputs)")
        state, logits = self.initial_state(), []
        for chunk in chunks:
            step, state = self.step(chunk, state)
            logits.append(step)
        return logits

    def run(self, clip: Tensor | np.ndarray) -> np.ndarray:
        """The logits of a whole clip ``[B, 3, T, H, W]``."""
        if self.streaming:
            clip = _numpy(clip)
            return self.run_stream(clip[:, :, t:t + 1] for t in range(clip.shape[2]))[-1]
        return self.session.run(None, {self.input_name: _numpy(clip)})[0]


def _numpy(x: Tensor | np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.detach().cpu().numpy() if isinstance(x, Tensor) else x)


def with_input(spec: RowSpec, frames: int | None = None, res: int | None = None) -> RowSpec:
    """``spec`` at another clip length or resolution (small graphs for tests and quick checks)."""
    return dataclasses.replace(spec, frames=frames or spec.frames, res=res or spec.res)
