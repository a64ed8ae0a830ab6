"""Public checkpoints (``python -m benchmarks.run weights list|download|import``); library:
``benchmarks.engine.public_weights``.

``list``: every catalogued checkpoint: registry model, the Table 1 rows it evaluates as (and, marked
``init``, the rows it only initialises), training data, published top-1, size and integrity data,
source URL. ``download NAME...``: fetch into the cache (default ``~/.cache/grw-bench/weights`` or
``$GRW_BENCH_WEIGHTS``; ``--cache-dir``) with a progress bar, resuming a partial transfer; sha256
computed, checked against the catalogue where it publishes one (or a git blob id), and recorded in
``NAME.json``; a file failing a check is moved aside to ``NAME.rejected``. Offline, ``--file PATH``
brings a copy you have into the cache with the same checks. ``import NAME --file PATH --out CKPT``:
converts it into a suite checkpoint for ``--row`` (default: the first row it evaluates as), which
``eval --checkpoint CKPT`` evaluates; give ``--classes FILE`` or ``--data ROOT`` for the class names
(``benchmarks.engine.public_weights`` explains the class order), else ``eval`` refuses it.
"""

from __future__ import annotations

import argparse
import textwrap

from benchmarks.core.cli import UsageError

# The library (benchmarks.engine.public_weights, torch) is imported where it is used: --help comes back without it.

WIDTH = 120


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True,
                                help="list, download or import (ACTION --help for its options)")
    listing = sub.add_parser("list", help="every catalogued public checkpoint")
    fetch = sub.add_parser("download", help="fetch checkpoints into the cache (resumes; sha256 checked and recorded)")
    fetch.add_argument("names", nargs="+", metavar="NAME")
    fetch.add_argument("--file", help="offline: bring this copy of the (single) NAME into the cache")
    fetch.add_argument("--retries", type=int, default=3, help="resumptions after a dropped connection (default: 3)")
    convert = sub.add_parser("import", help="convert a checkpoint into the suite's checkpoint format")
    convert.add_argument("name", metavar="NAME")
    convert.add_argument("--file", help="the checkpoint file (default: NAME from the cache)")
    convert.add_argument("--out", required=True, help="the suite checkpoint to write (e.g. imported/a0s_grw.pt)")
    convert.add_argument("--row", type=int, help="Table 1 row (default: the first row NAME evaluates as)")
    convert.add_argument("--classes", help="class names in the weights' order, one per line")
    convert.add_argument("--data", help="dataset root whose class folders (sorted) are the weights' classes")
    for action in (listing, fetch, convert):
        action.add_argument("--cache-dir", help="weights cache (default: $GRW_BENCH_WEIGHTS, else "
                            "~/.cache/grw-bench/weights)")


def list_table(folder: str | None = None) -> str:
    """The catalogue as a table that fits 120 columns, sources under it."""
    from benchmarks.engine.public_weights import (
        cache_dir,
        cached_record,
        catalogue,
        eval_rows,
        init_rows,
        verification,
    )

    rows, sources = [], {}
    for entry in catalogue().values():
        evaluates = eval_rows(entry)
        starts = [row for row in init_rows(entry) if row not in evaluates]
        served = ",".join(map(str, evaluates)) + (" init " + ",".join(map(str, starts)) if starts else "")
        record = cached_record(entry.name, folder)
        size = record["size"] / 1e6 if record else entry.size_mb
        integrity = (f"{'sha256' if record.get('verified', True) else 'UNVERIFIED'} {record['sha256'][:8]}" if record
                     else f"sha256 {entry.sha256[:8]}" if entry.sha256
                     else f"sha256 {entry.sha256_prefix}.." if entry.sha256_prefix
                     else f"blob {entry.git_blob_sha1[:8]}" if entry.git_blob_sha1 else "-")
        note = sources.setdefault(entry.source, len(sources) + 1)
        rows.append({"name": entry.name, "model": entry.model, "rows": served.strip() or "-",
                     "data": entry.dataset.replace("Kinetics-", "K").replace("ImageNet-1K", "IN-1K"),
                     "top-1": "-" if entry.top1 is None else f"{entry.top1:g}",
                     "MB": "-" if size is None else f"{size:.1f}", "integrity": integrity,
                     "cached": "yes" if record else "", "src": f"[{note}]"})
    lines = [*_columns(rows), ""]
    lines.append("rows: Table 1 rows it evaluates as; init: rows it only initialises (train --init). top-1: "
                 "published by its source, on the data listed. integrity: the published hash, or the cached file's "
                 "sha256; UNVERIFIED: a file brought with --file or downloaded where no hash is published.")
    unverified = [record for entry in catalogue().values() if (record := cached_record(entry.name, folder))
                  and not record.get("verified", True)]
    lines += [f"  {record['name']}: {verification(record)}" for record in unverified]
    lines.append("URLs:")
    lines += [f"  {entry.name}: {entry.url}" for entry in catalogue().values()]
    lines += ["Sources:"] + [f"  [{n}] {source}" for source, n in sources.items()]
    lines.append(f"Cache: {cache_dir(folder)}")
    return "\n".join(_wrap(line) for line in lines)


def _columns(rows: list[dict[str, str]]) -> list[str]:
    """Left-aligned columns two spaces apart (tabulate pads headers wider than this)."""
    names = list(rows[0])
    widths = {name: max(len(name), *(len(row[name]) for row in rows)) for name in names}
    line = "  ".join
    return [line(name.ljust(widths[name]) for name in names).rstrip(),
            line("-" * widths[name] for name in names),
            *(line(row[name].ljust(widths[name]) for name in names).rstrip() for row in rows)]


def _wrap(line: str) -> str:
    if len(line) <= WIDTH:
        return line
    return "\n".join(textwrap.wrap(line, WIDTH, subsequent_indent="      ", break_on_hyphens=False))


def _download(args: argparse.Namespace) -> int:
    from benchmarks.engine.public_weights import download, import_file, verification

    if args.file and len(args.names) != 1:
        raise UsageError("--file brings one file: name exactly one checkpoint")
    for name in args.names:
        record = (import_file(name, args.file, args.cache_dir) if args.file
                  else download(name, args.cache_dir, retries=args.retries))
        state = "already in the cache" if record.get("already_cached") else f"checked: {', '.join(record['checked'])}"
        print(_wrap(f"{name}: {record['file']} ({record['size']} bytes, sha256 {record['sha256']}; {state})"))
        if not record.get("verified", True):
            print(_wrap(f"{name}: {verification(record)}; runs that use it say so"))
    return 0


def _import(args: argparse.Namespace) -> int:
    from benchmarks.engine.public_weights import cached_file, import_checkpoint

    file = args.file if args.file is not None else cached_file(args.name, args.cache_dir)
    provenance = import_checkpoint(args.name, file, args.out, row=args.row, classes_file=args.classes,
                                   data=args.data, folder=args.cache_dir)
    print(f"{args.name} -> {args.out} (source sha256 {provenance['sha256']}, converter {provenance['converter']} "
          f"v{provenance['converter_version']}, classes: {provenance['classes_source']})")
    return 0


def main(args: argparse.Namespace) -> int:
    from benchmarks.engine.public_weights import WeightsError

    try:
        if args.action == "list":
            print(list_table(args.cache_dir))
            return 0
        return _download(args) if args.action == "download" else _import(args)
    except WeightsError as error:
        raise UsageError(str(error)) from error
