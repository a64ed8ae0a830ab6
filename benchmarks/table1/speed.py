"""What a row's model costs in time on this machine: latency per video, throughput, and for stream rows the
latency per frame and the size of the state carried from frame to frame (``python -m benchmarks.run speed``).

How it is timed (the way careful harnesses such as timm's ``benchmark.py`` do):

- the model in eval mode under ``torch.inference_mode``, torch's intra-op threads pinned to ``threads``;
- ``warmup`` untimed calls, then timed calls until ``repeats`` are done or ``max_seconds`` have passed
  (never fewer than ``min_repeats``); on CUDA each call is synchronised;
- reported as the median and the interquartile range (q1, q3) of the timed calls;
- latency per video: one clip of the row's input (batch 1) timed, times the row's views, which a deployed
  model runs one after another (``clips x crops``); a stream row's clip runs frame by frame with its state;
- throughput per batch size ``B``: ``B`` clips per call (stream rows: ``B`` streams frame by frame),
  ``B / (median time x views)`` videos per second;
- stream rows: the latency of one frame (one call of ``forward_stream`` on a warm state) and the bytes of
  that state.

The machine's load is read before and after (``os.getloadavg``); a run made while the 1-minute load
exceeded the usable cores is marked ``overloaded`` and shown so. Nothing here asserts a speed: the numbers
are stored with their provenance (CPU model, torch and oneDNN versions, threads, backend) and compared as
ratios within one run.
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from benchmarks.core.counting import LogitsOnly
from benchmarks.table1 import deploy
from benchmarks.table1.specs import RowSpec, build_model
from benchmarks.table1.speed_config import BACKENDS, DEVICES, SpeedConfig  # noqa: F401  (also as speed.*)

# --------------------------------------------------------------------------- timing


def time_calls(call: Callable[[], object], config: SpeedConfig) -> list[float]:
    """Seconds of each timed call of ``call`` after the warm-up (see :class:`SpeedConfig`)."""
    sync = torch.cuda.synchronize if config.device == "cuda" else (lambda: None)
    for _ in range(config.warmup):
        call()
    sync()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < config.repeats:
        begin = time.perf_counter()
        call()
        sync()
        times.append(time.perf_counter() - begin)
        if len(times) >= config.min_repeats and time.perf_counter() - started > config.max_seconds:
            break
    return times


def summarise(seconds: Sequence[float], scale: float = 1e3) -> dict[str, float | int]:
    """Median and quartiles of ``seconds`` (in ms by default), and how many calls were timed."""
    values = sorted(s * scale for s in seconds)
    if len(values) == 1:
        q1 = q3 = values[0]
    else:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": statistics.median(values), "q1": q1, "q3": q3, "iqr": q3 - q1, "n": len(values)}


@contextlib.contextmanager
def pinned_threads(threads: int) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` for the block."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def profile_call(call: Callable[[], object], top: int = 8) -> list[dict[str, Any]]:
    """Where one call of ``call`` spends its time: the ``top`` operators by their own CPU time, each with
    its share of the call's total and how many times it ran."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        call()
    events = sorted(prof.key_averages(), key=lambda event: event.self_cpu_time_total, reverse=True)
    total = sum(event.self_cpu_time_total for event in events) or 1
    return [{"op": event.key, "share": event.self_cpu_time_total / total, "calls": event.count}
            for event in events[:top]]


def load_average() -> float:
    return os.getloadavg()[0]


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def onednn_version() -> str | None:
    """oneDNN's version as torch reports it in its build configuration."""
    found = re.search(r"oneDNN v(\S+)", torch.__config__.show()) or re.search(r"MKL-DNN v(\S+)",
                                                                               torch.__config__.show())
    return found.group(1) if found else None


def software(config: SpeedConfig) -> dict[str, Any]:
    info: dict[str, Any] = {"torch": torch.__version__, "onednn": onednn_version(),
                            "mkldnn_enabled": torch.backends.mkldnn.is_available()}
    if config.device == "cuda":
        info.update(cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    return info


# --------------------------------------------------------------------------- one row


def prepared_model(spec: RowSpec, config: SpeedConfig, model: nn.Module | None = None) -> nn.Module:
    """The row's model (seeded random weights unless given) on the device, in eval mode, in the layout
    and backend asked for; with ``fold_bn``, folded and checked against the unfolded model."""
    torch.manual_seed(0)
    model = (model if model is not None else build_model(spec)).eval().to(config.device)
    if config.fold_bn:
        model = deploy.folded(model, partial(deploy.reference_output, spec=spec, device=config.device))
    if config.channels_last:
        deploy.to_channels_last(model)
    return model


def _autocast(config: SpeedConfig) -> contextlib.AbstractContextManager:
    if not config.amp:
        return contextlib.nullcontext()
    return torch.autocast(config.device, dtype=torch.bfloat16)


def _clip(spec: RowSpec, batch: int, frames: int, config: SpeedConfig) -> torch.Tensor:
    clip = torch.zeros(batch, 3, frames, spec.res, spec.res, device=config.device)
    return clip.contiguous(memory_format=torch.channels_last_3d) if config.channels_last else clip


def state_bytes(state: Any) -> int:
    """Bytes of every tensor in a stream state (nested dicts, lists and tuples of tensors)."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(state_bytes(value) for value in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_bytes(value) for value in state)
    return 0


def _compiled(function: Callable, config: SpeedConfig) -> Callable:
    return torch.compile(function) if config.backend == "compile" else function


def clip_call(model: nn.Module, spec: RowSpec, batch: int, config: SpeedConfig) -> Callable[[], object]:
    """One clip of the row per video, ``batch`` videos: a whole-clip forward, or frame by frame."""
    if spec.streaming:
        frame, step = _clip(spec, batch, 1, config), _compiled(model.forward_stream, config)

        def stream() -> None:
            with torch.inference_mode(), _autocast(config):
                state = None
                for _ in range(spec.frames):
                    _, state = step(frame, state)

        return stream
    clip, forward = _clip(spec, batch, spec.frames, config), _compiled(LogitsOnly(model), config)

    def whole() -> None:
        with torch.inference_mode(), _autocast(config):
            forward(clip)

    return whole


def frame_call(model: nn.Module, spec: RowSpec, config: SpeedConfig) -> tuple[Callable[[], object], int]:
    """One frame of a stream row on a warm state (the state after half a clip, kept fixed so that every
    timed call does the same work), and the state's size in bytes."""
    frame, forward_stream = _clip(spec, 1, 1, config), _compiled(model.forward_stream, config)
    with torch.inference_mode(), _autocast(config):
        state = None
        for _ in range(max(1, spec.frames // 2)):
            _, state = forward_stream(frame, state)

    def step() -> None:
        with torch.inference_mode(), _autocast(config):
            forward_stream(frame, state)

    return step, state_bytes(state)


@contextlib.contextmanager
def onnx_graph(model: nn.Module, spec: RowSpec, threads: int) -> Iterator[Any]:
    """``model`` exported (and verified) as the row's ONNX graph in a temporary folder, in a session."""
    import tempfile

    from benchmarks.table1.export import OnnxRunner, export_onnx

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        export_onnx(model, spec, path)
        yield OnnxRunner(path, threads=threads)


def onnx_calls(runner: Any, spec: RowSpec) -> tuple[Callable[[], object], Callable[[], object] | None, int | None]:
    """The clip call, and for stream graphs the frame call on a warm state and that state's bytes."""
    import numpy as np

    if not runner.streaming:
        clip = np.zeros(spec.clip_shape, np.float32)
        return (lambda: runner.run(clip)), None, None
    frame = np.zeros((1, 3, 1, spec.res, spec.res), np.float32)
    state = runner.initial_state()
    for _ in range(max(1, spec.frames // 2)):
        _, state = runner.step(frame, state)
    clip = np.zeros((1, 3, spec.frames, spec.res, spec.res), np.float32)
    return (lambda: runner.run(clip)), (lambda: runner.step(frame, state)), sum(a.nbytes for a in state)


def measure_row_speed(spec: RowSpec, config: SpeedConfig, model: nn.Module | None = None) -> dict[str, Any]:
    """Latency per video, throughput per batch size and (stream rows) per-frame latency and state size."""
    if config.backend == "onnxruntime":
        return _measure_onnx(spec, config, model)
    with pinned_threads(config.threads):
        model = prepared_model(spec, config, model)
        per_clip = summarise(time_calls(clip_call(model, spec, 1, config), config))
        record = _record(spec, per_clip)
        step = None
        if spec.streaming:
            step, size = frame_call(model, spec, config)
            record["latency_per_frame_ms"] = summarise(time_calls(step, config))
            record["state_bytes"] = size
        if config.profile:
            record["profile"] = profile_call(step or clip_call(model, spec, 1, config))
        throughput = {}
        for batch in config.batch_sizes:
            timed = per_clip if batch == 1 else summarise(time_calls(clip_call(model, spec, batch, config), config))
            throughput[str(batch)] = {"videos_per_s": batch / (timed["median"] / 1e3 * spec.views),
                                      "ms_per_call": timed}
        record["throughput"] = throughput
    return record


def _measure_onnx(spec: RowSpec, config: SpeedConfig, model: nn.Module | None) -> dict[str, Any]:
    """:func:`measure_row_speed` for the row's exported graph in onnxruntime (batch 1)."""
    with pinned_threads(config.threads), onnx_graph(prepared_model(spec, config, model), spec,
                                                    config.threads) as runner:
        whole, frame, size = onnx_calls(runner, spec)
        per_clip = summarise(time_calls(whole, config))
        record = _record(spec, per_clip)
        if frame is not None:
            record["latency_per_frame_ms"] = summarise(time_calls(frame, config))
            record["state_bytes"] = size
        record["throughput"] = {"1": {"videos_per_s": 1 / (per_clip["median"] / 1e3 * spec.views),
                                      "ms_per_call": per_clip}}
    return record


def _record(spec: RowSpec, per_clip: dict) -> dict[str, Any]:
    return {"row": spec.row, "name": spec.name, "model": spec.model, "streaming": spec.streaming,
            "input": {"frames": spec.frames, "res": spec.res, "views": spec.views},
            "latency_per_clip_ms": per_clip,
            "latency_per_video_ms": {k: v * spec.views if k != "n" else v for k, v in per_clip.items()}}


def speed_run(specs: Sequence[RowSpec], config: SpeedConfig,
              on_row: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Every row timed under one configuration, with the machine's load before and after; ``on_row``
    is called with each row's record as it is done."""
    return _timed_run("speed", [lambda spec=spec: measure_row_speed(spec, config) for spec in specs], config, on_row)


def peers_run(config: SpeedConfig, on_row: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """The suite's models against the public implementations (``benchmarks.table1.peers``)."""
    from benchmarks.table1.peers import PEERS

    return _timed_run("peers", [lambda peer=peer: measure_peer(peer, config) for peer in PEERS], config, on_row)


def _timed_run(experiment: str, measurements: Sequence[Callable[[], dict]], config: SpeedConfig,
               on_row: Callable[[dict], None] | None) -> dict[str, Any]:
    load_before = load_average()
    started = time.perf_counter()
    rows = []
    with pinned_threads(config.threads):
        for measure in measurements:
            rows.append(measure())
            if on_row:
                on_row(rows[-1])
    load_after = load_average()
    cores = usable_cores()
    return {
        "experiment": experiment,
        "config": asdict(config),
        "rows": rows,
        "load": {"before": load_before, "after": load_after, "cores": cores,
                 "overloaded": max(load_before, load_after) > cores},
        "software": software(config),
        "wall_time_s": round(time.perf_counter() - started, 1),
    }


def measure_peer(peer: Any, config: SpeedConfig) -> dict[str, Any]:
    """Ours and the peer alternately on the same input: each one's time and the ratio ours / peer."""
    from benchmarks.table1.peers import build_pair, peer_input, unavailable

    record: dict[str, Any] = {"peer": peer.name, "ours": peer.ours, "row": peer.row, "mode": peer.mode,
                              "package": peer.package}
    reason = unavailable(peer)
    if reason:
        return {**record, "unavailable": reason}
    spec, ours, theirs = build_pair(peer, config.device)
    plain = peer_input(peer, spec)  # ours is the plain model of the row's family: no GRW head
    ours = prepared_model(plain, config, ours)
    if config.backend == "onnxruntime":
        with onnx_graph(ours, plain, config.threads) as runner:
            whole, frame, _ = onnx_calls(runner, plain)
            timing = time_alternating(frame if peer.mode == "frame" else whole, theirs, config)
    else:
        call = frame_call(ours, plain, config)[0] if peer.mode == "frame" else clip_call(ours, plain, 1, config)
        timing = time_alternating(call, theirs, config)
        if config.profile:
            record.update(ours_profile=profile_call(call), peer_profile=profile_call(theirs))
    return {**record, "input": {"frames": spec.frames, "res": spec.res},
            "ours_ms": summarise(timing.ours), "peer_ms": summarise(timing.peer),
            "ratio": summarise(timing.ratios(), scale=1.0)}


@dataclass
class PairTiming:
    """Ours and a peer timed alternately, call after call, in one process: the ratio of each pair."""

    ours: list[float] = field(default_factory=list)
    peer: list[float] = field(default_factory=list)

    def ratios(self) -> list[float]:
        return [a / b for a, b in zip(self.ours, self.peer)]


def time_alternating(ours: Callable[[], object], peer: Callable[[], object], config: SpeedConfig) -> PairTiming:
    """``ours`` and ``peer`` warmed up, then timed one after the other ``repeats`` times (or until
    ``max_seconds``), so that a change of the machine's load hits both."""
    sync = torch.cuda.synchronize if config.device == "cuda" else (lambda: None)
    for _ in range(config.warmup):
        ours()
        peer()
    sync()
    timing, started = PairTiming(), time.perf_counter()
    while len(timing.ours) < config.repeats:
        for call, times in ((ours, timing.ours), (peer, timing.peer)):
            begin = time.perf_counter()
            call()
            sync()
            times.append(time.perf_counter() - begin)
        if len(timing.ours) >= config.min_repeats and time.perf_counter() - started > 2 * config.max_seconds:
            break
    return timing
