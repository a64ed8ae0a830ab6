"""What A3D costs, measured (``python -m benchmarks.run a3d-cost``): every configuration's GFLOPs and
parameters, peak inference memory, and a training step against plain X3D.

For an X3D row at an input (default: X3D-M, row 13, at its own 16 frames x 224 px), every configuration
of an A3D range (``benchmarks.methods.a3d.model.grid``) is counted with fvcore on the sliced network at its input
(``scale_clip`` of the clip): GFLOPs, the ratio to the full configuration next to the paper's Eq. 2
(gamma_w^2 gamma_s^2 gamma_t), and the parameters its layers use. Peak memory of one clip's inference
(``benchmarks.core.counting.peak_memory_mb``) for the full and the cheapest configuration. Training: the
mean wall-clock of an A3D step (the full network and two sampled sub-networks, Eq. 3) and of a plain
X3D step on the same batch, on this machine, after a warm-up step. Writes ``a3d_configurations_<model>.md``
and ``runs/a3d/a3d-cost-<time>.json`` with provenance.
"""

from __future__ import annotations

import time

import pandas as pd
import torch
from tabulate import tabulate
from torch import nn
from tqdm import tqdm

import baselines
from benchmarks.core.cli import UsageError
from benchmarks.core.counting import count_gflops, peak_memory_mb
from benchmarks.core.store import Store, provenance, provenance_line, write_json, write_text
from benchmarks.engine.method import logits_of
from benchmarks.methods.a3d.model import Configuration, a3d_loss, configured, grid, scale_clip
from benchmarks.methods.a3d.options import A3D_RANGES
from benchmarks.methods.a3d.options import CostOptions as Options  # declared in __init__: --help reads it there
from benchmarks.methods.a3d.sweep import configuration_params
from benchmarks.table1.specs import get_spec


def configuration_costs(model: nn.Module, configurations: list[Configuration], frames: int, side: int,
                        num_classes: int) -> pd.DataFrame:
    """GFLOPs (fvcore, one clip), the ratio to the full configuration, Eq. 2, and parameters of each."""
    rows = []
    for configuration in tqdm(configurations, desc="fvcore per configuration", unit="config"):
        t, s = configuration.input_shape(frames, side)
        with configured(model, configuration):
            gflops = count_gflops(model, (1, 3, t, s, s))
        rows.append({"configuration": configuration.name, "frames": t, "side": s, "gflops": gflops,
                     "eq2": configuration.relative_cost,
                     "params_m": configuration_params(model, configuration, num_classes) / 1e6})
    table = pd.DataFrame(rows)
    full = table.loc[table["configuration"] == Configuration().name, "gflops"]
    table["ratio"] = table["gflops"] / (full.iloc[0] if len(full) else table["gflops"].max())
    return table.sort_values("gflops", ignore_index=True)


def step_seconds(step, steps: int) -> float:
    """Mean wall-clock of ``step()`` over ``steps`` calls, after one warm-up call."""
    step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps


def training_costs(model_name: str, frames: int, side: int, batch: int, steps: int, a3d_range) -> dict:
    """Seconds per training step (forward, backward, SGD) of A3D and of plain X3D on the same batch."""
    torch.manual_seed(0)
    videos, labels = torch.randn(batch, 3, frames, side, side), torch.randint(0, 3, (batch,))
    criterion = nn.CrossEntropyLoss()
    timings = {}
    for name, adaptive in (("plain", False), ("a3d", True)):
        model = baselines.build(model_name, num_classes=3, adaptive=adaptive).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)

        def step(model=model, optimizer=optimizer, adaptive=adaptive) -> None:
            optimizer.zero_grad()
            if adaptive:
                loss = a3d_loss(model, videos, labels, criterion, a3d_range, logits_of)[0]
            else:
                loss = criterion(model(videos), labels)
            loss.backward()
            optimizer.step()

        timings[f"{name}_step_s"] = step_seconds(step, steps)
    timings["a3d_over_plain"] = timings["a3d_step_s"] / timings["plain_step_s"]
    return timings


def run(options: Options, store: Store) -> int:
    spec = get_spec(options.row)
    if not spec.model.startswith("x3d"):
        raise UsageError(f"A3D is built on X3D; row {spec.row} ({spec.name}) is {spec.model}")
    frames, side = options.frames or spec.frames, options.res or spec.res
    a3d_range = A3D_RANGES[options.a3d_range]
    model = baselines.build(spec.model, num_classes=3, adaptive=True).eval()
    table = configuration_costs(model, grid(a3d_range), frames, side, 3)
    memory = {}
    clip = torch.zeros(1, 3, frames, side, side)
    for configuration in (Configuration(), Configuration.parse(table["configuration"].iloc[0])):
        with configured(model, configuration), torch.inference_mode():
            memory[configuration.name] = peak_memory_mb(
                model, lambda configuration=configuration: model(scale_clip(clip, configuration)), "cpu")[0]
    training = training_costs(spec.model, frames, side, options.batch_size, options.steps, a3d_range)
    record = {"experiment": "a3d-cost", "row": spec.row, "name": spec.name, "model": spec.model,
              "input": {"frames": frames, "side": side}, "a3d_range": a3d_range.name,
              "configurations": table.to_dict("records"), "peak_memory_mb": memory,
              "training": {**training, "batch_size": options.batch_size, "steps": options.steps}, **provenance("cpu")}
    path = write_json(store.new_run_path("a3d-cost", "a3d"), record)
    shown = table.assign(gflops=table["gflops"].map(lambda v: f"{v:.4f}"), ratio=table["ratio"].map("{:.3f}".format),
                         eq2=table["eq2"].map("{:.3f}".format), params_m=table["params_m"].map("{:.2f}".format))
    lines = [
        f"# A3D on {spec.name}: every configuration of the {a3d_range.name} range, measured",
        "",
        f"Input {frames} frames x {side} px; a configuration gamma_w x gamma_s x gamma_t runs the sliced network "
        "(the leading channels of every layer) on the clip cut to round(gamma_t T) frames of round(gamma_s S) px. "
        "GFLOPs: fvcore, one clip; ratio: to the full configuration; eq2: the paper's gamma_w^2 gamma_s^2 gamma_t.",
        "",
        "Peak inference memory (weights + CPU allocator peak, one clip): "
        + ", ".join(f"{name}: {mb:.0f} MiB" for name, mb in memory.items()) + ".",
        "",
        f"Training step on CPU (batch {options.batch_size}, mean of {options.steps} after a warm-up step, SGD): "
        f"plain X3D {training['plain_step_s']:.2f} s, A3D (full + 2 sub-networks, Eq. 3) "
        f"{training['a3d_step_s']:.2f} s: {training['a3d_over_plain']:.2f}x.",
        "",
        tabulate(shown, headers="keys", tablefmt="github", showindex=False, disable_numparse=True),
        "",
        provenance_line(record),
        "",
    ]
    outputs = write_text(store.root / f"a3d_configurations_{spec.model}.md", "\n".join(lines))
    print("\n".join(lines[:9]))
    print(f"wrote {outputs} and {path}")
    return 0
