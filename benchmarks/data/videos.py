"""Kinetics video data: a cached index of decodable videos, clip sampling, transforms and loaders.

Layout: ``ROOT/{train,val,test}/<class name>/<video>.mp4``. With a Kinetics annotation CSV
(``label,youtube_id,time_start,time_end,split``) each row of the split maps to
``ROOT/<split>/<label>/<youtube_id>_<time_start:06d>_<time_end:06d>.mp4`` (the standard downloaders'
name) or ``ROOT/<split>/<label>/<youtube_id>.mp4``; without one, every video under the split is used.

Typical use::

    index = VideoIndex.build(root, "train", cache_dir=run_dir)   # decord opens each file once, ever
    save_classes(run_dir / "classes.json", index.classes)          # evaluation reuses this order
    dataset = VideoDataset(index, Sampling(frames=50, fps=5, size=172), train=True, seed=0)
    loader = make_loader(dataset, batch_size=8, shuffle=True, num_workers=4, seed=0)
    for epoch in range(epochs):
        set_epoch(loader, epoch)                  # crops and order depend on (seed, epoch) only
        for videos, labels, n_dropped in loader:  # videos: float32 [B, 3, T, H, W]
            dropped_at_load += n_dropped

Class order is the sorted class names of the train split (or of the annotation file), unless the
caller passes ``classes`` (e.g. ``load_classes`` of the training run) so evaluation uses the same order.

Bad input never stops a run. While indexing, annotation rows without a file (``missing``), 0-byte or
0-frame files (``empty``), files decord cannot open (``unreadable``), videos shorter than
``min_frames`` (``too_short``) and, with explicit ``classes``, unlisted labels (``unknown_class``) are
skipped with one warning and counted in ``VideoIndex.skipped`` (store ``index.summary()`` with the
run). decord reads every packet when it opens a file, so a truncated file is caught here. A decode
error that only shows at load time (corrupt frame data, a file changed since indexing) makes
``VideoDataset`` return None; ``collate_videos`` drops those and reports how many per batch.

The index (path, label, frame count, fps, timing source, skip reason) is cached per split in a JSON
file next to the data, or in ``cache_dir``; each file's entry is keyed by its path, size and mtime, so
only new or changed files are opened again.

Frame timing. Frames are chosen by index and the average frame rate (below), never by timestamp, and
decoded in display order. But decord reaches a frame by seeking to its timestamp, and some files have
none that can be trusted: AVI stores no presentation time, and on AVI files with B-frames (MPEG-4 Part
2, H.264) decord 0.6 gives frames (all, for H.264) FFmpeg's "no pts" as time (-2^63 time-base units:
-3.1e17 s at 30 fps); there a seek lands on the wrong frame (tests/test_frame_order.py). Indexing checks each
video's timestamps (finite, non-negative, strictly increasing) and records its ``timing``:
``"timestamps"`` (decord seeks to each wanted frame) or ``"index/avg_fps"`` with the reason (``"invalid
pts"`` or ``"non-monotonic pts"``; the frames are decoded in order from the first and counted, nothing
reads a timestamp). A reader that sorts frames by pts instead (torchvision's ``read_video``, which the
GRW authors' loader uses) shows H.264-in-AVI frames in decode order, since those files' pts follow it.

Sampling. Frame indices are spaced by ``native_fps / fps`` (or ``stride`` native frames, the X3D
convention) from a start frame; past the end of a short video the last frame repeats. Training: a
random start, random resized crop and horizontal flip, drawn from an RNG seeded by (seed, epoch,
index), so a resumed run sees the same samples whatever the worker layout. Evaluation: ``clips`` starts
evenly spaced over the video, each at the centre of its share of the possible starts (one clip is
centred in the video), and ``crops`` square crops spaced along the long side after resizing the short
side to ``resize`` (1: centre; 3: left, centre, right). Outputs are float32 ``(x / 255 - mean) / std``
laid out ``[3, T, H, W]``, or ``[V, 3, T, H, W]`` with V = clips x crops > 1 (clip-major).

The GRW authors' evaluation (every N-frame clip of a video as one sample, square resize) is
``benchmarks.table1.protocols``; it reads the same ``VideoIndex``.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import decord
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from tqdm import tqdm

from benchmarks.core.cli import UsageError
from benchmarks.core.store import write_text

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi")
SKIP_REASONS = ("missing", "unreadable", "empty", "too_short", "unknown_class")
ANNOTATION_COLUMNS = ("label", "youtube_id", "time_start", "time_end")
# Names the Kinetics CSVs use in their `split` column for each split directory.
CSV_SPLIT_NAMES = {"train": {"train"}, "val": {"val", "validate", "validation"}, "test": {"test"}}

# Per-model input normalisation (mean, std) over RGB in [0, 1].
MOVINET_NORM = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
IMAGENET_NORM = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
X3D_NORM = ((0.45, 0.45, 0.45), (0.225, 0.225, 0.225))

_CACHE_VERSION = 2  # 2: records hold the timing source (older caches are probed again)
TIMESTAMPS = "timestamps"  # decord's frame timestamps are valid: it may seek to a frame
INDEX_OVER_FPS = "index/avg_fps"  # they are not: frame i is at i / avg_fps, reached by decoding in order
TIMINGS = (TIMESTAMPS, INDEX_OVER_FPS)
_IN_ORDER_CHUNK = 32  # frames decoded per call when decoding in order
DECODE_ERRORS = (decord.DECORDError, RuntimeError, OSError)  # what a failed decode raises


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Sampling:
    """How one sample is cut from a video: temporal sampling, spatial views and normalisation.

    Give exactly one of ``fps`` (target frame rate) or ``stride`` (step in native frames).
    ``size`` is the square output side; ``resize`` the short side before evaluation crops
    (default ``size``: the crop spans the whole short side). ``clips`` and ``crops`` apply to
    evaluation only; training always returns one view.
    """

    frames: int
    fps: float | None = None
    stride: int | None = None
    size: int = 172
    resize: int | None = None
    clips: int = 1
    crops: int = 1
    mean: tuple[float, float, float] = MOVINET_NORM[0]
    std: tuple[float, float, float] = MOVINET_NORM[1]
    crop_scale: tuple[float, float] = (0.25, 1.0)  # training crop area, as a fraction of the frame
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # training crop aspect ratio (w / h)
    flip: bool = True

    def __post_init__(self) -> None:
        if (self.fps is None) == (self.stride is None):
            raise ValueError(f"give exactly one of fps or stride, got fps={self.fps}, stride={self.stride}")
        if (self.fps is not None and self.fps <= 0) or (self.stride is not None and self.stride < 1):
            raise ValueError(f"fps must be > 0 and stride >= 1, got fps={self.fps}, stride={self.stride}")
        for name in ("frames", "size", "clips", "crops"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.resize is not None and self.resize < self.size:
            raise ValueError(f"resize (short side, {self.resize}) must be >= the crop size {self.size}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 values with std > 0, got {self.mean}, {self.std}")

    @property
    def views(self) -> int:
        return self.clips * self.crops

    def step(self, native_fps: float) -> float:
        """Distance between sampled frames, in native frames."""
        return float(self.stride) if self.stride is not None else native_fps / self.fps


# --------------------------------------------------------------------------- index


@dataclass(frozen=True)
class VideoEntry:
    path: Path
    label: int
    num_frames: int
    fps: float
    timing: str  # TIMESTAMPS or INDEX_OVER_FPS (module docstring, "Frame timing")
    timing_reason: str | None = None  # why the timestamps were not used ("invalid pts", "non-monotonic pts")


@dataclass(frozen=True)
class VideoIndex:
    """The decodable videos of one split, their labels, and what was skipped (by reason)."""

    root: Path
    split: str
    classes: tuple[str, ...]
    entries: tuple[VideoEntry, ...]
    skipped_files: dict[str, list[str]] = field(default_factory=dict)

    @property
    def skipped(self) -> dict[str, int]:
        """Number of skipped files by reason; every reason in ``SKIP_REASONS`` is present."""
        return {reason: len(self.skipped_files.get(reason, ())) for reason in SKIP_REASONS}

    def __len__(self) -> int:
        return len(self.entries)

    def summary(self) -> dict[str, object]:
        """What a run should store about its data."""
        timing = {name: sum(entry.timing == name for entry in self.entries) for name in TIMINGS}
        return {"root": str(self.root), "split": self.split, "videos": len(self),
                "classes": len(self.classes), "skipped": self.skipped, "timing": timing}

    @classmethod
    def build(
        cls,
        root: str | Path,
        split: str,
        annotations: str | Path | None = None,
        classes: Sequence[str] | None = None,
        cache_dir: str | Path | None = None,
        min_frames: int = 8,
        workers: int = 8,
    ) -> VideoIndex:
        """Index ``root/split``: list the videos, open each new or changed one once, skip bad ones.

        Raises FileNotFoundError if there is nothing to list and ValueError if no video is usable.
        """
        root = Path(root)
        if annotations is not None:
            rows = read_annotations(annotations, split)
            class_order = tuple(classes) if classes is not None else tuple(sorted({label for label, *_ in rows}))
            videos, missing = _annotated_videos(root, split, rows)
        else:
            class_order = tuple(classes) if classes is not None else _scanned_classes(root, split)
            videos, missing = _scanned_videos(root, split), []

        skipped: dict[str, list[str]] = {reason: [] for reason in SKIP_REASONS}
        skipped["missing"] = missing
        label_of = {name: i for i, name in enumerate(class_order)}
        known = []
        for label, path in videos:
            if label in label_of:
                known.append((label, path))
            else:
                skipped["unknown_class"].append(str(path))

        cache_file = _cache_file(root, split, cache_dir)
        probes = _probe_videos([path for _, path in known], root, cache_file, workers, desc=f"indexing {split}")
        entries = []
        for label, path in known:
            probe = probes[path]
            reason = _skip_reason(probe, min_frames)
            if reason:
                skipped[reason].append(str(path))
            else:
                entries.append(VideoEntry(path, label_of[label], probe["num_frames"], probe["fps"],
                                          probe["timing"], probe["timing_reason"]))

        index = cls(root, split, class_order, tuple(entries), skipped)
        if any(index.skipped.values()):
            examples = [p for paths in skipped.values() for p in paths[:1]]
            warnings.warn(f"{root / split}: skipped {sum(index.skipped.values())} videos {index.skipped}, "
                          f"e.g. {examples}", stacklevel=2)
        if not entries:  # a usage error writes nothing: not even the probe cache of unreadable files
            cache_file.unlink(missing_ok=True)
            raise UsageError(f"no readable video in {root} split {split!r} "
                             f"({len(videos) + len(missing)} listed, skipped {index.skipped})")
        return index


def save_classes(path: str | Path, classes: Sequence[str]) -> Path:
    """Write the class order as a JSON list (index i = class i)."""
    return write_text(path, json.dumps(list(classes), indent=0) + "\n")


def load_classes(path: str | Path) -> tuple[str, ...]:
    classes = json.loads(Path(path).read_text())
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ValueError(f"{path}: expected a JSON list of class names")
    return tuple(classes)


def read_annotations(path: str | Path, split: str) -> list[tuple[str, str, int, int]]:
    """Rows ``(label, youtube_id, time_start, time_end)`` of ``split`` in a Kinetics annotation CSV.

    Rows of other splits are left out when the file has a ``split`` column.
    """
    split_names = CSV_SPLIT_NAMES.get(split, {split})
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        absent = [c for c in ANNOTATION_COLUMNS if c not in (reader.fieldnames or ())]
        if absent:
            raise ValueError(f"{path}: annotation CSV needs columns {list(ANNOTATION_COLUMNS)} (+ split), "
                             f"missing {absent}")
        return [(row["label"], row["youtube_id"], int(row["time_start"]), int(row["time_end"]))
                for row in reader if row.get("split") in (None, "") or row["split"] in split_names]


def _annotated_videos(root: Path, split: str, rows: Iterable[tuple[str, str, int, int]]):
    """(label, path) of the annotation rows whose file exists, and the expected paths of the others."""
    found, missing = [], []
    for label, youtube_id, start, end in rows:
        folders = dict.fromkeys([root / split / label, root / split / label.replace(" ", "_")])
        names = [f"{youtube_id}_{start:06d}_{end:06d}.mp4", f"{youtube_id}.mp4"]
        candidates = [folder / name for folder in folders for name in names]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            missing.append(str(candidates[0]))
        else:
            found.append((label, path))
    return found, missing


def _split_dir(root: Path, split: str) -> Path:
    folder = root / split
    if not folder.is_dir():
        raise FileNotFoundError(f"no directory {folder}: expected the Kinetics layout "
                                f"ROOT/{split}/<class name>/<video>.mp4 (root {root}, split {split!r})")
    return folder


def _scanned_classes(root: Path, split: str) -> tuple[str, ...]:
    folder = root / "train" if (root / "train").is_dir() else _split_dir(root, split)
    return tuple(sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")))


def _scanned_videos(root: Path, split: str) -> list[tuple[str, Path]]:
    return [(path.parent.name, path)
            for path in sorted(_split_dir(root, split).glob("*/*"))
            if path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")]


# --------------------------------------------------------------------------- probing + cache


def timestamp_problem(starts: np.ndarray) -> str | None:
    """Why frame start times (seconds, in frame order) cannot place frames, or None if they can:
    ``"invalid pts"`` (not finite, or negative: decord gives a missing pts as -2^63 time-base units)
    or ``"non-monotonic pts"`` (not strictly increasing)."""
    starts = np.asarray(starts, dtype=np.float64)
    if not np.all(np.isfinite(starts)) or np.any(starts < 0):
        return "invalid pts"
    if np.any(np.diff(starts) <= 0):
        return "non-monotonic pts"
    return None


def frame_timing(reader: decord.VideoReader) -> tuple[str, str | None]:
    """The timing source of an open video and why the timestamps are not used (None when they are)."""
    problem = timestamp_problem(reader.get_frame_timestamp(list(range(len(reader))))[:, 0])
    return (TIMESTAMPS, None) if problem is None else (INDEX_OVER_FPS, problem)


def _probe(path: Path) -> dict[str, Any]:
    """What decord sees of a file: ``num_frames`` (None if it cannot be decoded), ``fps``, ``timing`` and
    ``timing_reason`` (``frame_timing``; None for a file without frames)."""
    unreadable = {"num_frames": None, "fps": 0.0, "timing": None, "timing_reason": None}
    if path.stat().st_size == 0:
        return {**unreadable, "num_frames": 0}
    try:
        reader = decord.VideoReader(str(path), num_threads=1)
        num_frames, fps = len(reader), float(reader.get_avg_fps())
        timing, reason = frame_timing(reader) if num_frames > 0 else (None, None)
    except DECODE_ERRORS:
        return unreadable
    if num_frames > 0 and not fps > 0:  # also catches NaN
        return unreadable
    return {"num_frames": num_frames, "fps": fps, "timing": timing, "timing_reason": reason}


def _skip_reason(probe: dict, min_frames: int) -> str | None:
    if probe["num_frames"] is None:
        return "unreadable"
    if probe["num_frames"] == 0:
        return "empty"
    if probe["num_frames"] < min_frames:
        return "too_short"
    return None


def _cache_file(root: Path, split: str, cache_dir: str | Path | None) -> Path:
    if cache_dir is None:
        return root / f".grw_index_{split}.json"
    tag = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:10]
    return Path(cache_dir) / f"grw_index_{root.name}_{tag}_{split}.json"


def _read_cache(file: Path) -> dict[str, dict]:
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        return {}
    return data.get("files", {}) if data.get("version") == _CACHE_VERSION else {}


def _write_cache(file: Path, records: dict[str, dict]) -> None:
    """Atomic write (several ranks may index at once); an unwritable location only costs a warning."""
    try:
        write_text(file, json.dumps({"version": _CACHE_VERSION, "files": records}))
    except OSError as error:
        warnings.warn(f"could not write the video index cache {file}: {error}", stacklevel=3)


def _probe_videos(paths: list[Path], root: Path, cache_file: Path, workers: int, desc: str) -> dict[Path, dict]:
    """Probe records ``{size, mtime_ns, num_frames, fps, timing, timing_reason}`` per path, reusing
    unchanged cached ones."""
    cached = _read_cache(cache_file)
    records, stale = {}, []
    for path in paths:
        stat = path.stat()
        record = cached.get(os.path.relpath(path, root))
        if record and (record["size"], record["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns):
            records[path] = record
        else:
            records[path] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
            stale.append(path)
    if stale:
        # decord is called through ctypes, which releases the GIL: threads probe in parallel.
        with ThreadPoolExecutor(max(1, workers)) as pool, tqdm(total=len(stale), desc=desc, unit="video") as bar:
            for path, probe in zip(stale, pool.map(_probe, stale)):
                records[path].update(probe)
                bar.update()
    if stale or len(cached) != len(records):
        _write_cache(cache_file, {os.path.relpath(path, root): record for path, record in records.items()})
    return records


# --------------------------------------------------------------------------- temporal sampling


def frame_indices(num_frames: int, step: float, frames: int, start: int = 0) -> np.ndarray:
    """``frames`` indices ``start + floor(k * step)``; past the last frame, the last frame repeats."""
    offsets = np.floor(np.arange(frames) * step + 1e-6).astype(np.int64)
    return np.minimum(start + offsets, num_frames - 1)


def max_start(num_frames: int, step: float, frames: int) -> int:
    """Latest start whose clip still ends inside the video (0 when the video is too short)."""
    return max(0, num_frames - 1 - int(np.floor((frames - 1) * step + 1e-6)))


def clip_starts(num_frames: int, step: float, frames: int, clips: int) -> list[int]:
    """Evaluation starts: each clip at the centre of its 1/clips share of the possible starts."""
    latest = max_start(num_frames, step, frames)
    return [int(np.floor(latest * (i + 0.5) / clips + 0.5)) for i in range(clips)]


def read_frames(reader: decord.VideoReader, indices: np.ndarray | Sequence[int], timing: str) -> torch.Tensor:
    """The frames at ``indices`` (any order, repeats allowed) as uint8 ``[*indices.shape, H, W, 3]``, each
    decoded once. With ``timing`` TIMESTAMPS decord seeks to them; otherwise (module docstring, "Frame
    timing") every frame up to the last wanted one is decoded in order, a chunk at a time."""
    if timing not in TIMINGS:
        raise ValueError(f"timing must be one of {TIMINGS}, got {timing!r}")
    indices = np.asarray(indices, dtype=np.int64)
    unique, inverse = np.unique(indices, return_inverse=True)
    if timing == TIMESTAMPS:
        frames = reader.get_batch(unique.tolist()).asnumpy()
    else:
        frames = _decode_in_order(reader, unique)
    return torch.from_numpy(frames)[torch.from_numpy(inverse.reshape(indices.shape))]


def _decode_in_order(reader: decord.VideoReader, wanted: np.ndarray) -> np.ndarray:
    """Frames ``wanted`` (sorted, unique) by decoding frames 0, 1, 2, ... in consecutive chunks. decord
    (0.6) seeks only when a batch does not continue where the last one stopped, here only to frame 0,
    which lands right without a timestamp (tests/test_frame_order.py checks this on the AVI files)."""
    kept = []
    for start in range(0, int(wanted[-1]) + 1, _IN_ORDER_CHUNK):
        stop = min(start + _IN_ORDER_CHUNK, int(wanted[-1]) + 1)
        chunk = reader.get_batch(list(range(start, stop))).asnumpy()
        kept.append(chunk[wanted[(wanted >= start) & (wanted < stop)] - start])
    return np.concatenate(kept)


def decode_video(path: str | Path) -> tuple[torch.Tensor, float]:
    """Every frame of a video as uint8 ``[N, H, W, 3]``, and its frame rate (for ``VideoDataset``'s cache).
    Decoded in order from the first frame, so right whatever the timing source."""
    reader = decord.VideoReader(str(path), num_threads=1)
    return read_frames(reader, np.arange(len(reader)), INDEX_OVER_FPS), reader.get_avg_fps()


def read_clips(path: str | Path, sampling: Sampling, starts: Sequence[int] | None = None,
               rng: np.random.Generator | None = None,
               decoded: tuple[torch.Tensor, float] | None = None, timing: str | None = None) -> torch.Tensor:
    """Decode clips as uint8 ``[clips, T, 3, H, W]``: at ``starts``, else one random start drawn
    from ``rng``, else ``sampling.clips`` evaluation starts. ``decoded`` (from ``decode_video``) is used
    instead of the file when given. ``timing`` is the video's recorded timing source (``VideoEntry``;
    None: checked on the file). Raises decord's error if decoding fails."""
    if decoded is None:
        reader = decord.VideoReader(str(path), num_threads=1)
        num_frames, fps = len(reader), reader.get_avg_fps()
        timing = timing or frame_timing(reader)[0]
    else:
        num_frames, fps = len(decoded[0]), decoded[1]
    step = sampling.step(fps)
    if starts is None and rng is not None:
        starts = [int(rng.integers(0, max_start(num_frames, step, sampling.frames) + 1))]
    elif starts is None:
        starts = clip_starts(num_frames, step, sampling.frames, sampling.clips)
    indices = np.stack([frame_indices(num_frames, step, sampling.frames, s) for s in starts])
    if decoded is not None:
        return decoded[0][torch.from_numpy(indices)].permute(0, 1, 4, 2, 3)
    return read_frames(reader, indices, timing).permute(0, 1, 4, 2, 3)


# --------------------------------------------------------------------------- spatial transforms


def random_resized_crop_box(height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float],
                            rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a crop with random area fraction and aspect ratio (Inception-style)."""
    for _ in range(10):
        area = height * width * rng.uniform(*scale)
        aspect = np.exp(rng.uniform(*np.log(ratio)))
        w, h = round(np.sqrt(area * aspect)), round(np.sqrt(area / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    side = min(height, width)  # fall back to the centre square
    return (height - side) // 2, (width - side) // 2, side, side


def train_transform(clip: torch.Tensor, sampling: Sampling, rng: np.random.Generator) -> torch.Tensor:
    """uint8 ``[T, 3, H, W]`` -> random resized crop (same box for every frame) + random flip."""
    import torchvision.transforms.v2.functional as F  # here: torchvision takes a second to import

    top, left, h, w = random_resized_crop_box(*clip.shape[-2:], sampling.crop_scale, sampling.crop_ratio, rng)
    clip = F.resized_crop(clip, top, left, h, w, [sampling.size, sampling.size], antialias=True)
    if sampling.flip and rng.random() < 0.5:
        clip = F.horizontal_flip(clip)
    return clip


def eval_crops(clip: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    """uint8 ``[T, 3, H, W]`` -> ``[crops, T, 3, size, size]``: short side resized to ``resize``,
    then crops evenly spaced along the long side (one crop: the centre)."""
    import torchvision.transforms.v2.functional as F  # here: torchvision takes a second to import

    clip = F.resize(clip, [sampling.resize or sampling.size], antialias=True)
    height, width = clip.shape[-2:]
    size, n = sampling.size, sampling.crops
    fractions = [0.5] if n == 1 else np.linspace(0.0, 1.0, n)
    if width >= height:
        boxes = [((height - size) // 2, round(f * (width - size))) for f in fractions]
    else:
        boxes = [(round(f * (height - size)), (width - size) // 2) for f in fractions]
    return torch.stack([F.crop(clip, top, left, size, size) for top, left in boxes])


def normalize(clips: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    """uint8 ``[..., T, 3, H, W]`` -> float32 ``[..., 3, T, H, W]`` of ``(x / 255 - mean) / std``."""
    import torchvision.transforms.v2.functional as F  # here: torchvision takes a second to import

    x = F.normalize(F.to_dtype(clips, torch.float32, scale=True), list(sampling.mean), list(sampling.std))
    return x.transpose(-4, -3).contiguous()


# --------------------------------------------------------------------------- dataset and loader


class ClipShape(Protocol):
    """A step's own clip shape (multigrid's ``ShapeSampling``): how to cut one training clip."""

    def cut(self, base: Sampling, rng: np.random.Generator) -> Sampling: ...


class VideoDataset(Dataset):
    """Map-style dataset of ``(video, label)`` over a ``VideoIndex``; None for a video that fails
    to decode at load time (drop it with ``collate_videos``).

    ``video`` is float32 ``[3, T, size, size]``, or ``[V, 3, T, size, size]`` in evaluation with
    V = clips x crops > 1. Training randomness comes from (seed, epoch, index) only.

    ``cache=True`` keeps every video decoded in memory after its first read (uint8, all frames): for
    small datasets read many times (the CPU proxy), where opening the files costs more than the model.
    Each loader worker holds its own cache, and workers are re-created each epoch, so it pays only with
    ``num_workers=0``.
    """

    def __init__(self, index: VideoIndex, sampling: Sampling, train: bool, seed: int = 0, cache: bool = False,
                 with_index: bool = False) -> None:
        self.index, self.sampling, self.train, self.seed = index, sampling, train, seed
        self.with_index = with_index  # samples are (video, label, i): which video each row of a batch is
        self.epoch = 0
        self.cache: dict[Path, tuple[torch.Tensor, float]] | None = {} if cache else None

    def set_epoch(self, epoch: int) -> None:
        """Call before each epoch (before iterating the loader, so its workers see it)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: int | tuple[int, ClipShape]) -> tuple[torch.Tensor, int] | None:
        """Sample ``key``: an index, or in training ``(index, shape)`` to cut the clip at a step's own
        shape (multigrid's batch sampler, ``benchmarks.engine.train.StepBatchSampler``)."""
        i, shape = key if isinstance(key, tuple) else (key, None)
        entry = self.index.entries[i]
        rng = np.random.default_rng([self.seed, self.epoch, i]) if self.train else None
        sampling = self.sampling if shape is None else shape.cut(self.sampling, rng)
        try:
            decoded = None
            if self.cache is not None:
                if entry.path not in self.cache:
                    self.cache[entry.path] = decode_video(entry.path)
                decoded = self.cache[entry.path]
            clips = read_clips(entry.path, sampling, rng=rng, decoded=decoded, timing=entry.timing)
        except DECODE_ERRORS as error:
            warnings.warn(f"skipping {entry.path} at load time: {str(error).strip().splitlines()[0]}", stacklevel=2)
            return None
        if self.train:
            return normalize(train_transform(clips[0], sampling, rng), sampling), entry.label
        views = torch.cat([eval_crops(clip, self.sampling) for clip in clips])  # clip-major
        video = normalize(views, self.sampling)
        video = video[0] if self.sampling.views == 1 else video
        return (video, entry.label, i) if self.with_index else (video, entry.label)


class VideoBatch(NamedTuple):
    videos: torch.Tensor  # [B, 3, T, H, W] or [B, V, 3, T, H, W]; empty if every sample was dropped
    labels: torch.Tensor  # int64 [B]
    n_dropped: int  # samples that failed to decode at load time (sum it over the epoch)


def collate_videos(batch: Sequence[tuple[torch.Tensor, int] | None]) -> VideoBatch:
    """Stack the samples that decoded; count the ones that did not (None)."""
    kept = [sample for sample in batch if sample is not None]
    if not kept:
        return VideoBatch(torch.empty(0), torch.empty(0, dtype=torch.long), len(batch))
    videos = torch.stack([video for video, _ in kept])
    labels = torch.tensor([label for _, label in kept], dtype=torch.long)
    return VideoBatch(videos, labels, len(batch) - len(kept))


class IndexedBatch(NamedTuple):
    """A :class:`VideoBatch` that also says which videos of the index its rows are (``with_index=True``)."""

    videos: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor  # int64 [B]: positions in the dataset's index
    n_dropped: int


def collate_indexed(batch: Sequence[tuple[torch.Tensor, int, int] | None]) -> IndexedBatch:
    """:func:`collate_videos` for samples that carry their index."""
    kept = [sample for sample in batch if sample is not None]
    stacked = collate_videos([(video, label) for video, label, _ in kept] + [None] * (len(batch) - len(kept)))
    indices = torch.tensor([i for _, _, i in kept], dtype=torch.long)
    return IndexedBatch(stacked.videos, stacked.labels, indices, stacked.n_dropped)


def evenly_spread(count: int, wanted: int | None = None) -> list[int]:
    """Indices of at most ``wanted`` (None: all) of ``count`` items, evenly spread: a subset of a split
    whose classes are stored one after the other still holds every class."""
    return np.unique(np.linspace(0, count - 1, min(wanted or count, count)).round().astype(int)).tolist()


def make_loader(
    dataset: Dataset,
    batch_size: int | None,
    shuffle: bool = False,
    num_workers: int = 0,
    sampler: Sampler | None = None,
    seed: int = 0,
    drop_last: bool = False,
    pin_memory: bool | None = None,
    collate_fn: Callable[[list], Any] = collate_videos,
    batch_sampler: Sampler | None = None,
) -> DataLoader:
    """A DataLoader yielding ``VideoBatch`` (or what ``collate_fn`` makes). With ``shuffle`` the order
    depends on (seed, epoch): call ``set_epoch(loader, epoch)`` each epoch. For DDP pass a
    ``DistributedSampler`` instead. A ``batch_sampler`` (with ``batch_size`` None) gives whole batches,
    of any size."""
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=num_workers, collate_fn=collate_fn,
                          pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory)
    if sampler is not None and shuffle:
        raise ValueError("pass shuffle=False with a sampler: the sampler decides the order "
                         "(e.g. DistributedSampler(dataset, shuffle=True, seed=seed))")
    if shuffle:  # a one-replica DistributedSampler is a shuffle seeded by (seed, epoch)
        sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_fn,
        drop_last=drop_last,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        persistent_workers=False,  # workers are re-created each epoch and so see set_epoch
    )


class ResumeSampler(Sampler[int]):
    """``sampler``'s indices for the epoch from position ``start`` on: resumes an epoch mid-way
    without decoding the videos already trained on."""

    def __init__(self, sampler: DistributedSampler, start: int = 0) -> None:
        self.sampler, self.start = sampler, start

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.sampler), self.start, None)

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.start)


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Set the epoch on the loader's dataset (crops) and sampler (order), where they have one."""
    for part in (loader.dataset, loader.sampler):
        if hasattr(part, "set_epoch"):
            part.set_epoch(epoch)
