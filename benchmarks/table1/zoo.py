"""Every model of the zoo against its published GFLOPs and parameters (not Table 1 rows: one clip at
each model's standard input, parameters with the classifier size they were published with).

Reads results/published/models.csv; writes results/model_zoo.md and results/model_zoo.csv. Each model is
counted by both of the suite's counters (fvcore's trace, whose convention count is the GFLOPs column, and
torch's FlopCounterMode) and cached in the store's ``measured/zoo/`` under a key made by the rule of
Table 1 rows (the input, the model as built, the counting code): a second run only re-renders, and
``--refresh`` counts again.
"""

from __future__ import annotations

import sys
import textwrap
import time

import pandas as pd
from tabulate import tabulate
from tqdm import tqdm

from benchmarks.core.counting import count_params, dispatch_count_model, fvcore_count
from benchmarks.core.paths import published_dir
from benchmarks.core.store import Store, provenance, read_json, write_json

WIDTH = 120


def load_published_models() -> pd.DataFrame:
    return pd.read_csv(published_dir() / "models.csv")


def _fields(ref) -> dict:
    return {"model": ref.model, "frames": int(ref.frames), "res": int(ref.res), "classes": int(ref.param_classes)}


def _build(fields: dict):
    import baselines

    return baselines.build(fields["model"], num_classes=fields["classes"])


def zoo_key(ref) -> str:
    """The key of a zoo model's stored count (``measure.count_key``)."""
    from benchmarks.table1.measure import count_key

    fields = _fields(ref)
    return count_key(fields, lambda: _build(fields), count_model)


def count_model(fields: dict) -> dict:
    """Both counters and the parameters of one zoo model at its published input."""
    shape = (1, 3, fields["frames"], fields["res"], fields["res"])
    model = _build(fields).eval()
    fv = fvcore_count(model, shape)
    return {"gflops": fv["gmacs"], "params": count_params(model),
            "counters": {"fvcore": fv, "FlopCounterMode": dispatch_count_model(lambda: _build(fields), shape)}}


def measure_model(ref, command: str | None = None) -> dict:
    """:func:`count_model` with its key and provenance: the record stored in ``measured/zoo/``."""
    started = time.perf_counter()
    fields = _fields(ref)
    return {
        **fields, **count_model(fields), "key": zoo_key(ref), "seconds": round(time.perf_counter() - started, 2),
        **provenance("cpu"), **({"command": command} if command else {}),
    }


def record_path(store: Store, model: str):
    return store.measured / "zoo" / f"{model}.json"


def measure_models(published: pd.DataFrame, store: Store, refresh: bool = False,
                   command: str | None = None) -> list[dict]:
    """The stored record of each model of ``published``, counting those without a fresh one."""
    records, todo = {}, []
    for ref in published.itertuples():
        path = record_path(store, ref.model)
        record = read_json(path) if path.exists() and not refresh else None
        if record is not None and record.get("key") == zoo_key(ref):
            records[ref.model] = record
        else:
            todo.append(ref)
    if len(todo) < len(published):
        print(f"{len(published) - len(todo)} model(s) already counted with this code (cached; --refresh counts again)",
              file=sys.stderr)
    for ref in tqdm(todo, desc="model zoo", unit="model", file=sys.stderr, disable=not todo):
        records[ref.model] = measure_model(ref, command)
        write_json(record_path(store, ref.model), records[ref.model])
    return [records[model] for model in published["model"]]


def zoo_table(published: pd.DataFrame, records: list[dict]) -> pd.DataFrame:
    rows = []
    for ref, record in zip(published.itertuples(), records):
        gflops, params_m = record["gflops"], record["params"] / 1e6
        rows.append({
            "model": ref.model,
            "input": f"{ref.frames}x{ref.res}",
            "pub": ref.gflops,
            "fvcore": round(gflops, 3),
            "FCM": round(record["counters"]["FlopCounterMode"]["gmacs"], 3),
            "delta": f"{100 * (gflops / ref.gflops - 1):+.1f}%",
            "params pub": "-" if pd.isna(ref.params_m) else ref.params_m,
            "params": round(params_m, 3),
            "p delta": "-" if pd.isna(ref.params_m) else f"{100 * (params_m / ref.params_m - 1):+.1f}%",
            "cls": int(ref.param_classes),
            "source": ref.source,
        })
    return pd.DataFrame.from_records(rows)


def render(table: pd.DataFrame, records: list[dict]) -> str:
    commits = sorted({r["git_commit"][:12] for r in records})
    dates = sorted(r["date"][:10] for r in records)
    hardware = sorted({r["hardware"] for r in records})
    intro = (f"Counted by `python -m benchmarks.run zoo` (stored in measured/zoo/) at commit(s) {', '.join(commits)} "
             f"on {', '.join(hardware)}, {dates[0]} to {dates[-1]}. GFLOPs: multiply-adds of convolutions and "
             "linear layers, one clip, by fvcore (the suite's convention) and by torch's FlopCounterMode; delta: "
             "fvcore against the published figure (pub); FCM: FlopCounterMode; params in millions, with a "
             "classifier of cls classes. Gaps and their causes for the Table 1 rows: flop_ledger.md.")
    sources = "Sources: " + "; ".join(f"{m}: {s}" for m, s in zip(table["model"], table["source"]))
    return "\n".join([
        "# Model zoo: measured vs published GFLOPs and parameters",
        "",
        *textwrap.wrap(intro, WIDTH),
        "",
        tabulate(table.drop(columns="source"), headers="keys", tablefmt="github", showindex=False),
        "",
        *textwrap.wrap(sources, WIDTH, subsequent_indent="    "),
        "",
    ])
