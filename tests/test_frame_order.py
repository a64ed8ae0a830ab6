"""Frames are read right on every container: the i-th frame the suite decodes shows number i, and the
frames chosen at an fps are the right ones, on H.264 mp4 (with and without B-frames) and on AVI with
B-frames (MPEG-4 Part 2, H.264), whose timestamps decord cannot give (benchmarks.data.videos, "Frame
timing").

Every video is 30 numbered frames at 10 fps (tests/numbered_videos.py). Expected frames by hand, from the
rules of benchmarks.data.videos (frame k of a clip at ``start + floor(k * 10 / fps)``, evaluation starts
centred in equal shares of the possible starts) and of benchmarks.table1.protocols (torchvision's
VideoClips: resample to fps, cut into consecutive clips).
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import decord
import numpy as np
import pytest

from benchmarks.data import videos
from benchmarks.data.videos import (
    INDEX_OVER_FPS,
    TIMESTAMPS,
    Sampling,
    VideoDataset,
    VideoIndex,
    decode_video,
    read_clips,
    timestamp_problem,
)
from benchmarks.table1.protocols import ClipDataset, ClipProtocol
from tests.numbered_videos import AVI, ENCODINGS, FRAMES, frame_numbers, numbered_frames, write_numbered

pytestmark = pytest.mark.usefixtures("one_thread")

NAMES = [e.name for e in ENCODINGS]
# 8 frames at 5 fps (step 2, span 14): the latest start is 29 - 14 = 15, three clips start at 3, 8, 13.
EVAL = Sampling(frames=8, fps=5, size=64, clips=3)
EVAL_CLIPS = [list(range(3, 18, 2)), list(range(8, 23, 2)), list(range(13, 28, 2))]
# 6 frames at 4 fps (step 2.5): offsets floor(2.5 k) = 0, 2, 5, 7, 10, 12; starts 0..17. The whole frame
# is the crop (a square video), and the horizontal stripes are the same flipped.
TRAIN = Sampling(frames=6, fps=4, size=64, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0))
TRAIN_OFFSETS = [0, 2, 5, 7, 10, 12]


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoding in order goes 7 frames at a time, so that chunk boundaries fall inside every video and clip."""
    monkeypatch.setattr(videos, "_IN_ORDER_CHUNK", 7)


@pytest.fixture(scope="module")
def numbered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One numbered video per encoding, as ``ROOT/train/<encoding>/video.<ext>`` (its class)."""
    root = tmp_path_factory.mktemp("numbered")
    return {e.name: write_numbered(root / "train" / e.name / "video", e) for e in ENCODINGS}


@pytest.fixture(scope="module")
def index(numbered: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> VideoIndex:
    root = next(iter(numbered.values())).parents[2]
    return VideoIndex.build(root, "train", cache_dir=tmp_path_factory.mktemp("index_cache"))


def entry_of(index: VideoIndex, name: str) -> int:
    return next(i for i, e in enumerate(index.entries) if index.classes[e.label] == name)


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
            assert timestamp_problem(starts) == "invalid pts"
            assert any(number != i for i, number in seeks.items()), (name, seeks)
        else:
            assert starts == pytest.approx(np.arange(FRAMES) / 10, abs=1e-6)
            assert all(number == i for i, number in seeks.items()), (name, seeks)


# --------------------------------------------------------------------------- indexing


def test_timestamp_problem():
    assert timestamp_problem(np.array([0.0, 0.1, 0.2])) is None
    assert timestamp_problem(np.array([0.5, 0.6])) is None  # a late first frame is fine
    assert timestamp_problem(np.full(3, -9.223372e17)) == "invalid pts"
    assert timestamp_problem(np.array([0.0, np.nan, 0.2])) == "invalid pts"
    assert timestamp_problem(np.array([0.0, np.inf])) == "invalid pts"
    assert timestamp_problem(np.array([-0.1, 0.0, 0.1])) == "invalid pts"
    assert timestamp_problem(np.array([0.0, 0.2, 0.1])) == "non-monotonic pts"
    assert timestamp_problem(np.array([0.0, 0.1, 0.1])) == "non-monotonic pts"


def test_index_records_each_videos_timing_source(index):
    timing = {index.classes[e.label]: (e.timing, e.timing_reason) for e in index.entries}
    assert timing == {"mp4_h264": (TIMESTAMPS, None), "mp4_h264_bframes": (TIMESTAMPS, None),
                      "avi_mpeg4_bframes": (INDEX_OVER_FPS, "invalid pts"),
                      "avi_h264_bframes": (INDEX_OVER_FPS, "invalid pts")}
    assert index.summary()["timing"] == {TIMESTAMPS: 2, INDEX_OVER_FPS: 2}
    assert {(e.num_frames, e.fps) for e in index.entries} == {(FRAMES, 10.0)}


def test_probe_cache_holds_the_timing_and_older_caches_are_probed_again(numbered, tmp_path, monkeypatch):
    root = next(iter(numbered.values())).parents[2]
    VideoIndex.build(root, "train", cache_dir=tmp_path)
    [cache_file] = tmp_path.glob("grw_index_*_train.json")
    cache = json.loads(cache_file.read_text())
    assert cache["version"] == 2
    assert {key: record["timing"] for key, record in cache["files"].items()} == {
        str(path.relative_to(root)): INDEX_OVER_FPS if name in AVI else TIMESTAMPS for name, path in numbered.items()}

    # a version-1 cache (records without timing) is not trusted: every video is opened again
    old = {key: {k: record[k] for k in ("size", "mtime_ns", "num_frames", "fps")}
           for key, record in cache["files"].items()}
    cache_file.write_text(json.dumps({"version": 1, "files": old}))
    opened = []
    real_reader = decord.VideoReader
    monkeypatch.setattr(decord, "VideoReader", lambda path, *a, **k: opened.append(path) or real_reader(path, *a, **k))
    again = VideoIndex.build(root, "train", cache_dir=tmp_path)
    assert len(opened) == len(numbered)
    assert again.summary()["timing"] == {TIMESTAMPS: 2, INDEX_OVER_FPS: 2}
    assert json.loads(cache_file.read_text())["files"] == cache["files"]


# --------------------------------------------------------------------------- decoding and sampling


@pytest.mark.parametrize("name", NAMES)
def test_decode_video_gives_every_frame_in_display_order(numbered, name):
    frames, fps = decode_video(numbered[name])
    assert fps == 10 and frame_numbers(frames[..., 0]) == list(range(FRAMES))


@pytest.mark.parametrize("timing", [None, "recorded"])
@pytest.mark.parametrize("name", NAMES)
def test_read_clips_takes_the_frames_of_the_sampling(numbered, index, name, timing):
    """Clips start mid-video and end on the last frame, where a seek goes wrong on AVI."""
    path = numbered[name]
    timing = index.entries[entry_of(index, name)].timing if timing else None

    def numbers(sampling: Sampling, **kwargs) -> list[list[int]]:
        return [frame_numbers(clip[:, 0]) for clip in read_clips(path, sampling, timing=timing, **kwargs)]

    assert numbers(EVAL) == EVAL_CLIPS
    assert numbers(Sampling(frames=4, stride=3), starts=[17, 1]) == [[17, 20, 23, 26], [1, 4, 7, 10]]
    assert numbers(Sampling(frames=8, fps=2)) == [[0, 5, 10, 15, 20, 25, 29, 29]]  # short: the last repeats
    for seed in range(3):
        start = int(np.random.default_rng(seed).integers(0, 18))  # read_clips' first draw
        assert numbers(TRAIN, rng=np.random.default_rng(seed)) == [[start + k for k in TRAIN_OFFSETS]]


@pytest.mark.parametrize("cache", [False, True])
def test_dataset_samples_show_the_frames_of_the_sampling(index, cache):
    """The path of training and evaluation: VideoDataset, with the recorded timing (or the decoded cache)."""
    evaluation = VideoDataset(index, EVAL, train=False, cache=cache)
    training = VideoDataset(index, TRAIN, train=True, seed=4, cache=cache)
    training.set_epoch(2)
    for i, entry in enumerate(index.entries):
        video, label = evaluation[i]
        assert label == entry.label and video.shape == (3, 3, 8, 64, 64)
        assert [frame_numbers(view[0], white=1) for view in video] == EVAL_CLIPS, index.classes[entry.label]
        clip, _ = training[i]
        start = int(np.random.default_rng([4, 2, i]).integers(0, 18))
        assert frame_numbers(clip[0], white=1) == [start + k for k in TRAIN_OFFSETS], index.classes[entry.label]


def test_the_authors_protocol_takes_the_frames_of_its_clips(index):
    """At 4 fps (step 2.5): floor(30 * 4 / 10) = 12 resampled frames floor(2.5 k), two clips of 5; at
    5 fps (step 2): frames 0, 2, ..., 28, three clips of 5."""
    expected = {4: [[0, 2, 5, 7, 10], [12, 15, 17, 20, 22]],
                5: [[0, 2, 4, 6, 8], [10, 12, 14, 16, 18], [20, 22, 24, 26, 28]]}
    for fps, clips in expected.items():
        dataset = ClipDataset(index, ClipProtocol(frames=5, fps=fps, resize=64, crop=64))
        assert len(dataset) == len(clips) * len(index.entries)
        for i in range(len(dataset)):
            clip, label, video = dataset[i]
            assert label == index.entries[video].label
            assert frame_numbers(clip[0], white=1) == clips[dataset.clips[i].clip], (fps, index.classes[label])
