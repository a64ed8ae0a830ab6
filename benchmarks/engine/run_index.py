"""Finding stored accuracy runs: every ``eval`` (and study evaluation) writes one JSON in the store's
``runs/``; this lists them as a table, filters them, and finds one by its file or its short id
(``benchmarks.core.store.run_id``). Read-only: nothing is built or written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmarks.core.store import Store, read_json, result_files, run_id


@dataclass(frozen=True)
class RunFilter:
    """Which runs to list; None matches everything. Text filters match case-insensitively as substrings;
    ``since``/``until`` compare ISO dates (``2026-12-03`` or a full timestamp); ``commit`` is a prefix."""

    rows: tuple[int, ...] | None = None
    method: str | None = None
    dataset: str | None = None
    weights: str | None = None
    since: str | None = None
    until: str | None = None
    commit: str | None = None

    def matches(self, run: dict) -> bool:
        date = str(run["date"])
        return ((self.rows is None or run["row"] in self.rows)
                and _contains(run_method(run), self.method)
                and _contains(run["dataset"], self.dataset)
                and _contains(run_weights(run), self.weights)
                and (self.since is None or date[:len(self.since)] >= self.since)
                and (self.until is None or date[:len(self.until)] <= self.until)
                and (self.commit is None or str(run["git_commit"]).startswith(self.commit)))


def _contains(value: str, wanted: str | None) -> bool:
    return wanted is None or wanted.lower() in str(value).lower()


def run_method(run: dict) -> str:
    return run.get("method", "standard")


def run_weights(run: dict) -> str:
    """What the run evaluated: a public checkpoint's catalogue name (marked when it came from a local file
    nobody verified), else "trained" (a checkpoint trained here)."""
    source = run.get("weights_source")
    if not source:
        return "trained"
    return source["name"] + ("*" if source.get("verified") is False else "")


def list_runs(store: Store, selection: RunFilter = RunFilter()) -> pd.DataFrame:
    """The matching runs, oldest first, one line each: id, row, model, method, data, weights, top-1,
    videos, commit and the file (under ``runs/``, named by row and UTC time: the date)."""
    runs = [run for run in store.load_runs(with_files=True) if selection.matches(run)]
    return pd.DataFrame.from_records([{
        "id": run["run_id"],
        "row": run["row"],
        "model": run.get("name", run.get("model", "")),
        "method": run_method(run),
        "data": f"{run['dataset']}/{run['split']}",
        "weights": run_weights(run),
        "top-1": f"{run['top1']:.2f}",
        "videos": str(run["videos_evaluated"]),
        "commit": str(run["git_commit"])[:7],
        "file (runs/, .json)": str(Path(run["file"]).relative_to(store.runs).with_suffix("")),
    } for run in runs], columns=["id", "row", "model", "method", "data", "weights", "top-1", "videos", "commit",
                                 "file (runs/, .json)"])


def find_run(store: Store, key: str) -> tuple[Path, dict]:
    """A run by its file (a path, or a name under ``runs/``) or its id; raises ValueError naming the choices."""
    candidates = [Path(key), store.runs / key, store.runs / f"{key}.json"]
    path = next((p for p in candidates if p.is_file() and p.suffix == ".json"), None)
    if path is None:
        matches = [p for p in result_files(store.runs, "*.json") if run_id(p).startswith(key.lower())]
        if len(matches) > 1:
            raise ValueError(f"run id {key!r} is ambiguous: {', '.join(run_id(p) for p in matches)}")
        if not matches:
            raise ValueError(f"no stored run {key!r} in {store.runs} (`python -m benchmarks.run runs` lists them)")
        path = matches[0]
    return path, read_json(path)


SUMMARY_FIELDS = ("row", "name", "model", "method", "dataset", "split", "data_root", "protocol", "accuracy_unit",
                  "top1", "top5", "top5_k", "videos_evaluated", "videos_skipped_total", "classes", "unknown_classes",
                  "gflops", "params", "peak_memory_mb", "checkpoint", "checkpoint_sha256", "weights", "deviations",
                  "per_class_csv", "per_video_csv", "command", "git_commit", "hardware", "torch", "date")


def summary_lines(path: Path, run: dict) -> list[str]:
    """One run's summary, ``field: value`` per line, the fields a reader asks first."""
    lines = [f"run {run_id(path)}: {path}"]
    for field in SUMMARY_FIELDS:
        if field in run:
            lines.append(f"  {field}: {run[field]}")
    if run.get("weights_source"):
        lines.append(f"  weights source: {run_weights(run)} ({_source_line(run['weights_source'])})")
    return lines


def _source_line(source: dict) -> str:
    if source.get("verified") is False:
        return f"local file, sha256 {source['sha256']}, not verified against a published hash"
    return f"sha256 {source['sha256']}, {source.get('label', 'public weights')}"
