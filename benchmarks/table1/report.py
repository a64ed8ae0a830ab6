"""Tables and figures of Table 1 from stored results only (no model is built here).

Published numbers come from the specs (``results/published/table1.csv``); measured GFLOPs, parameters
and memory from the store's ``measured/``; reproduced accuracy from its ``runs/``, and only from runs
on Kinetics-600: runs on other data (the synthetic airplanes of the CPU proxy, toy test data) never
appear in Table 1; the proxy has its own table (``proxy_table1.md``). Long status text goes to numbered
footnotes under the table, so the table fits a terminal. A run of public weights (``eval --weights
NAME``) is shown like any other Kinetics-600 run; its footnote names the weights and their sha256.

A run's ``protocol`` (``benchmarks.table1.protocols``) is named with its top-1: ``suite`` is the row's own
per-video protocol; ``authors`` is the GRW authors' per-clip one (every N-frame clip of a video one
sample, square resize), whose top-1 is over clips; runs written before protocols existed are ``suite``.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from tabulate import tabulate  # noqa: E402

from benchmarks.core.plots import save_figure  # noqa: E402
from benchmarks.core.store import DEFAULT_SETTING, Store, write_csv, write_text  # noqa: E402
from benchmarks.table1 import ledger, speed_report  # noqa: E402
from benchmarks.table1.specs import all_specs  # noqa: E402

KINETICS = "kinetics600"
TERMINAL_WIDTH = 120
DEVICE_PREFERENCE = ("cpu", "cuda")  # the main columns: the CPU measurement, which every checkout can make


def _preferred_measurements(measurements: list[dict]) -> dict[int, dict]:
    by_row: dict[int, dict] = {}
    for m in measurements:
        current = by_row.get(m["row"])
        rank = DEVICE_PREFERENCE.index(m["device"]) if m["device"] in DEVICE_PREFERENCE else len(DEVICE_PREFERENCE)
        if current is None or rank < DEVICE_PREFERENCE.index(current["device"]):
            by_row[m["row"]] = m
    return by_row


def _cuda_measurements(measurements: list[dict]) -> dict[int, dict]:
    """The CUDA measurement of each row that has one (its peak memory is a column of its own)."""
    return {m["row"]: m for m in measurements if m["device"].startswith("cuda")}


def _latest_runs(runs: list[dict]) -> dict[int, dict]:
    """The newest Kinetics-600 run per row; runs on other data are not Table 1 results.

    A run with GRW switched the other way than in its row is an ablation (a GRW row's head trained
    without the loss, a baseline with GRW taps), not the row's result: it is left out, as is a run at
    another setting of its method (one A3D configuration, ``eval --config``).
    """
    grw_rows = {spec.row for spec in all_specs() if spec.grw}
    latest: dict[int, dict] = {}
    for run in runs:  # oldest first
        if (run["dataset"] == KINETICS and run.get("grw", run["row"] in grw_rows) == (run["row"] in grw_rows)
                and run.get("setting", DEFAULT_SETTING) == DEFAULT_SETTING):
            latest[run["row"]] = run
    return latest


def run_protocol(run: dict) -> str:
    """How a run's top-1 was measured, for tables: per video (the suite's) or per clip (the authors')."""
    if run.get("protocol", "suite") != "authors":
        return "the suite's per-video protocol"
    clips, used = run.get("clips", {}), run.get("input", {})
    counts = f"; {clips['evaluated']} clips from {clips['videos']} videos" if clips else ""
    shape = (f", every {used['frames']}-frame clip at {used['fps']:g} fps, {used['resize']}x{used['resize']} resize, "
             f"{used['crop']} crop" if {"frames", "fps", "resize", "crop"} <= set(used) else "")
    return f"the GRW authors' per-clip protocol (top-1 over clips{shape}{counts})"


def build_table(store: Store | None = None, measurements: list[dict] | None = None,
                runs: list[dict] | None = None) -> pd.DataFrame:
    """One row per Table 1 row: published vs measured vs reproduced, with the status of each."""
    store = store or Store.default()
    measurements = store.load_measurements() if measurements is None else measurements
    measured, cuda = _preferred_measurements(measurements), _cuda_measurements(measurements)
    reproduced = _latest_runs(store.load_runs() if runs is None else runs)
    latency = speed_report.latency_column(store)
    records = []
    for spec in all_specs():
        m = measured.get(spec.row)
        run = reproduced.get(spec.row)
        gflops = m["gflops"] if m else None
        if not spec.implemented:
            status = f"published only ({spec.not_implemented_reason})"
        elif m is None:
            status = "not measured yet"
        elif run is None:
            status = "measured; no Kinetics-600 accuracy run (published top-1 shown)"
        else:
            status = f"measured; top-1 reproduced on Kinetics-600 under {run_protocol(run)}"
        if run is not None and run.get("weights_source"):
            source = run["weights_source"]
            status += (f"; {source.get('label', 'public weights, evaluated here')}: {source['name']} "
                       f"(sha256 {source['sha256'][:12]}, {source['converter']} v{source['converter_version']})")
        if run is not None and run.get("deviations"):
            status += f"; that run deviates from the row's spec ({', '.join(sorted(run['deviations']))})"
        if m is not None and abs(m["gflops"] / spec.published_gflops - 1) * 100 > ledger.GAP_PCT:
            status += "; GFLOPs gap, cause in flop_ledger.md" if ledger.stated_cause(spec.row) else "; GFLOPs gap"
        records.append(
            {
                "row": spec.row,
                "model": spec.name,
                "grw": "yes" if spec.grw else "",
                "published_top1": spec.published_top1,
                "reproduced_top1": run["top1"] if run else None,
                "reproduced_dataset": run["dataset"] if run else None,
                "reproduced_videos": run["videos_evaluated"] if run else None,
                "reproduced_protocol": run.get("protocol", "suite") if run else None,
                "reproduced_deviates": bool(run and run.get("deviations")),
                "reproduced_weights": (_weights_name(run["weights_source"]) if run and run.get("weights_source")
                                       else None),
                "published_gflops": spec.published_gflops,
                "measured_gflops": gflops,
                "delta_pct": 100.0 * (gflops / spec.published_gflops - 1.0) if gflops is not None else None,
                "params_m": m["params"] / 1e6 if m else None,
                "peak_memory_mb": m["peak_memory_mb"] if m else None,
                "memory_device": m["device"] if m else None,
                "res": spec.res,
                "clips_x_frames": f"{spec.views} x {spec.frames}",
                "implemented": spec.implemented,
                "status": status,
                **({"latency_ms": latency[1].get(spec.row), "latency_setting": latency[0]} if latency else {}),
                **({"peak_memory_mb_cuda": cuda[spec.row]["peak_memory_mb"] if spec.row in cuda else None,
                    "cuda_hardware": cuda[spec.row].get("hardware", "a CUDA GPU") if spec.row in cuda else None}
                   if cuda else {}),
            }
        )
    return pd.DataFrame.from_records(records)


def _weights_name(source: dict) -> str:
    """Public weights by catalogue name, marked when nobody verified the bytes against a published hash."""
    return source["name"] + (" (unverified)" if source.get("verified") is False else "")


def _fmt(value, digits: int = 1, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}{suffix}"


def display_table(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Human-readable columns (every missing number shows as '-', deltas signed), narrow enough for
    a 120-column terminal, and the numbered footnotes its ``notes`` column refers to."""
    footnotes: dict[str, int] = {}

    def note(status: str) -> str:
        return f"[{footnotes.setdefault(status, len(footnotes) + 1)}]"

    shown = pd.DataFrame(
        {
            "#": table["row"],
            "model": table["model"],
            "GRW": table["grw"],
            "top-1\npub": table["published_top1"].map(_fmt),
            "top-1\nK600": [
                "-" if pd.isna(top1) else f"{top1:.1f}{'*' if deviates else ''}"
                for top1, deviates in zip(table["reproduced_top1"], table["reproduced_deviates"])
            ],
            "GFLOPs\npub": table["published_gflops"].map(lambda v: f"{v:g}"),
            "GFLOPs\nmeasured": table["measured_gflops"].map(lambda v: _fmt(v, 2)),
            "delta": table["delta_pct"].map(lambda v: "-" if pd.isna(v) else f"{v:+.1f}%"),
            "params\n(M)": table["params_m"].map(lambda v: _fmt(v, 2)),
            "memory\n(MB)": [
                "-" if pd.isna(mb) else f"{mb:.0f} {device}"
                for mb, device in zip(table["peak_memory_mb"], table["memory_device"])
            ],
            "input": [f"{views_frames.replace(' ', '')}x{res}"
                      for views_frames, res in zip(table["clips_x_frames"], table["res"])],
            "notes": table["status"].map(note),
        }
    )
    if "peak_memory_mb_cuda" in table:
        shown.insert(shown.columns.get_loc("input"), "memory\nCUDA (MB)",
                     table["peak_memory_mb_cuda"].map(lambda v: _fmt(v, 0)))
    if "latency_ms" in table:
        setting = table["latency_setting"].dropna().iloc[0]
        shown.insert(shown.columns.get_loc("input"), setting.replace(" (", "\n("),
                     table["latency_ms"].map(lambda v: _fmt(v, 0)))
    return shown, [f"[{number}] {status}" for status, number in footnotes.items()]


def render_table(table: pd.DataFrame, tablefmt: str = "github") -> str:
    """The table and its footnotes as text (``github`` markdown, or ``simple`` for a terminal)."""
    shown, footnotes = display_table(table)
    if tablefmt == "github":  # markdown has no multi-line headers
        shown.columns = [name.replace("\n", " ") for name in shown.columns]
    legend = ("Input: clips x frames x side. top-1 K600: reproduced on Kinetics-600 by a stored run ('*': that run "
              "deviates from the row's spec, see its note); '-': no such run, nothing claimed.")
    if "latency_ms" in table:
        legend += (" CPU ms/video: median latency of one video's inference, the newest eager CPU run of "
                   "`python -m benchmarks.run speed` (speed.md).")
    if "cuda_hardware" in table:
        gpus = sorted(set(table["cuda_hardware"].dropna()))
        legend += f" memory CUDA: torch.cuda.max_memory_allocated on {', '.join(gpus)} (`table1 --device cuda`)."
    lines = [tabulate(shown, headers="keys", tablefmt=tablefmt, showindex=False, disable_numparse=True), ""]
    for text in [*footnotes, "", legend]:
        lines += textwrap.wrap(text, width=TERMINAL_WIDTH, subsequent_indent="    ") or [""]
    return "\n".join(lines)


def render_markdown(table: pd.DataFrame) -> str:
    notes = [
        "# Table 1: Kinetics-600 by GFLOPs (published vs measured by grw-bench)",
        "",
        "Published columns: Goldman et al., NeurIPS 2025, Table 1 (`results/published/table1.csv`).",
        "Measured columns: `python -m benchmarks.run table1` (fvcore multiply-adds of convolutions and",
        "linear layers per video, all views; parameters; peak memory of one video's inference, stream",
        "rows fed frame by frame). Reproduced top-1 only from stored Kinetics-600 runs in `results/runs/`;",
        "'-' means no run exists and nothing is claimed. Runs on the synthetic airplanes (the CPU proxy of",
        "this table, `python -m benchmarks.run proxy`) are in [proxy_table1.md](proxy_table1.md).",
        "",
        render_table(table),
        "",
    ]
    notes += ["Every GFLOPs gap over 2% to the published figure, its stated cause and the measured evidence are in "
              "[flop_ledger.md](flop_ledger.md) (both counters per row).", ""]
    return "\n".join(notes)


def write_tables(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    md, csv = out_dir / "table1.md", out_dir / "table1.csv"
    write_text(md, render_markdown(table))
    write_csv(csv, table)
    return [md, csv]


# ----------------------------------------------------------------------------- the Pareto figure


def plot_points(table: pd.DataFrame) -> pd.DataFrame:
    """What the figure plots: best available accuracy (reproduced on Kinetics-600 with the row's own
    inputs, else published) and GFLOPs (measured, else published), with where each came from."""
    reproduced = ((table["reproduced_dataset"] == KINETICS) & table["reproduced_top1"].notna()
                  & ~table["reproduced_deviates"].astype(bool))
    measured = table["measured_gflops"].notna()
    return pd.DataFrame(
        {
            "row": table["row"],
            "model": table["model"],
            "grw": table["grw"] == "yes",
            "top1": table["reproduced_top1"].where(reproduced, table["published_top1"]).astype(float),
            "top1_source": reproduced.map({True: "reproduced", False: "published"}),
            "gflops": table["measured_gflops"].where(measured, table["published_gflops"]).astype(float),
            "gflops_source": measured.map({True: "measured", False: "published"}),
        }
    )


def flops_ratio(points: pd.DataFrame) -> dict | None:
    """The figure's arrow: from the most accurate GRW row to the cheapest non-GRW row that is at
    least as accurate; when no other row reaches it, to the most accurate non-GRW row (which then
    still falls short of the GRW row, and the label says so)."""
    grw, others = points[points["grw"]], points[~points["grw"]]
    if grw.empty or others.empty:
        return None
    best = grw.loc[grw["top1"].idxmax()]
    as_good = others[others["top1"] >= best["top1"]]
    target = as_good.loc[as_good["gflops"].idxmin()] if not as_good.empty else others.loc[others["top1"].idxmax()]
    return {
        "from_row": int(best["row"]),
        "to_row": int(target["row"]),
        "ratio": float(target["gflops"] / best["gflops"]),
        "reaches": bool(target["top1"] >= best["top1"]),
    }


def plot_pareto(table: pd.DataFrame, out_dir: Path, title: str = "Kinetics-600") -> list[Path]:
    """Top-1 vs GFLOPs (log2 x axis) in the style of the paper's figure; returns the files written."""
    fig = pareto_figure(plot_points(table), f"{title}: top-1 vs GFLOPs (numbers = Table 1 rows)")
    return save_figure(fig, [out_dir / "k600_flops.png", out_dir / "k600_flops.svg"])


def pareto_figure(points: pd.DataFrame, title: str, xlabel: str = "GFLOPs per video (log2)",
                  arrow: bool = True, join_grw: bool = True, x_name: str = "GFLOPs") -> plt.Figure:
    """The Pareto figure of ``points`` (the columns of ``plot_points``; an optional ``label`` column
    names the points, else their row number): the FLOPs-ratio arrow unless ``arrow=False``, a line
    through the GRW points unless ``join_grw=False``."""
    fig, ax = plt.subplots(figsize=(9, 6))
    for is_grw, colour, label in ((False, "tab:blue", "other models"), (True, "tab:red", "GRW-smoothing")):
        group = points[points["grw"] == is_grw].sort_values("gflops")
        if is_grw and join_grw and len(group) > 1:
            ax.plot(group["gflops"], group["top1"], color=colour, lw=1.5, zorder=1)
        # marker: where the accuracy comes from; fill: where the GFLOPs come from
        for (top1_source, gflops_source), subset in group.groupby(["top1_source", "gflops_source"]):
            marker = "*" if top1_source == "reproduced" else "o"
            ax.scatter(subset["gflops"], subset["top1"], marker=marker, s=110 if marker == "*" else 40, zorder=2,
                       edgecolors=colour, facecolors=colour if gflops_source == "measured" else "none",
                       label=f"{label}: {top1_source} top-1, {gflops_source} {x_name}")
    for _, p in points.iterrows():
        ax.annotate(str(p.get("label", p["row"])), (p["gflops"], p["top1"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8, color="tab:red" if p["grw"] else "tab:blue")
    arrow = flops_ratio(points) if arrow else None
    if arrow:
        start = points[points["row"] == arrow["from_row"]].iloc[0]
        end = points[points["row"] == arrow["to_row"]].iloc[0]
        ax.annotate("", xy=(end["gflops"], start["top1"]), xytext=(start["gflops"], start["top1"]),
                    arrowprops=dict(arrowstyle="<->", color="black", lw=1.2))
        mid = math.sqrt(start["gflops"] * end["gflops"])
        shortfall = start["top1"] - end["top1"]
        qualifier = "" if arrow["reaches"] else f" (row {arrow['to_row']} is {shortfall:.1f} pp below)"
        ax.text(mid, start["top1"] + 0.4, f"x{arrow['ratio']:.1f} FLOPs{qualifier}", ha="center", fontsize=10)
    ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Top-1 accuracy (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_latency(table: pd.DataFrame, out_dir: Path, title: str = "Kinetics-600") -> list[Path]:
    """Top-1 vs measured latency per video (log2 x axis), next to the GFLOPs figure; nothing when no
    speed run is stored."""
    if "latency_ms" not in table or table["latency_ms"].isna().all():
        return []
    points = plot_points(table)
    points["gflops"] = table["latency_ms"]
    points = points.dropna(subset=["gflops"])
    setting = table["latency_setting"].dropna().iloc[0]
    fig = pareto_figure(points, f"{title}: top-1 vs measured latency (numbers = Table 1 rows)",
                        xlabel=f"{setting}, log2 (python -m benchmarks.run speed)", arrow=False,
                        x_name="latency")
    return save_figure(fig, [out_dir / "k600_latency.png"])


def write_all(store: Store, table: pd.DataFrame | None = None) -> list[Path]:
    """Tables and figures from whatever is stored (or ``table``); what ``figures`` and ``table1`` end with."""
    table = build_table(store) if table is None else table
    return (write_tables(table, store.root) + ledger.write(store) + plot_pareto(table, store.root)
            + plot_latency(table, store.root))
