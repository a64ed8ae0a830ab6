"""Videos whose frames show their own number, in the containers and codecs real datasets come in.

Frame i is grey-level stripes: the frame is cut into 8 horizontal bands, band b white when bit b of i is
set and black otherwise. Big, high-contrast bands survive compression, resizing, square crops of the
whole frame and horizontal flips, so the number can be read back from any decoded frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.data.videofile import write_video

SIZE = 64  # frame side; decord 0.6 cannot read some small sizes (16, 24, 48, 72), 64 is fine
BITS = 8
FPS = 10
FRAMES = 30


@dataclass(frozen=True)
class Encoding:
    name: str  # also the class directory of the numbered dataset
    suffix: str
    codec: str
    b_frames: int


ENCODINGS = (
    Encoding("mp4_h264", ".mp4", "libx264", 0),
    Encoding("mp4_h264_bframes", ".mp4", "libx264", 2),
    Encoding("avi_mpeg4_bframes", ".avi", "mpeg4", 2),  # MPEG-4 Part 2 (Xvid/DivX), as in UCF101 and HMDB51
    Encoding("avi_h264_bframes", ".avi", "libx264", 2),
)
AVI = tuple(e.name for e in ENCODINGS if e.suffix == ".avi")


def numbered_frames(count: int = FRAMES, size: int = SIZE) -> np.ndarray:
    """uint8 ``[count, size, size, 3]``: frame i shows the number i (module docstring)."""
    band = size // BITS
    bits = (np.arange(count)[:, None] >> np.arange(BITS)) & 1  # [count, BITS]
    rows = np.repeat(bits * 255, band, axis=1).astype(np.uint8)  # [count, BITS * band]
    rows = np.pad(rows, ((0, 0), (0, size - BITS * band)))
    return np.repeat(np.broadcast_to(rows[:, :, None, None], (count, size, size, 1)), 3, axis=3)


def frame_numbers(frames: np.ndarray | torch.Tensor, white: float = 255) -> list[int]:
    """The numbers shown by one-channel frames ``[T, H, W]`` (values in 0..``white``): each band's mean
    away from its edges, thresholded at half of ``white``."""
    frames = torch.as_tensor(np.asarray(frames, dtype=np.float32))
    band = frames.shape[1] // BITS
    bands = frames[:, :BITS * band].reshape(len(frames), BITS, band, -1)[:, :, 2:-2, 4:-4]
    bits = (bands.mean(dim=(2, 3)) > white / 2).to(torch.int64)
    return (bits << torch.arange(BITS)).sum(dim=1).tolist()


def write_numbered(path: Path, encoding: Encoding, count: int = FRAMES, fps: float = FPS) -> Path:
    """A ``count``-frame numbered video at ``fps`` in ``encoding``; ``path`` gets its suffix."""
    return write_video(path.with_suffix(encoding.suffix), numbered_frames(count), fps, encoding.codec,
                       b_frames=encoding.b_frames, crf=10)
