"""Writing real video files with PyAV (synthetic datasets and test fixtures). Reading is done with decord.

``write_mp4`` is the H.264 mp4 of the synthetic datasets. ``write_video`` also writes the other
containers and codecs real datasets come in (UCF101 and HMDB51 are AVI: MPEG-4 Part 2 or H.264), with
B-frames on demand, so that tests can check frame order and timing on each.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from benchmarks.core.store import atomic_path

CONTAINERS = {".mp4": "mp4", ".avi": "avi"}  # file suffix -> PyAV (FFmpeg) container format
CODECS = ("libx264", "mpeg4")  # H.264 and MPEG-4 Part 2


def write_mp4(path: str | Path, frames: np.ndarray, fps: float = 10.0, crf: int = 18) -> Path:
    """Encode ``frames`` (``[T, H, W, 3]`` uint8 RGB) as an H.264 mp4 at ``fps``.

    H and W must be even (yuv420p). Written atomically (``benchmarks.core.store.atomic_path``): an
    interrupted writer never leaves a half-written video behind under the final name.
    """
    frames = _checked(frames)
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=round(fps))
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        _encode(container, stream, frames)
    return Path(path)


def write_video(path: str | Path, frames: np.ndarray, fps: float = 10.0, codec: str = "libx264",
                b_frames: int = 0, crf: int = 18) -> Path:
    """Encode ``frames`` (``[T, H, W, 3]`` uint8 RGB) with ``codec`` in the container of ``path``'s
    suffix (``CONTAINERS``), written atomically like ``write_mp4``.

    ``b_frames`` > 0 puts that many B-frames between every two reference frames: forced, because
    libx264 otherwise decides per scene and a test video must really have them (MPEG-4 Part 2 always
    uses the maximum). Quality: ``crf`` for libx264; MPEG-4 Part 2 at its finest quantiser.
    """
    frames = _checked(frames)
    suffix = Path(path).suffix.lower()
    if suffix not in CONTAINERS or codec not in CODECS:
        raise ValueError(f"can write {sorted(CONTAINERS)} with {list(CODECS)}, not {suffix!r} with {codec!r}")
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format=CONTAINERS[suffix]) as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "veryfast", "bf": str(b_frames), "b-adapt": "0"}
        else:
            stream.codec_context.max_b_frames = b_frames
            stream.codec_context.qmin = stream.codec_context.qmax = 2
        _encode(container, stream, frames)
    return Path(path)


def _checked(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    t, h, w, _ = frames.shape
    if t == 0 or h % 2 or w % 2:
        raise ValueError(f"need at least one frame and even height/width, got T={t}, H={h}, W={w}")
    return frames


def _encode(container: av.container.OutputContainer, stream: av.video.stream.VideoStream, frames: np.ndarray) -> None:
    """Encode every frame (yuv420p) and flush the encoder."""
    stream.height, stream.width = frames.shape[1:3]
    stream.pix_fmt = "yuv420p"
    for image in frames:
        container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
    container.mux(stream.encode())
