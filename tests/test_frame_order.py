"""Numbered videos (tests/numbered_videos.py: 30 frames at 10 fps, frame i shows i) on H.264 mp4 (with
and without B-frames) and on AVI with B-frames (MPEG-4 Part 2, H.264), and what PyAV and decord make
of them: display order, pts order, decord's timestamps and seeks.
"""

from __future__ import annotations

from pathlib import Path

import av
import decord
import numpy as np
import pytest

from tests.numbered_videos import AVI, ENCODINGS, FRAMES, frame_numbers, numbered_frames, write_numbered

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def numbered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One numbered video per encoding, as ``ROOT/train/<encoding>/video.<ext>`` (its class)."""
    root = tmp_path_factory.mktemp("numbered")
    return {e.name: write_numbered(root / "train" / e.name / "video", e) for e in ENCODINGS}


# --------------------------------------------------------------------------- the videos and what decord sees


def test_numbers_survive_the_encoding():
    assert frame_numbers(numbered_frames(FRAMES)[..., 0]) == list(range(FRAMES))


def test_the_videos_have_b_frames_and_h264_in_avi_has_pts_in_decode_order(numbered):
    """What torchvision's read_video does (frames keyed by pts, then sorted) is right on mp4 and MPEG-4
    Part 2 in AVI, but on H.264 in AVI the pts are in decode order: sorted, frame 3 comes before 1 and 2."""
    for name, path in numbered.items():
        with av.open(str(path)) as container:
            decoded = [(f.pts, f.pict_type, frame_numbers(f.to_ndarray(format="rgb24")[None, ..., 0])[0])
                       for f in container.decode(video=0)]
        assert [number for _, _, number in decoded] == list(range(FRAMES)), name  # decoders output display order
        has_b = any(kind == av.video.frame.PictureType.B for _, kind, _ in decoded)
        assert has_b == name.endswith("_bframes"), name
        by_pts = [number for _, _, number in sorted(decoded, key=lambda d: d[0])]
        if name == "avi_h264_bframes":
            assert by_pts[:7] == [0, 3, 1, 2, 6, 4, 5]
        else:
            assert by_pts == list(range(FRAMES)), name


def test_decord_has_no_timestamps_for_avi_and_seeks_wrong_there(numbered):
    """Why the AVI files are decoded in order: decord gives FFmpeg's "no pts" (-2^63 / 10 s) as the time
    of every frame of H.264 in AVI and of the first 11 of MPEG-4 Part 2 in AVI (then a strictly
    increasing subset of the display times, 0.2, 0.3, 0.5, ...), and reading a single frame (a seek)
    returns another one."""
    for name, path in numbered.items():
        reader = decord.VideoReader(str(path), num_threads=1)
        assert len(reader) == FRAMES and reader.get_avg_fps() == 10
        starts = reader.get_frame_timestamp(list(range(FRAMES)))[:, 0]
        seeks = {i: frame_numbers(decord.VideoReader(str(path), num_threads=1)[i].asnumpy()[None, ..., 0])[0]
                 for i in (12, 17, 25, 29)}
        if name in AVI:
            no_pts = np.isclose(starts, -2.0**63 / 10, rtol=1e-6, atol=0)
            assert no_pts.sum() == (FRAMES if name == "avi_h264_bframes" else 11), (name, starts)
            assert any(number != i for i, number in seeks.items()), (name, seeks)
        else:
            assert starts == pytest.approx(np.arange(FRAMES) / 10, abs=1e-6)
            assert all(number == i for i, number in seeks.items()), (name, seeks)
