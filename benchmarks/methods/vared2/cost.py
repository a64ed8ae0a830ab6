"""What VA-RED2's options cost, measured (``python -m benchmarks.run vared2-cost``): GFLOPs per option
per dynamic layer of an X3D row, by fvcore on the executed graph, next to the analytic count.

For each X3D row (default: X3D-XS and X3D-M, each at its Table 1 row's input), the model is converted as
``--method vared2`` converts it (every ``conv_a`` and ``conv_c``: ``benchmarks.engine.method.VARED2Method``).
Then, for every option (temporal factor R, channel fraction r), every dynamic layer is forced to that
option alone and fvcore counts the network once: each layer's GFLOPs is read from that count per module
and set against the analytic r/R x its full multiply-adds (Eq. 3). The gates' own GFLOPs (fvcore, as they run at
inference, whatever they choose) and the whole network at each uniform option, gates included, close the
table. Cheap operations (per-channel scale and bias) are elementwise and count zero under the suite's
convention (``benchmarks.core.counting.count_gflops``). Writes ``vared2_options.md`` and
``runs/vared2/vared2-cost-<time>.json`` with provenance.
"""

from __future__ import annotations

import dataclasses
import itertools

import pandas as pd
from tabulate import tabulate

import baselines
from baselines import vared2
from benchmarks.core.cli import UsageError
from benchmarks.core.counting import count_gflops, count_gflops_by_module
from benchmarks.core.store import Store, provenance, provenance_line, write_json, write_text
from benchmarks.methods.vared2.method import VARED2Method
from benchmarks.methods.vared2.options import CostOptions as Options  # declared in __init__: --help reads it there
from benchmarks.table1.specs import RowSpec, get_spec


def option_name(factor: int, fraction: float) -> str:
    return f"R{factor} r{fraction:g}"


def option_costs(spec: RowSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per dynamic layer and option: analytic and fvcore GFLOPs; per option: the whole network's."""
    net = baselines.build(spec.model, num_classes=3).eval()  # an X3D
    shape = (1, 3, spec.frames, spec.res, spec.res)
    plain = count_gflops(net, shape)
    VARED2Method().prepare(net, spec)
    layers = vared2.dynamic_layers(net)
    first = next(iter(layers.values()))
    rows, totals = {name: {"layer": name, "full_gflops": net.vared2_macs[name] / 1e9} for name in layers}, []
    gates = count_gflops_by_module(net, shape)  # the gates as they run at inference, whatever they choose
    for name in layers:
        rows[name]["gate_mflops"] = gates[f"{name}.gate"] * 1e3
    gates_total = sum(gates[f"{name}.gate"] for name in layers)
    for (t, factor), (c, fraction) in itertools.product(enumerate(first.temporal), enumerate(first.channel)):
        with vared2.only_option(net, t, c):  # a forced layer does not run its gate
            by_module = count_gflops_by_module(net, shape)
        option = option_name(factor, fraction)
        for name, layer in layers.items():
            rows[name][option] = by_module[name]
            rows[name][f"{option} analytic"] = net.vared2_macs[name] / 1e9 * layer.computed[c] / (
                layer.conv.out_channels * factor)
        network = by_module[""] + gates_total
        totals.append({"option": option, "network_gflops": network, "ratio_to_plain": network / plain})
    totals.append({"option": "plain X3D", "network_gflops": plain, "ratio_to_plain": 1.0})
    return pd.DataFrame(list(rows.values())), pd.DataFrame(totals)


def option_columns(layers: pd.DataFrame) -> list[str]:
    """The options' fvcore columns of :func:`option_costs`' layer table (each has an analytic twin)."""
    return [column for column in layers.columns if f"{column} analytic" in layers.columns]


def largest_deviation(layers: pd.DataFrame) -> float:
    """Largest relative difference between fvcore and the analytic count over layers and options."""
    return max(float(((layers[o] - layers[f"{o} analytic"]).abs() / layers[f"{o} analytic"]).max())
               for o in option_columns(layers))


def render(spec: RowSpec, layers: pd.DataFrame, totals: pd.DataFrame) -> list[str]:
    options = option_columns(layers)
    shown = layers[["layer", "full_gflops", *options, "gate_mflops"]]
    return [
        f"## {spec.name} (row {spec.row}), {spec.frames} frames x {spec.res} px",
        "",
        f"{len(layers)} dynamic layers; the largest difference between fvcore and r/R x full is "
        f"{100 * largest_deviation(layers):.2f} %. The gate (MFLOPs) is paid by every option.",
        "",
        tabulate(totals, headers="keys", tablefmt="github", showindex=False, floatfmt=".4f"),
        "",
        tabulate(shown, headers="keys", tablefmt="github", showindex=False,
                 floatfmt=[""] + [".5f"] * (len(options) + 1) + [".3f"]),
        "",
    ]


def run(options: Options, store: Store) -> int:
    try:
        specs = [get_spec(row) for row in options.rows]
    except ValueError as error:
        raise UsageError(f"--rows: {error}") from error
    wrong = [f"row {spec.row} ({spec.name})" for spec in specs if not spec.model.startswith("x3d")]
    if wrong:
        raise UsageError(f"VA-RED2 is converted on X3D rows only: {', '.join(wrong)}")
    record, lines = {"experiment": "vared2-cost", "rows": []}, [
        "# VA-RED2 on X3D: GFLOPs per option per dynamic layer, measured", "",
        "Option R r: the layer computes every R-th output frame and the first r C_out filters with a really "
        "reduced convolution (the rest rebuilt by per-channel scale and bias). Columns per option: fvcore's "
        "count of that layer's executed convolution (gate excluded), one clip. The whole network at each "
        "uniform option: fvcore with every dynamic layer forced to it, gates included.", ""]
    for spec in specs:
        layers, totals = option_costs(spec)
        record["rows"].append({"row": spec.row, "name": spec.name, "spec": dataclasses.asdict(spec),
                               "layers": layers.to_dict("records"), "totals": totals.to_dict("records"),
                               "largest_deviation": largest_deviation(layers)})
        lines += render(spec, layers, totals)
    record.update(provenance("cpu"))
    path = write_json(store.new_run_path("vared2-cost", "vared2"), record)
    lines += [provenance_line(record), ""]
    output = write_text(store.root / "vared2_options.md", "\n".join(lines))
    for spec, row in zip(specs, record["rows"]):
        print(f"{spec.name}: " + ", ".join(f"{t['option']} {t['network_gflops']:.4f}" for t in row["totals"]))
    print(f"wrote {output} and {path}")
    return 0
