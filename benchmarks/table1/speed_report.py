"""``results/speed.md`` and the latency column of Table 1, from stored ``speed`` runs only (no model is
built here): per row, latency per video and per frame, state size and throughput, next to the measured
GFLOPs, and the pairs of rows that CPU latency orders differently from GFLOPs."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from benchmarks.core.store import Store, provenance_line, read_json, write_text

SUBFOLDER = "speed"
REPORT = "speed.md"


def speed_runs(store: Store, experiment: str = "speed") -> list[dict]:
    """Every stored run of ``experiment`` ("speed", or "peers" for ``speed --peers``), oldest first, each
    with its ``path``."""
    paths = sorted((store.runs / SUBFOLDER).glob(f"{experiment}-*.json"))
    return [{**read_json(path), "path": str(path)} for path in paths]


def setting_of(run: dict) -> str:
    config = run["config"]
    extras = [name for name in ("channels_last", "amp", "fold_bn", "profile") if config.get(name)]
    return (f"{config['device']}, {config['threads']} thread{'s' if config['threads'] > 1 else ''}, "
            f"{config['backend']}" + "".join(f", {name.replace('_', '-')}" for name in extras))


def latest_by_setting(runs: list[dict]) -> dict[str, dict]:
    """The newest run of every setting (device, threads, backend, layout, AMP, folding)."""
    latest: dict[str, dict] = {}
    for run in runs:
        latest[setting_of(run)] = run
    return latest


def rows_table(run: dict, gflops: dict[int, float] | None = None) -> pd.DataFrame:
    records = []
    for row in run["rows"]:
        video, frame = row["latency_per_video_ms"], row.get("latency_per_frame_ms")
        record = {"row": row["row"], "model": row["name"], "GFLOPs": (gflops or {}).get(row["row"]),
                  "ms/video": video["median"], "IQR": video["iqr"], "views": row["input"]["views"],
                  "ms/frame": frame["median"] if frame else None,
                  "state KiB": row["state_bytes"] / 1024 if "state_bytes" in row else None,
                  "timed": video["n"]}
        for batch, value in row["throughput"].items():
            record[f"videos/s @{batch}"] = value["videos_per_s"]
        records.append(record)
    table = pd.DataFrame(records).sort_values("row").reset_index(drop=True)
    return table.astype(object).where(table.notna(), None)  # blank cells, not "nan", where a row has none


def rank_differences(table: pd.DataFrame) -> list[str]:
    """Pairs of rows where more GFLOPs take less time (or fewer GFLOPs more), by ms per video."""
    known = table[table["GFLOPs"].notna()]
    lines = []
    for (_, a), (_, b) in combinations(known.iterrows(), 2):
        cheaper, dearer = (a, b) if a["GFLOPs"] < b["GFLOPs"] else (b, a)
        if cheaper["GFLOPs"] < dearer["GFLOPs"] and cheaper["ms/video"] > dearer["ms/video"]:
            lines.append(f"- row {cheaper['row']} {cheaper['model']} ({cheaper['GFLOPs']:.3g} GFLOPs) takes "
                         f"{cheaper['ms/video']:.4g} ms per video, row {dearer['row']} {dearer['model']} "
                         f"({dearer['GFLOPs']:.3g} GFLOPs) {dearer['ms/video']:.4g} ms")
    return lines


def measured_gflops(store: Store, device: str = "cpu") -> dict[int, float]:
    return {record["row"]: record["gflops"] for record in store.load_measurements() if record["device"] == device}


def render(run: dict, gflops: dict[int, float]) -> str:
    table = rows_table(run, gflops)
    load = run["load"]
    warning = (f"\n**The machine was loaded** (1-minute load {load['before']:.2f} before, {load['after']:.2f} after, "
               f"on {load['cores']} usable cores): these times are slower than an idle machine's.\n"
               if load["overloaded"] else "")
    differences = rank_differences(table)
    order = ("\nRows that time orders differently from GFLOPs (fewer GFLOPs, more milliseconds):\n\n"
             + "\n".join(differences) + "\n") if differences else "\nTime orders the rows as GFLOPs do.\n"
    software = run["software"]
    return (f"### {setting_of(run)}\n\n"
            f"Median over timed calls after {run['config']['warmup']} warm-up calls (IQR: interquartile range, "
            "ms); ms/video = one clip's latency x views; videos/s at batch B = B / (ms per call x views). "
            f"torch {software['torch']}, oneDNN {software.get('onednn')}; load {load['before']:.2f} -> "
            f"{load['after']:.2f} on {load['cores']} cores.\n{warning}\n"
            + tabulate(table, headers="keys", tablefmt="github", floatfmt=".4g", showindex=False, missingval="")
            + "\n" + order + profile_lines(run) + "\n" + provenance_line(run)
            + f" Stored: `{Path(run['path']).name}`.\n")


def peers_table(run: dict) -> pd.DataFrame:
    records = []
    for row in run["rows"]:
        record = {"architecture": row["peer"], "ours": row["ours"], "peer package": row["package"]}
        if "unavailable" in row:
            record["ours / peer"] = f"not timed: {row['unavailable'].split(';')[0]}"
        else:
            ratio = row["ratio"]
            record.update({"input": f"{row['input']['frames']}x{row['input']['res']}",
                           "ours ms": row["ours_ms"]["median"], "peer ms": row["peer_ms"]["median"],
                           "ours / peer": f"{ratio['median']:.2f} [{ratio['q1']:.2f}, {ratio['q3']:.2f}]",
                           "pairs": ratio["n"]})
        records.append(record)
    return pd.DataFrame(records)


def profile_text(profile: list[dict]) -> str:
    """``op share% (calls x)`` of the top operators of one call."""
    return "; ".join(f"`{entry['op']}` {100 * entry['share']:.0f} % ({entry['calls']}x)" for entry in profile)


def profile_lines(run: dict) -> str:
    """Where one call's time goes, per row or pair (runs made with ``--profile``)."""
    lines = []
    for row in run["rows"]:
        if "profile" in row:
            lines.append(f"- row {row['row']} {row['name']}: {profile_text(row['profile'])}")
        if "ours_profile" in row:
            lines.append(f"- {row['peer']}, ours: {profile_text(row['ours_profile'])}")
            lines.append(f"- {row['peer']}, peer: {profile_text(row['peer_profile'])}")
    if not lines:
        return ""
    return ("\nWhere one call's time goes (torch.profiler, own CPU time of the top operators, share of the call; "
            "stream rows: one frame):\n\n" + "\n".join(lines) + "\n")


def render_peers(run: dict) -> str:
    load = run["load"]
    return (f"### Against the public implementations: {setting_of(run)}\n\n"
            "`python -m benchmarks.run speed --peers`: each pair called alternately on the same input (stream "
            "rows: one frame on a warm state; MobileNetV3: the clip's frames as a batch); ours / peer is the "
            f"median [q1, q3] of the per-pair ratios. Load {load['before']:.2f} -> {load['after']:.2f} on "
            f"{load['cores']} cores.\n\n"
            + tabulate(peers_table(run), headers="keys", tablefmt="github", floatfmt=".4g", showindex=False,
                       missingval="")
            + "\n" + profile_lines(run) + "\n" + provenance_line(run) + f" Stored: `{Path(run['path']).name}`.\n")


def write_report(store: Store) -> list[Path]:
    """``speed.md`` from the newest run of every setting; nothing when no run is stored."""
    latest = latest_by_setting(speed_runs(store))
    peers = latest_by_setting(speed_runs(store, "peers"))
    if not latest and not peers:
        return []
    gflops = measured_gflops(store)
    text = ("# Time on this machine: `python -m benchmarks.run speed`\n\n"
            "Generated from the stored speed runs (`results/runs/speed/`); absolute times hold for the hardware "
            "named under each table only. GFLOPs: the Table 1 measurement (`table1`).\n\n"
            + "\n".join(render(run, gflops) for run in latest.values())
            + "\n".join(render_peers(run) for run in peers.values()))
    return [write_text(store.root / REPORT, text)]


def latency_column(store: Store) -> tuple[str, dict[int, float]] | None:
    """Table 1's latency column: ms per video from the newest eager CPU run (its thread count in the
    column's name), or None when there is none."""
    runs = [run for run in speed_runs(store) if run["config"]["device"] == "cpu"
            and run["config"]["backend"] == "eager" and not run["config"].get("amp")]
    if not runs:
        return None
    run = runs[-1]
    threads = run["config"]["threads"]
    values = {row["row"]: row["latency_per_video_ms"]["median"] for row in run["rows"]}
    return f"CPU ms/video ({threads} thread{'s' if threads > 1 else ''})", values
