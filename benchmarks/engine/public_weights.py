"""Public weights: fetch catalogued checkpoints into a cache, convert them into the suite's checkpoint
format, and start training from them. The command line is ``benchmarks.commands.weights``.

The catalogue is ``baselines.weights.CHECKPOINTS`` (MoViNet-pytorch Kinetics-600, pytorchvideo X3D
Kinetics-400, torchvision MobileNetV3 ImageNet, the GRW authors' four snapshots). A checkpoint
*evaluates as* the Table 1 rows whose registry model it is (a GRW snapshot only the GRW rows, a plain
backbone only the rows without a GRW head; ImageNet classifiers none) and *initialises* every row
whose model it is (:func:`eval_rows`, :func:`init_rows`).

Cache (default ``~/.cache/grw-bench/weights``, or ``$GRW_BENCH_WEIGHTS``): ``NAME`` is the file,
``NAME.json`` its record (URL or origin, size, sha256, which published checks passed). A transfer is
written to ``.NAME.part`` and resumed from there (HTTP Range) after a dropped connection, in the same
command (``retries``) or the next; only a complete file whose integrity checks pass is renamed to
``NAME``. A file that fails them (sha256 or git blob id differing from the catalogue, or a pickle
holding anything but tensors and plain containers) is moved aside to ``NAME.rejected`` and refused.
Hugging Face entries go through ``huggingface_hub.hf_hub_download`` when that package is installed,
else through the plain resolve URL with the same downloader.

Reading foreign files never runs code they carry: ``torch.load(weights_only=True)`` for
MoViNet-pytorch, pytorchvideo and torchvision files, ``benchmarks.engine.authors.read_snapshot`` for the
GRW authors' snapshots; anything else is refused with :class:`UnsafeWeightsError`.

Imported checkpoint (:func:`import_checkpoint`): a normal ``benchmarks.core.checkpoint`` file that
``benchmarks.engine.runs.load_trained`` rebuilds::

    {"model": converted state dict, "ema": AveragedModel-style state dict ("module." keys,
     "n_averaged") when the source has EMA weights, else None, "optimizer"/"scheduler"/"scaler": None,
     "progress": an empty Progress, "complete": True,
     **run_record(RunConfig(row, data="imported", out="imported"), spec, {}, classes),
     "provenance": {"kind": "public weights", "label", "name", "url", "source", "sha256", "size",
                    "converter", "converter_version", "published_top1", "dataset", "classes_source",
                    and for GRW snapshots "num_samples", "T", "transformer_params", "ema_n_averaged"}}

For a GRW snapshot the stored spec carries the snapshot's head (``GrwSettings`` embed_dim, depth,
num_heads, mlp_dim from its ``TransformerParams``, window = its ``T``): the row's own values are
placeholders until a snapshot is read, so these are not recorded as deviations.

Class order. The weights' class order is that of their label map. For Kinetics-600 it is the class
names sorted alphabetically: the official label map the MoViNet checkpoints use
(tensorflow/models ``official/projects/movinet/files/kinetics_600_labels.txt``) lists the 600 names in
sorted order (checked for this docstring). Kinetics-400 (X3D) is commonly the same, not checked here.
So the imported checkpoint stores class names only when given: ``classes_file`` (one name per line,
in the weights' order) or ``data`` (a dataset root whose class folders, sorted, are used; they must
be exactly the weights' classes, by count). Otherwise it stores placeholders ``class_000`` ... and
``provenance["classes_source"] == "placeholder"``: evaluation refuses such a checkpoint
(:func:`check_classes`) until classes are given. Folder names must sort like the label map's names
(spaces or underscores sort the same here).
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
import os
import pickle
import shutil
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

import baselines
from baselines.weights import GRW_AUTHORS_CONVERTER, Checkpoint
from benchmarks.core.checkpoint import CheckpointError, file_sha256, load_checkpoint, model_weights, save_checkpoint
from benchmarks.core.cli import UsageError
from benchmarks.core.store import write_json
from benchmarks.engine import authors
from benchmarks.engine.config import RunConfig
from benchmarks.engine.recipe import Recipe
from benchmarks.engine.runs import build_run_model, resolve_spec, run_record
from benchmarks.table1.specs import RowSpec, all_specs

CACHE_ENV = "GRW_BENCH_WEIGHTS"
DEFAULT_CACHE = Path("~/.cache/grw-bench/weights")
IMPORTED = "imported"  # RunConfig.data/out of an imported checkpoint
PLACEHOLDER = "placeholder"
RUN_LABEL = "public weights, evaluated here"  # how runs of imported checkpoints are labelled
BLOCK = 1 << 16
USER_AGENT = "grw-bench"


class WeightsError(UsageError):
    """Public weights cannot be fetched, imported or used; the message says why and what to do."""


class UnsafeWeightsError(WeightsError):
    """A foreign file holds pickled objects other than tensors and plain containers (never unpickled)."""


# --------------------------------------------------------------------------- the catalogue


def catalogue() -> dict[str, Checkpoint]:
    """``baselines.weights.CHECKPOINTS``, read at call time (tests add entries to it)."""
    from baselines.weights import CHECKPOINTS

    return CHECKPOINTS


def lookup(name: str) -> Checkpoint:
    entries = catalogue()
    if name not in entries:
        raise WeightsError(f"unknown weights {name!r}; `python -m benchmarks.run weights list` lists: "
                           f"{', '.join(entries)}")
    return entries[name]


def _has_grw_head(spec: RowSpec) -> bool:
    return spec.grw is not None and spec.grw.attach == "head"


def init_rows(entry: Checkpoint) -> list[int]:
    """Implemented Table 1 rows whose registry model the weights are (``train --init`` starts them)."""
    return [spec.row for spec in all_specs() if spec.implemented and spec.model == entry.model]


def eval_rows(entry: Checkpoint) -> list[int]:
    """Rows the weights can be evaluated as: same model, same head (GRW or the backbone's classifier),
    a classifier of their own (not backbone-only ImageNet weights)."""
    if entry.backbone_only:
        return []
    return [spec.row for spec in all_specs()
            if spec.implemented and spec.model == entry.model and _has_grw_head(spec) == entry.grw_head]


# --------------------------------------------------------------------------- the cache


def cache_dir(path: str | Path | None = None) -> Path:
    """``path``, else ``$GRW_BENCH_WEIGHTS``, else ``~/.cache/grw-bench/weights``."""
    return Path(path or os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


@dataclass(frozen=True)
class CachePaths:
    file: Path  # the accepted file
    record: Path  # its JSON record
    part: Path  # a transfer in progress
    rejected: Path  # a file that failed its checks

    @classmethod
    def of(cls, name: str, folder: str | Path | None = None) -> CachePaths:
        root = cache_dir(folder)
        return cls(root / name, root / f"{name}.json", root / f".{name}.part", root / f"{name}.rejected")


def cached_record(name: str, folder: str | Path | None = None) -> dict | None:
    """The record of ``name`` in the cache, or None when it is not there."""
    paths = CachePaths.of(name, folder)
    if not (paths.file.is_file() and paths.record.is_file()):
        return None
    return json.loads(paths.record.read_text())


def cached_file(name: str, folder: str | Path | None = None) -> Path:
    """The cached file of catalogue entry ``name``; a clear error naming the command that fetches it."""
    lookup(name)
    if cached_record(name, folder) is None:
        where = f" --cache-dir {folder}" if folder else ""
        raise WeightsError(f"{name} is not in the weights cache ({cache_dir(folder)}): fetch it with "
                           f"`python -m benchmarks.run weights download {name}{where}` (offline: add --file PATH "
                           "with a copy of the file)")
    return CachePaths.of(name, folder).file


def download(name: str, folder: str | Path | None = None, retries: int = 3, progress: bool = True,
             timeout: float = 60.0) -> dict:
    """Fetch catalogue entry ``name`` into the cache (no-op when it is there); returns its record."""
    entry = lookup(name)
    record = cached_record(name, folder)
    if record is not None:
        return {**record, "already_cached": True}
    paths = CachePaths.of(name, folder)
    paths.file.parent.mkdir(parents=True, exist_ok=True)
    if entry.hf_repo and _hf_hub_download() is not None:
        local = _hf_hub_download()(repo_id=entry.hf_repo, filename=entry.hf_file)
        shutil.copyfile(local, paths.part)
        return _accept(entry, paths, origin=f"huggingface_hub {entry.hf_repo}/{entry.hf_file}")
    fetch_url(entry.url, paths.part, retries=retries, progress=progress, timeout=timeout, label=name)
    return _accept(entry, paths, origin=entry.url)


def import_file(name: str, source: str | Path, folder: str | Path | None = None) -> dict:
    """Bring a copy of catalogue entry ``name`` that the user has (offline) into the cache, with the
    same checks as a download; returns its record."""
    entry = lookup(name)
    source = Path(source)
    if not source.is_file():
        raise WeightsError(f"--file {source}: no such file")
    paths = CachePaths.of(name, folder)
    paths.file.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, paths.part)
    return _accept(entry, paths, origin=f"file {source.resolve()}", convert_first=True)


def _hf_hub_download() -> Any:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        return None
    return hf_hub_download


def fetch_url(url: str, part: Path, retries: int = 3, progress: bool = True, timeout: float = 60.0,
              label: str = "download") -> Path:
    """Download ``url`` into ``part``, resuming what ``part`` already holds (HTTP Range); a dropped
    connection is resumed up to ``retries`` times, then reported with ``part`` kept for the next try."""
    for attempt in range(retries + 1):
        try:
            if _fetch_once(url, part, progress, timeout, label):
                return part
            lost = "the connection closed early"
        except urllib.error.HTTPError as error:
            raise WeightsError(f"{url}: HTTP {error.code} {error.reason}") from error
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            lost = f"{type(error).__name__}: {getattr(error, 'reason', error)}"
        have = part.stat().st_size if part.exists() else 0
        if attempt < retries:
            print(f"{label}: {lost} at {have} bytes; resuming (attempt {attempt + 2} of {retries + 1})",
                  file=sys.stderr)
    raise WeightsError(f"{url}: {lost}; {have} bytes kept in {part}: run the same command again to resume")


def _fetch_once(url: str, part: Path, progress: bool, timeout: float, label: str) -> bool:
    """One request; True when the whole file is in ``part``."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, **({"Range": f"bytes={have}-"} if have else {})}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing after `have`: the file is complete
            return True
        raise
    with response:
        if response.status == 206 and have:
            start = int(response.headers.get("Content-Range", "bytes 0-").split()[1].split("-")[0])
            if start != have:
                raise WeightsError(f"{url}: asked to resume at byte {have}, the server sent from byte {start}")
        else:
            have = 0  # the server sent the whole file
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with open(part, "ab" if have else "wb") as out, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, desc=label, file=sys.stderr, disable=not progress,
        ) as bar:
            while block := response.read(BLOCK):
                out.write(block)
                bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
    return total is None or part.stat().st_size >= total


def git_blob_sha1(path: str | Path) -> str:
    """The git object id of a file's content (``sha1(b"blob <size>\\0" + content)``)."""
    path = Path(path)
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def integrity_problems(entry: Checkpoint, path: Path, sha256: str) -> tuple[list[str], list[str]]:
    """(the published checks that passed, the ones that failed) for the file at ``path``."""
    checks = []
    if entry.sha256:
        checks.append(("sha256", entry.sha256, sha256))
    if entry.sha256_prefix:
        checks.append(("sha256 prefix", entry.sha256_prefix, sha256[:len(entry.sha256_prefix)]))
    if entry.git_blob_sha1:
        checks.append(("git blob sha1", entry.git_blob_sha1, git_blob_sha1(path)))
    passed = [name for name, expected, got in checks if expected == got]
    failed = [f"{name} {got}, the catalogue says {expected}" for name, expected, got in checks if expected != got]
    return passed, failed


def _accept(entry: Checkpoint, paths: CachePaths, origin: str, convert_first: bool = False) -> dict:
    """Check the complete ``paths.part``; rename it to ``paths.file`` and record it, or move it aside.

    ``convert_first``: a file the user brought (``--file``) must also convert into the entry's model, so
    that a file that is not those weights is refused here, not at ``import``."""
    sha256 = file_sha256(paths.part)
    passed, failed = integrity_problems(entry, paths.part, sha256)
    problem = "; ".join(failed)
    if not problem:
        try:
            foreign = read_foreign(entry, paths.part)
            if convert_first:
                convert(entry, foreign)
        except WeightsError as error:
            problem = str(error)
    if problem:
        os.replace(paths.part, paths.rejected)
        raise WeightsError(f"{entry.name} refused: {problem}. The file was moved aside to {paths.rejected}; "
                           "nothing was added to the cache")
    record = {"name": entry.name, "origin": origin, "url": entry.url, "file": str(paths.file),
              "size": paths.part.stat().st_size, "sha256": sha256,
              "checked": passed or ["none published: sha256 recorded only"], "verified": bool(passed)}
    record["verification"] = verification(record)
    os.replace(paths.part, paths.file)
    write_json(paths.record, record)
    return record


def verification(record: dict) -> str:
    """What is known of a cached file's bytes, in words, for every table and run that uses them."""
    if record.get("verified", True):
        return f"sha256 {record['sha256']}, matches the published {' and '.join(record['checked'])}"
    if str(record.get("origin", "")).startswith("file "):
        return f"local file, sha256 {record['sha256']}, not verified against a published hash"
    return f"downloaded from {record.get('url')}, sha256 {record['sha256']}; no published hash to verify it against"


# --------------------------------------------------------------------------- reading and converting


@dataclass
class Foreign:
    """A foreign file's weights in its own layout (a GRW snapshot: the authors' key names)."""

    state: dict[str, Tensor]
    ema: dict[str, Tensor] | None = None
    snapshot: authors.AuthorsSnapshot | None = None


def read_foreign(entry: Checkpoint, path: str | Path) -> Foreign:
    """The weights of a file of catalogue entry ``entry``, without running anything it carries."""
    if entry.converter == GRW_AUTHORS_CONVERTER:
        try:
            snapshot = authors.read_snapshot(path)
        except pickle.UnpicklingError as error:  # UnsafeSnapshotError included
            raise UnsafeWeightsError(f"{path}: refused, not read as a GRW authors' snapshot: {error}") from error
        except (RuntimeError, EOFError, OSError) as error:
            raise WeightsError(f"{path}: cannot read the GRW authors' snapshot: {error}") from error
        return Foreign(snapshot.model_state, snapshot.ema_state, snapshot)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        reason = next((line for line in lines if "unsupported global" in line.lower()), lines[-1] if lines else "")
        raise UnsafeWeightsError(
            f"{path}: refused: the file holds pickled objects other than tensors and plain containers, which are "
            f"never unpickled (torch.load weights_only=True: {reason})") from error
    except (RuntimeError, EOFError, OSError) as error:
        raise WeightsError(f"{path}: cannot read weights: {error}") from error
    if entry.state_dict_key is not None:
        if not isinstance(loaded, dict) or entry.state_dict_key not in loaded:
            raise WeightsError(f"{path}: expected the state dict under {entry.state_dict_key!r}")
        loaded = loaded[entry.state_dict_key]
    if not isinstance(loaded, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in loaded.items()):
        raise WeightsError(f"{path}: not a state dict of tensors")
    return Foreign(dict(loaded))


def snapshot_grw_settings(spec: RowSpec, snapshot: authors.AuthorsSnapshot) -> RowSpec:
    """The row's spec with the snapshot's head (its TransformerParams and T)."""
    if spec.grw is None:
        raise WeightsError(f"row {spec.row} ({spec.name}) has no GRW head for the snapshot's head")
    options = snapshot.head_options()
    head = {name: options[name] for name in ("embed_dim", "depth", "num_heads", "mlp_dim")}
    return dataclasses.replace(spec, grw=dataclasses.replace(spec.grw, window=options["window"], **head))


def convert(entry: Checkpoint, foreign: Foreign) -> tuple[dict[str, Tensor], dict[str, Tensor] | None]:
    """(model weights, EMA weights or None) in the layout of the suite's model for ``entry``: the zoo
    model, or for a GRW snapshot ``grw.GrwModel`` (``backbone.*`` and ``head.*``)."""
    try:
        if foreign.snapshot is not None:
            snapshot, backbone = foreign.snapshot, _headless(entry.model)
            ema = snapshot.ema_state and authors.to_grw_state_dict(snapshot.ema_state, backbone)
            return authors.to_grw_state_dict(snapshot.model_state, backbone), ema
        return getattr(baselines, entry.converter)(foreign.state, entry.model), None
    except (baselines.ConversionError, KeyError) as error:
        raise WeightsError(f"{entry.name}: the file does not convert into {entry.model}: {error}") from error


def _headless(model: str) -> nn.Module:
    """The registry model without its classifier, on the meta device (keys and shapes only): what a
    GRW model's backbone is."""
    with torch.device("meta"):
        backbone = baselines.build(model, num_classes=1)
        backbone.reset_classifier(0)
    return backbone


# --------------------------------------------------------------------------- classes


def read_classes_file(path: str | Path) -> tuple[str, ...]:
    lines = [line.strip() for line in Path(path).read_text().splitlines()]
    return tuple(line for line in lines if line)


def data_class_folders(root: str | Path) -> tuple[str, ...]:
    """Class folders of ``ROOT/train`` (else ``ROOT/val``), sorted: the Kinetics label maps' order."""
    root = Path(root)
    folder = next((root / split for split in ("train", "val") if (root / split).is_dir()), None)
    if folder is None:
        raise WeightsError(f"{root}: no train/ or val/ folder of class folders")
    return tuple(sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")))


def choose_classes(count: int, classes_file: str | Path | None = None,
                   data: str | Path | None = None) -> tuple[tuple[str, ...], str]:
    """(class names in the weights' order, where they come from); placeholders when neither is given."""
    if classes_file is not None and data is not None:
        raise WeightsError("give --classes or --data, not both")
    if classes_file is not None:
        classes, source = read_classes_file(classes_file), f"file {Path(classes_file).resolve()}"
    elif data is not None:
        classes, source = data_class_folders(data), f"class folders of {Path(data).resolve()}, sorted"
    else:
        return tuple(f"class_{i:03d}" for i in range(count)), PLACEHOLDER
    if len(classes) != count:
        raise WeightsError(f"the weights have {count} classes, {source} names {len(classes)}: give all "
                           f"{count} class names in the weights' order (--classes FILE, one per line)")
    if len(set(classes)) != len(classes):
        raise WeightsError(f"{source} names a class twice")
    return classes, source


def check_classes(checkpoint: dict, path: str | Path) -> None:
    """Refuse a checkpoint imported without class names (evaluation would misread every label)."""
    if checkpoint.get("provenance", {}).get("classes_source") == PLACEHOLDER:
        name = checkpoint["provenance"].get("name", "NAME")
        raise WeightsError(
            f"{path} was imported without class names (placeholders class_000 ...): import it again with "
            f"`python -m benchmarks.run weights import {name} --file FILE --out CKPT --classes CLASSES.txt` "
            "(one name per line, in the weights' order) or --data ROOT (its class folders, sorted)")


# --------------------------------------------------------------------------- importing


def import_checkpoint(name: str, file: str | Path, out: str | Path, row: int | str | None = None,
                      classes_file: str | Path | None = None, data: str | Path | None = None,
                      folder: str | Path | None = None) -> dict:
    """Convert the file of catalogue entry ``name`` into a suite checkpoint at ``out`` (format in the
    module docstring) for ``row`` (default: the first row it evaluates as); returns its provenance."""
    entry = lookup(name)
    rows = eval_rows(entry)
    if not rows:
        starts = ", ".join(map(str, init_rows(entry))) or "none"
        why = "backbone only" if entry.backbone_only else "no row has this model with this head"
        raise WeightsError(f"{name} evaluates as no Table 1 row ({why}); it initialises rows {starts}: "
                           f"`python -m benchmarks.run train --init {name} ...`")
    config = RunConfig(row=row if row is not None else rows[0], data=IMPORTED, out=IMPORTED)
    if config.row not in rows:
        raise WeightsError(f"{name} evaluates as row(s) {', '.join(map(str, rows))}, not row {config.row}")
    spec, deviations = resolve_spec(config)
    foreign = read_foreign(entry, file)
    model_state, ema_state = convert(entry, foreign)
    if foreign.snapshot is not None:
        spec = snapshot_grw_settings(spec, foreign.snapshot)
    classes, classes_source = choose_classes(entry.num_classes, classes_file, data)
    _check_loads(spec, len(classes), model_state, entry)

    sha256 = file_sha256(file)
    passed, failed = integrity_problems(entry, file, sha256)
    if failed:
        raise WeightsError(f"{file} is not {name}: {'; '.join(failed)}")
    cached = cached_record(name, folder)  # where the bytes came from, if the cache has them
    origin = cached["origin"] if cached and cached["sha256"] == sha256 else f"file {Path(file).resolve()}"
    checked = {"sha256": sha256, "origin": origin, "url": entry.url, "verified": bool(passed),
               "checked": passed or ["none published: sha256 recorded only"]}
    provenance = {
        "kind": "public weights", "label": RUN_LABEL if passed else f"public weights ({verification(checked)}), "
                                                                    "evaluated here",
        "verified": bool(passed), "verification": verification(checked), "origin": origin,
        "name": entry.name, "url": entry.url, "source": entry.source,
        "sha256": sha256, "size": Path(file).stat().st_size, "converter": entry.converter,
        "converter_version": baselines.CONVERTER_VERSION, "published_top1": entry.top1, "dataset": entry.dataset,
        "eval_input": entry.eval_input, "classes_source": classes_source,
    }
    ema = None
    if ema_state is not None:
        ema = {f"module.{key}": value for key, value in ema_state.items()}
        snapshot = foreign.snapshot
        ema["n_averaged"] = torch.tensor(snapshot.ema_n_averaged if snapshot and snapshot.ema_n_averaged else 0)
    if foreign.snapshot is not None:
        snapshot = foreign.snapshot
        provenance.update(num_samples=snapshot.num_samples, T=snapshot.T, ema_n_averaged=snapshot.ema_n_averaged,
                          transformer_params=dataclasses.asdict(snapshot.transformer_params),
                          backbone_class=snapshot.backbone_class)
    save_checkpoint(out, {
        "model": model_state, "ema": ema, "optimizer": None, "scheduler": None, "scaler": None,
        "progress": {"epoch": 0, "step": 0, "global_step": 0, "best_top1": None, "best_epoch": None,
                     "history": [], "running": {}},
        **run_record(config, spec, deviations, classes), "complete": True, "provenance": provenance,
    })
    return provenance


def _check_loads(spec: RowSpec, num_classes: int, state: dict[str, Tensor], entry: Checkpoint) -> None:
    """The converted weights load strictly into the model the checkpoint will rebuild."""
    with torch.device("meta"):
        model = build_run_model(spec, num_classes, Recipe())
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        raise WeightsError(f"{entry.name} does not load into row {spec.row}'s model: {error}") from error


# --------------------------------------------------------------------------- training from public weights


@dataclass
class InitReport:
    """What ``train --init`` loaded into a fresh model, and what it did not."""

    source: str
    sha256: str
    loaded: list[str] = field(default_factory=list)
    not_initialised: list[str] = field(default_factory=list)  # model keys left at their random init
    shape_differs: list[str] = field(default_factory=list)  # "key: source shape -> model shape"
    unused: list[str] = field(default_factory=list)  # source keys the model has no place for

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def lines(self, limit: int = 8) -> list[str]:
        """A short human summary (every list in full is in ``to_dict``)."""
        out = [f"init from {self.source} (sha256 {self.sha256[:16]}...): {len(self.loaded)} tensors loaded"]
        for what, keys in (("not initialised (random)", self.not_initialised),
                           ("not loaded, shape differs", self.shape_differs), ("unused from the source", self.unused)):
            if keys:
                shown = ", ".join(keys[:limit]) + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")
                out.append(f"  {what}: {len(keys)}: {shown}")
        return out


def resolve_init(init: str, folder: str | Path | None = None) -> tuple[Path, str]:
    """(the file, its sha256) of ``--init``: a catalogue name (from the cache) or a suite checkpoint file."""
    if init in catalogue():
        path = cached_file(init, folder)
    elif Path(init).is_file():
        path = Path(init)
    else:
        raise WeightsError(f"--init {init}: neither a file nor a catalogued checkpoint "
                           "(`python -m benchmarks.run weights list`)")
    return path, file_sha256(path)


def initial_state(init: str, folder: str | Path | None = None) -> tuple[dict[str, Tensor], Path]:
    """The weights ``--init`` names, in the suite's layout: a catalogue entry converted for its zoo
    model (a GRW snapshot for its GrwModel, EMA weights when it has them), or a suite checkpoint's
    model (its EMA when it has one)."""
    path, _ = resolve_init(init, folder)
    if init in catalogue():
        entry = lookup(init)
        foreign = read_foreign(entry, path)
        model_state, ema_state = convert(entry, foreign)
        return ema_state or model_state, path
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError as error:
        raise WeightsError(f"--init {init}: not a grw-bench checkpoint (a catalogue name converts foreign files: "
                           f"`weights download NAME`, then --init NAME): {error}") from error
    return model_weights(checkpoint)[0], path


def load_initial(model: nn.Module, state: dict[str, Tensor], source: str, sha256: str) -> InitReport:
    """Load every tensor of ``state`` whose key (or ``backbone.`` + key, for a model wrapped in
    ``grw.GrwModel``) and shape match ``model``; report the rest. Nothing matching is an error."""
    target = model.state_dict()
    report = InitReport(source=source, sha256=sha256)
    loaded: dict[str, Tensor] = {}
    for key, value in state.items():
        ours = key if key in target else f"backbone.{key}" if f"backbone.{key}" in target else None
        if ours is None:
            report.unused.append(key)
        elif tuple(value.shape) != tuple(target[ours].shape):
            report.shape_differs.append(f"{ours}: {tuple(value.shape)} -> {tuple(target[ours].shape)}")
        else:
            loaded[ours] = value
    if not loaded:
        raise WeightsError(f"--init {source}: no tensor matches the model (different architecture?); "
                           f"first source keys: {', '.join(list(state)[:5])}")
    report.loaded = list(loaded)
    report.not_initialised = [key for key in target if key not in loaded]
    model.load_state_dict({**target, **loaded})
    return report
