"""Writing real H.264 mp4 files (synthetic datasets and test fixtures). Reading is done with decord."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from benchmarks.core.store import atomic_path


def write_mp4(path: str | Path, frames: np.ndarray, fps: float = 10.0, crf: int = 18) -> Path:
    """Encode ``frames`` (``[T, H, W, 3]`` uint8 RGB) as an H.264 mp4 at ``fps``.

    H and W must be even (yuv420p). Written atomically (``benchmarks.core.store.atomic_path``): an
    interrupted writer never leaves a half-written video behind under the final name.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    t, h, w, _ = frames.shape
    if t == 0 or h % 2 or w % 2:
        raise ValueError(f"need at least one frame and even height/width, got T={t}, H={h}, W={w}")
    path = Path(path)
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=round(fps))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path
