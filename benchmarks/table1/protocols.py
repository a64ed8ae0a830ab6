"""The GRW authors' evaluation protocol: every N-frame clip of every video, one sample each.

``eval --protocol authors`` (``EvalConfig.protocol = "authors"``) evaluates the GRW rows (1, 6, 12,
15) as the authors' scripts do; the suite's own protocol (``--protocol suite``, the default) is the
per-video one of ``benchmarks.data.videos``. What the authors do, read in ``gilgoldm/grw-smoothing`` at
``benchmarks.table1.specs.AUTHORS_COMMIT`` (paths under ``benchmarks.table1.specs.AUTHORS_PACKAGE``), and how it
is reproduced here:

- ``backbones/movinets/*/a*_test.py`` builds ``KineticsDs`` (``data/kinetics_ds.py``), a subclass of
  torchvision's ``Kinetics``, with ``frames_per_clip=N``, ``step_between_clips=N`` and
  ``frame_rate=fps`` (``cli.py kinetics_test --N --fps``; the values per row are
  ``benchmarks.table1.specs.AUTHORS_EVALUATION``). Their precomputed metadata pickle (``cli.py
  kinetics_create_clips``) only caches each video's frame timestamps and fps: the clips are
  recomputed from those with the test's ``N`` and ``fps``.
- torchvision's ``VideoClips`` (``compute_clips_for_video``, ``_resample_video_idx``, ``unfold``)
  then resamples each video to ``fps``: with ``step = native_fps / fps`` an integer it keeps every
  ``step``-th frame (``ceil(num_frames / step)`` frames); otherwise it keeps native frames
  ``floor(k * step)`` computed in float32, for ``k < floor(num_frames * fps / native_fps)`` (frames
  repeat when ``fps`` exceeds the native rate). :func:`resampled_frames` does the same.
- The resampled sequence is cut into consecutive, non-overlapping clips of ``N`` frames
  (``unfold(size=N, step=N)``): the tail that does not fill a clip is dropped, and a video with fewer
  than ``N`` resampled frames has no clip at all (torchvision warns and skips it). Every clip is one
  sample with the video's label: :func:`clip_layout`, :class:`ClipDataset`.
- Transform (``transform_test``): ``uint8 -> float32``, ``/ 255`` *first*, then torchvision's
  ``Resize((s, s))`` on the float frames (bilinear, antialias on: torchvision's default since 0.17;
  their lock file pins 0.24.1), aspect ratio not kept, then ``CenterCrop(c)``. No mean/std:
  :func:`square_resize_crop`.
- The model: ``MovinetBackbone.forward`` clears the stream buffers before and after each forward and
  feeds the whole clip at once, so every clip starts from empty buffers; here each clip is one
  whole-clip forward of the suite's model.
- Accuracy: ``sklearn.metrics.accuracy_score`` of per-clip predictions, i.e. top-1 over clips.

Not reproduced (artefacts of their launch settings, which are not stated): their ``DataLoader`` uses
``drop_last=True`` under a ``DistributedSampler`` (which pads the dataset to a multiple of the world
size with repeated clips), and the reported accuracy is the mean of the per-process accuracies. Here
every clip counts exactly once, which is their number for one process and a batch size dividing the
clip count. Frames are decoded with decord at the same native indices where their torchvision read
them with PyAV by timestamp; frame counts and fps come from decord (``VideoIndex``). The clip layout
uses only the frame count and average fps, as ``VideoClips`` does with evenly spaced timestamps, and the
frames are read by the video's recorded timing source (``benchmarks.data.videos``, "Frame timing"), so
no invalid timestamp is read. One difference is theirs: torchvision's ``read_video`` orders frames by
pts, and H.264 in AVI (pts in decode order) comes out in decode order there, in display order here.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import decord
import numpy as np
import torch
import torchvision.transforms.v2.functional as F
from torch.utils.data import Dataset

from benchmarks.data.videos import DECODE_ERRORS, VideoIndex, read_frames
from benchmarks.table1.clip_protocol import (  # noqa: F401  (the protocol's values, also as protocols.*)
    OVERRIDABLE,
    PER_VIDEO_AGGREGATION,
    PROTOCOLS,
    SUITE_PROTOCOL,
    ClipProtocol,
    authors_protocol,
    describe,
)

# --------------------------------------------------------------------------- clip layout


def resampled_frames(num_frames: int, native_fps: float, fps: float) -> np.ndarray:
    """Native frame indices of a video resampled to ``fps``, as torchvision's ``VideoClips`` picks them
    (module docstring): every ``step``-th frame for an integer ``step = native_fps / fps``, else
    ``floor(k * step)`` in float32 for ``k < floor(num_frames * fps / native_fps)``."""
    step = native_fps / fps
    if step.is_integer():
        return np.arange(0, num_frames, int(step), dtype=np.int64)
    count = int(math.floor(num_frames * fps / native_fps))
    # float32 on purpose: the indices (and so the frames) must be the ones torchvision's float32 arange gives
    return (torch.arange(count, dtype=torch.float32) * step).floor().to(torch.int64).numpy()


def clip_layout(num_frames: int, native_fps: float, protocol: ClipProtocol) -> np.ndarray:
    """``[clips, frames]`` native frame indices: consecutive, non-overlapping ``frames``-frame clips of
    the resampled video; the tail that does not fill a clip is dropped (no clip for a short video)."""
    frames = resampled_frames(num_frames, native_fps, protocol.fps)
    clips = len(frames) // protocol.frames
    return frames[:clips * protocol.frames].reshape(clips, protocol.frames)


# --------------------------------------------------------------------------- transform


def square_resize_crop(frames: torch.Tensor, protocol: ClipProtocol) -> torch.Tensor:
    """uint8 ``[T, 3, H, W]`` -> float32 ``[T, 3, crop, crop]`` in [0, 1]: ``/ 255`` first, then a bilinear
    antialiased resize to ``resize`` x ``resize`` (aspect ratio not kept), then the centre crop."""
    x = frames.to(torch.float32) / 255
    x = F.resize(x, [protocol.resize, protocol.resize], interpolation=F.InterpolationMode.BILINEAR, antialias=True)
    return F.center_crop(x, [protocol.crop, protocol.crop])


# --------------------------------------------------------------------------- dataset


class ClipRef(NamedTuple):
    video: int  # index in the VideoIndex
    clip: int  # clip number within the video


class ClipSample(NamedTuple):
    clip: torch.Tensor  # float32 [3, frames, crop, crop]
    label: int
    video: int


class ClipDataset(Dataset):
    """One item per clip of every video of ``index`` (:func:`clip_layout`); decodes only the clip's
    frames. None for a clip that fails to decode (``collate_clips`` drops and counts it)."""

    def __init__(self, index: VideoIndex, protocol: ClipProtocol) -> None:
        self.index, self.protocol = index, protocol
        self.layouts = [clip_layout(entry.num_frames, entry.fps, protocol) for entry in index.entries]
        self.clips = [ClipRef(video, clip) for video, layout in enumerate(self.layouts) for clip in range(len(layout))]

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def videos_without_clip(self) -> int:
        """Videos shorter than one clip at ``fps``: they give no sample (as in the authors' code)."""
        return sum(1 for layout in self.layouts if len(layout) == 0)

    def __getitem__(self, i: int) -> ClipSample | None:
        video, clip = self.clips[i]
        entry = self.index.entries[video]
        indices = self.layouts[video][clip]
        try:
            reader = decord.VideoReader(str(entry.path), num_threads=1)
            frames = read_frames(reader, indices, entry.timing)  # upsampling repeats frames: decoded once
        except DECODE_ERRORS as error:
            warnings.warn(f"skipping clip {clip} of {entry.path} at load time: "
                          f"{str(error).strip().splitlines()[0]}", stacklevel=2)
            return None
        clip_tensor = square_resize_crop(frames.permute(0, 3, 1, 2), self.protocol)  # [T, 3, crop, crop]
        return ClipSample(clip_tensor.transpose(0, 1).contiguous(), entry.label, video)


class ClipBatch(NamedTuple):
    clips: torch.Tensor  # [B, 3, frames, crop, crop]; empty if every clip was dropped
    labels: torch.Tensor  # int64 [B]
    videos: torch.Tensor  # int64 [B]: each clip's video (index in the VideoIndex)
    n_dropped: int  # clips that failed to decode


def collate_clips(batch: Sequence[ClipSample | None]) -> ClipBatch:
    """Stack the clips that decoded; count the ones that did not (None)."""
    kept = [sample for sample in batch if sample is not None]
    if not kept:
        empty = torch.empty(0, dtype=torch.long)
        return ClipBatch(torch.empty(0), empty, empty, len(batch))
    return ClipBatch(torch.stack([s.clip for s in kept]), torch.tensor([s.label for s in kept], dtype=torch.long),
                     torch.tensor([s.video for s in kept], dtype=torch.long), len(batch) - len(kept))
