"""Tiny synthetic datasets in Kinetics format, made of real H.264 mp4 files (tests and smoke runs).

``write_motion_dataset`` writes classes that differ only in motion direction: a random smooth colour
texture drifts left, right, up or down at 1-3 px per frame from a random offset. Any single frame is
class-ambiguous, so a model has to use time. Layout and annotation CSVs follow ``benchmarks.data.videos``::

    ROOT/{train,val}/<class>/<youtube_id>_<time_start:06d>_<time_end:06d>.mp4   (some: <youtube_id>.mp4)
    ROOT/annotations/{train,val}.csv     label,youtube_id,time_start,time_end,split

With ``broken=True`` the first class of the train split also gets one file of each kind the pipeline
must survive: random bytes named .mp4 (unreadable), a 0-byte file (empty), a 3-frame video
(too_short), an annotation row without a file (missing), and a video whose coded frames are
overwritten (it indexes, then fails to decode at load time).
"""

from __future__ import annotations

import csv
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch

from benchmarks.core.store import write_json
from benchmarks.data.videofile import write_mp4
from benchmarks.data.videos import SKIP_REASONS

DATASET_NAME = "toy-motion (synthetic test data)"

# Direction the content moves in, as (dy, dx) per pixel of speed.
DIRECTIONS = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}
DEFAULT_VIDEOS_PER_CLASS = {"train": 6, "val": 3}
_BROKEN_SPLIT = "train"


@dataclass(frozen=True)
class ToyDataset:
    """What ``write_motion_dataset`` wrote."""

    root: Path
    classes: tuple[str, ...]  # sorted: the class index order
    videos: dict[str, int]  # per split: videos a VideoIndex keeps (includes the load-time failure)
    annotations: dict[str, Path]  # per split: the annotation CSV
    # Broken inputs (all in the train split), relative to root: "unreadable", "empty", "too_short",
    # "missing" (a CSV row only) and "load_failure" (indexes, fails to decode); empty if broken=False.
    broken_files: dict[str, Path]

    def expected_skipped(self, split: str, annotations: bool = True) -> dict[str, int]:
        """``VideoIndex.skipped`` for ``split`` built from its CSV (or, annotations=False, by scanning
        the folders, which cannot see the missing file)."""
        counts = dict.fromkeys(SKIP_REASONS, 0)
        if split == _BROKEN_SPLIT:
            for reason in SKIP_REASONS:
                counts[reason] = int(reason in self.broken_files and (annotations or reason != "missing"))
        return counts


def write_motion_dataset(
    root: str | Path,
    classes: Sequence[str] = ("left", "right", "down"),
    videos_per_class: Mapping[str, int] = DEFAULT_VIDEOS_PER_CLASS,
    frames: tuple[int, int] = (24, 40),
    size: int = 64,
    fps: float = 10.0,
    seed: int = 0,
    broken: bool = True,
) -> ToyDataset:
    """Write a motion-direction dataset under ``root``; identical files for the same arguments.

    ``frames`` is the (min, max) video length; ``videos_per_class`` maps split -> videos per class.
    """
    unknown = [name for name in classes if name not in DIRECTIONS]
    if unknown or not classes:
        raise ValueError(f"classes must be some of {list(DIRECTIONS)}, got {list(classes)}")
    if not 1 <= frames[0] <= frames[1] or size < 16 or size % 2:
        raise ValueError(f"need 1 <= frames[0] <= frames[1] and an even size >= 16, got {frames}, {size}")
    if broken and _BROKEN_SPLIT not in videos_per_class:
        raise ValueError(f"broken=True writes its broken files into {_BROKEN_SPLIT!r}: add it to videos_per_class")
    root, rng = Path(root), np.random.default_rng(seed)
    rows: dict[str, list[dict]] = {split: [] for split in videos_per_class}
    broken_files: dict[str, Path] = {}

    def add_video(split: str, label: str, clip: np.ndarray | None, short_name: bool = False) -> Path:
        row = {"label": label, "youtube_id": _youtube_id(rng), "time_start": int(rng.integers(0, 300))}
        row.update(time_end=row["time_start"] + 10, split=split)
        name = row["youtube_id"] if short_name else f"{row['youtube_id']}_{row['time_start']:06d}_{row['time_end']:06d}"
        rows[split].append(row)
        path = root / split / label / f"{name}.mp4"
        if clip is not None:
            write_mp4(path, clip, fps=fps)
        return path

    for split, count in videos_per_class.items():
        for label in classes:
            for i in range(count):
                length = int(rng.integers(frames[0], frames[1] + 1))
                add_video(split, label, motion_clip(rng, label, length, size), short_name=i % 3 == 2)

    if broken:
        split, label = _BROKEN_SPLIT, classes[0]
        broken_files = {
            "unreadable": add_video(split, label, None),
            "empty": add_video(split, label, None),
            "too_short": add_video(split, label, motion_clip(rng, label, 3, size)),
            "missing": add_video(split, label, None),  # an annotation row only
            "load_failure": add_video(split, label, motion_clip(rng, label, frames[1], size)),
        }
        broken_files["unreadable"].write_bytes(rng.bytes(2048))
        broken_files["empty"].write_bytes(b"")
        _corrupt_frame_data(broken_files["load_failure"], rng)
        broken_files = {kind: path.relative_to(root) for kind, path in broken_files.items()}

    annotations = {split: _write_csv(root / "annotations" / f"{split}.csv", split_rows)
                   for split, split_rows in rows.items()}
    videos = {split: count * len(classes) + int(broken and split == _BROKEN_SPLIT)
              for split, count in videos_per_class.items()}
    # The name runs on this data are stored under, so they can never pass for Kinetics-600 results.
    write_json(root / "dataset.json", {"name": DATASET_NAME, "classes": sorted(classes), "videos": videos,
                                              "seed": seed, "size": size, "fps": fps})
    return ToyDataset(root, tuple(sorted(classes)), videos, annotations, broken_files)


def motion_clip(rng: np.random.Generator, direction: str, frames: int, size: int) -> np.ndarray:
    """uint8 ``[frames, size, size, 3]``: a window onto a random texture, the content moving in
    ``direction`` by a random 1-3 px per frame."""
    dy, dx = DIRECTIONS[direction]
    speed = int(rng.integers(1, 4))
    travel = speed * (frames - 1)
    texture = _texture(rng, size + 2 * travel + 16)
    y0, x0 = rng.integers(0, 16, size=2) + travel
    # The window moves against the motion so the content moves along it.
    windows = [(y0 - dy * speed * t, x0 - dx * speed * t) for t in range(frames)]
    return np.stack([texture[y:y + size, x:x + size] for y, x in windows])


def _texture(rng: np.random.Generator, side: int) -> np.ndarray:
    """Smooth random colour blobs plus fine grain, uint8 ``[side, side, 3]``."""
    def noise(cell: int) -> torch.Tensor:
        coarse = torch.from_numpy(rng.uniform(0, 255, (1, 3, side // cell + 2, side // cell + 2)))
        return torch.nn.functional.interpolate(coarse, scale_factor=cell, mode="bilinear")[0, :, :side, :side]
    image = 0.75 * noise(8) + 0.25 * noise(2)
    return image.permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def _youtube_id(rng: np.random.Generator) -> str:
    alphabet = np.array(list(string.ascii_letters + string.digits + "-_"))
    return "".join(rng.choice(alphabet, 11))


def _corrupt_frame_data(path: Path, rng: np.random.Generator) -> None:
    """Overwrite every coded frame but the first (the keyframe decord probes on open) with random
    bytes: the file opens and reports its frames, but decoding fails at load time."""
    with av.open(str(path)) as container:
        packets = [(p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size]
    data = bytearray(path.read_bytes())
    for position, size in packets[1:]:
        data[position:position + size] = rng.bytes(size)
    path.write_bytes(bytes(data))


def _write_csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["label", "youtube_id", "time_start", "time_end", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return path
