"""Dynamic models counted on the path they really executed (``benchmarks.core.counting.dispatch_count``:
FlopCounterMode at the dispatcher) against the suite's own figures: VA-RED2's analytic per-video GFLOPs
(what evaluation records) and, for A3D, fvcore's count of the narrow X3D each configuration is equivalent to."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import baselines
from baselines import vared2
from benchmarks.core.counting import count_gflops, dispatch_count
from benchmarks.methods.a3d.model import A3D_RANGES, FULL, Configuration, configured, grid, narrow_x3d, scale_clip
from benchmarks.methods.vared2.method import VARED2Method
from benchmarks.table1.specs import get_spec

pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- VA-RED2


def gate_gmacs(model: torch.nn.Module) -> float:
    """Multiply-adds of every dynamic layer's gate for one video: its two linear layers (FC on the C_in x T
    pooled values, FC to one weight per option). The suite's per-video figure leaves them out
    (``vared2.spent_gflops``: "gates and cheap operations excluded"); they run on every video whatever it chooses."""
    return sum(layer.gate.fc1.in_features * layer.gate.fc1.out_features
               + layer.gate.fc2.in_features * layer.gate.fc2.out_features
               for layer in vared2.dynamic_layers(model).values()) / 1e9


@pytest.mark.parametrize("frames", [8, 5])  # 5: R = 2 computes frames 0, 2, 4, i.e. 3/5 of them, not 1/2
def test_vared2_each_video_executes_the_gflops_evaluation_records(frames):
    spec = dataclasses.replace(get_spec(5), frames=frames, res=32)  # X3D-XS, small input
    torch.manual_seed(0)
    model = baselines.build(spec.model, num_classes=3).eval()
    method = VARED2Method()
    method.prepare(model, spec)  # every conv_a and conv_c dynamic, as --method vared2 converts it
    with torch.no_grad():  # gate biases (R1, R2, r1, r0.5): R = 1 and r = 1 on or off by the video, the others on
        for layer in vared2.dynamic_layers(model).values():
            layer.gate.fc2.bias.copy_(torch.tensor([0.0, 1.0, 0.0, 1.0]))
    method.predict(model, torch.zeros(1, 3, frames, 32, 32))  # the static layers' fvcore count, outside the counter
    gates = gate_gmacs(model)
    torch.manual_seed(1)
    counted, analytic, paths = [], [], set()
    for i in range(3):
        video = torch.randn(1, 3, frames, 32, 32) * (1 + i) + 0.3 * i
        predicted = []
        count = dispatch_count(lambda video=video, predicted=predicted: predicted.append(method.predict(model, video)))
        _, extras = predicted[0]
        counted.append(count["gmacs"])
        analytic.append(float(extras["gflops"][0]))  # what evaluation writes to the per-video CSV
        paths.add(tuple(float(value[0]) for name, value in extras.items() if name != "gflops"))
    assert len(paths) == 3 and len(set(analytic)) == 3  # each video took its own path through the gates
    # FlopCounterMode on the executed run = the analytic figure + the gates' linear layers, nothing else
    # (float32 per-layer fractions: agreement to ~1e-7)
    assert counted == pytest.approx([a + gates for a in analytic], rel=1e-6)

    full = model.vared2_static_gflops + sum(model.vared2_macs.values()) / 1e9  # every layer at R = 1, r = 1
    assert max(analytic) < full  # every video's gates skipped some work


# --------------------------------------------------------------------------- A3D


def representative(name: str) -> list[Configuration]:
    """Configurations of a range's grid in which every width, side and frames value appears, plus the cheapest
    and the full one (the whole grid, 96 + 45, agrees as well but takes ~50 s on a busy 2-core machine)."""
    a3d_range = A3D_RANGES[name]
    spatial, temporal = a3d_range.spatial, a3d_range.temporal
    chosen = [Configuration(width, spatial[i % len(spatial)], temporal[(i + 1) % len(temporal)])
              for i, width in enumerate(a3d_range.eval_widths)]
    chosen += [Configuration(a3d_range.eval_widths[0], spatial[0], temporal[0]), FULL]
    assert set(chosen) <= set(grid(a3d_range))
    return chosen


@pytest.mark.parametrize("range_name", list(A3D_RANGES))
def test_a3d_configuration_executes_the_flops_of_its_narrow_x3d(range_name):
    frames, side = 8, 32
    with torch.device("meta"):  # shapes only: the slimmable network run at each configuration
        model = baselines.build("x3d_xs", num_classes=3, adaptive=True).eval()
        clip = torch.zeros(1, 3, frames, side, side)
    counts = {}
    for configuration in representative(range_name):
        with configured(model, configuration):
            executed = dispatch_count(lambda configuration=configuration: model(scale_clip(clip, configuration)))
        t, s = configuration.input_shape(frames, side)
        narrow = count_gflops(narrow_x3d(model.config, configuration, 3), (1, 3, t, s, s))
        assert executed["gmacs"] == pytest.approx(narrow, rel=1e-9), configuration.name
        counts[configuration.name] = narrow
    assert len(set(counts.values())) == len(counts)  # every configuration a different network or input
