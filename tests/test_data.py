"""The Kinetics data pipeline on real mp4 files: index, cache, sampling, transforms, bad input."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import decord
import numpy as np
import pytest
import torch

from benchmarks.data.toydata import DIRECTIONS, motion_clip, write_motion_dataset
from benchmarks.data.videofile import write_mp4
from benchmarks.data.videos import (
    X3D_NORM,
    Sampling,
    VideoDataset,
    VideoIndex,
    clip_starts,
    collate_videos,
    frame_indices,
    load_classes,
    make_loader,
    read_clips,
    save_classes,
    set_epoch,
    train_transform,
)

# Skips are expected here; the tests that are about them check the warnings with pytest.warns.
pytestmark = pytest.mark.filterwarnings("ignore:.*skipp:UserWarning")

SMALL = Sampling(frames=4, fps=5, size=16)


def counting_video(path: Path, frames: int, fps: float = 10, height: int = 32, width: int = 32) -> Path:
    """Grey frames whose brightness encodes the frame index (8 * index)."""
    values = 8 * np.arange(frames, dtype=np.uint8)
    return write_mp4(path, np.broadcast_to(values[:, None, None, None], (frames, height, width, 3)).copy(), fps)


def decoded_indices(clip: torch.Tensor) -> list[int]:
    """Frame indices back from a uint8 [T, 3, H, W] clip of a counting video."""
    return [round(v) for v in (clip.float().mean(dim=(1, 2, 3)) / 8).tolist()]


def copy_of(dataset_root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(dataset_root, tmp_path / "kinetics"))


def good_videos(index: VideoIndex, toy) -> list[Path]:
    return [e.path for e in index.entries if e.path != index.root / toy.broken_files["load_failure"]]


# --------------------------------------------------------------------------- index


@pytest.mark.parametrize("from_annotations", [True, False])
@pytest.mark.parametrize("split", ["train", "val"])
def test_index_keeps_readable_videos_and_counts_skips(tiny_kinetics, split, from_annotations, tmp_path):
    annotations = tiny_kinetics.annotations[split] if from_annotations else None
    index = VideoIndex.build(tiny_kinetics.root, split, annotations=annotations, cache_dir=tmp_path)
    assert len(index) == tiny_kinetics.videos[split]
    assert index.skipped == tiny_kinetics.expected_skipped(split, annotations=from_annotations)
    assert index.summary()["skipped"] == index.skipped
    for entry in index.entries:
        assert index.classes[entry.label] == entry.path.parent.name
        assert entry.num_frames >= 24 and entry.fps == pytest.approx(10)


def test_skips_are_reported_in_one_warning(tiny_kinetics, tmp_path):
    with pytest.warns(UserWarning, match=r"skipped 4 videos") as record:
        VideoIndex.build(tiny_kinetics.root, "train", tiny_kinetics.annotations["train"], cache_dir=tmp_path)
    assert len([w for w in record if "skipped" in str(w.message)]) == 1


def test_class_order_is_sorted_saved_and_reused(tiny_kinetics, tmp_path):
    train = VideoIndex.build(tiny_kinetics.root, "train", cache_dir=tmp_path)
    assert train.classes == tuple(sorted(tiny_kinetics.classes)) == ("down", "left", "right")
    assert load_classes(save_classes(tmp_path / "classes.json", train.classes)) == train.classes

    val = VideoIndex.build(tiny_kinetics.root, "val", classes=("right", "left"), cache_dir=tmp_path)
    assert val.classes == ("right", "left")
    assert {val.classes[e.label] == e.path.parent.name for e in val.entries} == {True}
    assert len(val) == 6 and val.skipped["unknown_class"] == 3  # the 3 "down" videos


def test_second_build_reads_the_cache_without_opening_videos(tiny_kinetics, tmp_path, monkeypatch):
    root = copy_of(tiny_kinetics.root, tmp_path)
    first = VideoIndex.build(root, "train", root / "annotations" / "train.csv")

    def no_decoding(*args, **kwargs):
        raise AssertionError("the cached index should not open any video")

    monkeypatch.setattr(decord, "VideoReader", no_decoding)
    second = VideoIndex.build(root, "train", root / "annotations" / "train.csv")
    assert second.entries == first.entries and second.skipped == first.skipped


def test_cache_entry_is_invalidated_when_its_file_changes(tiny_kinetics, tmp_path, monkeypatch):
    root = copy_of(tiny_kinetics.root, tmp_path)
    first = VideoIndex.build(root, "train", cache_dir=tmp_path / "cache")
    opened = []
    real_reader = decord.VideoReader

    def counting_reader(path, *args, **kwargs):
        opened.append(Path(path))
        return real_reader(path, *args, **kwargs)

    monkeypatch.setattr(decord, "VideoReader", counting_reader)
    touched, replaced = good_videos(first, tiny_kinetics)[:2]
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert len(VideoIndex.build(root, "train", cache_dir=tmp_path / "cache")) == len(first)
    assert opened == [touched]

    write_mp4(replaced, motion_clip(np.random.default_rng(1), "left", 3, 64))  # now too short
    third = VideoIndex.build(root, "train", cache_dir=tmp_path / "cache")
    assert opened[1:] == [replaced]
    assert len(third) == len(first) - 1
    assert third.skipped["too_short"] == first.skipped["too_short"] + 1


def test_no_readable_video_fails_with_root_and_split(tmp_path):
    (tmp_path / "train" / "a").mkdir(parents=True)
    (tmp_path / "train" / "a" / "empty.mp4").write_bytes(b"")
    (tmp_path / "train" / "a" / "noise.mp4").write_bytes(os.urandom(1000))
    with pytest.raises(ValueError, match=rf"no readable video in {re.escape(str(tmp_path))} split 'train'.*'empty': 1"):
        VideoIndex.build(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "val"))):
        VideoIndex.build(tmp_path, "val")


def test_annotation_csv_needs_kinetics_columns(tmp_path):
    csv = tmp_path / "train.csv"
    csv.write_text("label,youtube_id\nabseiling,abc\n")
    with pytest.raises(ValueError, match=r"missing \['time_start', 'time_end'\]"):
        VideoIndex.build(tmp_path, "train", annotations=csv)


# --------------------------------------------------------------------------- temporal sampling


def test_frame_indices_are_spaced_by_native_over_target_fps():
    assert frame_indices(300, 30 / 12, 5).tolist() == [0, 2, 5, 7, 10]
    assert frame_indices(10, 2.0, 8).tolist() == [0, 2, 4, 6, 8, 9, 9, 9]  # last frame repeats
    assert clip_starts(30, 2.0, 8, clips=1) == [8]  # frames 8..22 of 0..29: centred
    assert clip_starts(101, 1.0, 11, clips=3) == [15, 45, 75]


def test_decoded_frames_are_at_the_target_fps(tmp_path):
    path = counting_video(tmp_path / "count.mp4", frames=30, fps=10)
    eval_clip = read_clips(path, Sampling(frames=8, fps=5, size=32))[0]
    assert decoded_indices(eval_clip) == list(range(8, 23, 2))
    stride_clip = read_clips(path, Sampling(frames=4, stride=3, size=32), starts=[1])[0]
    assert decoded_indices(stride_clip) == [1, 4, 7, 10]
    for seed in range(3):
        train_clip = decoded_indices(read_clips(path, Sampling(frames=8, fps=5), rng=np.random.default_rng(seed))[0])
        assert np.diff(train_clip).tolist() == [2] * 7 and 0 <= train_clip[0] <= 15


def test_short_video_is_padded_with_its_last_frame(tmp_path):
    path = counting_video(tmp_path / "count.mp4", frames=10, fps=10)
    assert decoded_indices(read_clips(path, Sampling(frames=8, fps=5))[0]) == [0, 2, 4, 6, 8, 9, 9, 9]


def test_clips_are_evenly_spaced_and_clip_major(tmp_path):
    counting_video(tmp_path / "train" / "a" / "count.mp4", frames=40, fps=10)
    index = VideoIndex.build(tmp_path, "train")
    sampling = Sampling(frames=4, fps=10, size=16, clips=3, crops=2)
    video, _ = VideoDataset(index, sampling, train=False)[0]
    assert video.shape == (6, 3, 4, 16, 16)
    first_frames = [round(v) for v in (video[:, :, 0].mean(dim=(1, 2, 3)) * 255 / 8).tolist()]
    starts = clip_starts(40, 1.0, 4, clips=3)
    assert first_frames == [s for s in starts for _ in range(2)]


@pytest.mark.parametrize("landscape", [True, False])
def test_three_crops_cover_the_long_side(tmp_path, landscape):
    ramp = np.linspace(0, 255, 96).astype(np.uint8)  # brightness grows along the long side
    image = np.broadcast_to(ramp[None, :] if landscape else ramp[:, None], (64, 96) if landscape else (96, 64))
    write_mp4(tmp_path / "train" / "a" / "ramp.mp4", np.repeat(image[None, :, :, None], 3, axis=3).repeat(8, axis=0))
    sampling = Sampling(frames=2, fps=10, size=32, resize=64, crops=3)
    video, _ = VideoDataset(VideoIndex.build(tmp_path, "train"), sampling, train=False)[0]
    assert video.shape == (3, 3, 2, 32, 32)
    means = video.mean(dim=(1, 2, 3, 4)).tolist()
    assert means[0] < 0.25 and 0.4 < means[1] < 0.6 and means[2] > 0.75  # left, centre, right


# --------------------------------------------------------------------------- transforms


def test_eval_resizes_short_side_then_centre_crops_to_unit_range(tiny_kinetics, tmp_path):
    index = VideoIndex.build(tiny_kinetics.root, "val", cache_dir=tmp_path)
    plain = Sampling(frames=4, fps=5, size=172, resize=200)
    video, label = VideoDataset(index, plain, train=False)[0]
    assert video.shape == (3, 4, 172, 172) and video.dtype == torch.float32 and label == index.entries[0].label
    assert 0 <= video.min() and video.max() <= 1 and video.std() > 0.05
    x3d = Sampling(frames=4, fps=5, size=172, resize=200, mean=X3D_NORM[0], std=X3D_NORM[1])
    normalized, _ = VideoDataset(index, x3d, train=False)[0]
    torch.testing.assert_close(normalized, (video - 0.45) / 0.225)


def test_train_crops_depend_only_on_seed_epoch_and_index(tiny_kinetics, tmp_path):
    index = VideoIndex.build(tiny_kinetics.root, "val", cache_dir=tmp_path)
    sampling = Sampling(frames=4, fps=5, size=32)
    dataset = VideoDataset(index, sampling, train=True, seed=0)
    first, label = dataset[1]
    assert first.shape == (3, 4, 32, 32) and label == index.entries[1].label
    torch.testing.assert_close(VideoDataset(index, sampling, train=True, seed=0)[1][0], first)
    assert not torch.equal(VideoDataset(index, sampling, train=True, seed=1)[1][0], first)
    dataset.set_epoch(1)
    assert not torch.equal(dataset[1][0], first)
    dataset.set_epoch(0)
    torch.testing.assert_close(dataset[1][0], first)


@pytest.mark.parametrize("train", [True, False])
def test_cached_videos_give_the_same_samples_and_are_decoded_once(tiny_kinetics, tmp_path, monkeypatch, train):
    index = VideoIndex.build(tiny_kinetics.root, "val", cache_dir=tmp_path)
    sampling = Sampling(frames=4, fps=5, size=32, clips=1 if train else 2)
    plain, cached = VideoDataset(index, sampling, train=train), VideoDataset(index, sampling, train=train, cache=True)
    for epoch in range(2):
        plain.set_epoch(epoch), cached.set_epoch(epoch)
        for i in range(len(index)):
            torch.testing.assert_close(cached[i][0], plain[i][0], rtol=0, atol=0)
    assert sorted(cached.cache) == sorted(entry.path for entry in index.entries)
    monkeypatch.setattr(decord, "VideoReader", lambda *a, **k: pytest.fail("a cached video was opened again"))
    cached.set_epoch(2)
    assert all(cached[i] is not None for i in range(len(index)))


def test_crop_min_area_one_trains_on_whole_frames():
    clip = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    whole = Sampling(frames=4, fps=5, size=32, crop_scale=(1.0, 1.0))
    for seed in range(20):
        out = train_transform(clip, whole, np.random.default_rng(seed))
        assert torch.equal(out, clip) or torch.equal(out, clip.flip(-1))
    cropped = Sampling(frames=4, fps=5, size=32)  # the suite's default: 25-100 % of the area
    assert not all(torch.equal(train_transform(clip, cropped, np.random.default_rng(seed)), clip) for seed in range(5))


def test_loader_order_and_crops_repeat_per_epoch_with_any_worker_count(tiny_kinetics, tmp_path):
    index = VideoIndex.build(tiny_kinetics.root, "val", cache_dir=tmp_path)

    def epoch_batches(num_workers: int, epoch: int) -> list:
        loader = make_loader(VideoDataset(index, SMALL, train=True), 4, shuffle=True, num_workers=num_workers)
        set_epoch(loader, epoch)
        return list(loader)

    reference = epoch_batches(0, epoch=2)
    assert [len(b.labels) for b in reference] == [4, 4, 1]
    for batch, again in zip(reference, epoch_batches(2, epoch=2)):
        torch.testing.assert_close(batch.videos, again.videos)
        assert torch.equal(batch.labels, again.labels)
    other = torch.cat([b.labels for b in epoch_batches(0, epoch=3)])
    assert sorted(other.tolist()) == sorted(torch.cat([b.labels for b in reference]).tolist())
    with pytest.raises(ValueError, match="shuffle=False with a sampler"):
        make_loader(VideoDataset(index, SMALL, train=True), 4, shuffle=True, sampler=[0, 1])


@pytest.mark.parametrize(
    "bad",
    [dict(frames=4), dict(frames=4, fps=5, stride=2), dict(frames=0, fps=5), dict(frames=4, fps=5, size=64, resize=32),
     dict(frames=4, fps=5, std=(1, 0, 1))],
)
def test_sampling_rejects_inconsistent_settings(bad):
    with pytest.raises(ValueError):
        Sampling(**bad)


# --------------------------------------------------------------------------- failures at load time


def test_frame_data_corruption_shows_only_at_load_time(tiny_kinetics, tmp_path):
    index = VideoIndex.build(tiny_kinetics.root, "train", cache_dir=tmp_path)
    dataset = VideoDataset(index, SMALL, train=True)
    broken = index.root / tiny_kinetics.broken_files["load_failure"]
    failing = [i for i, e in enumerate(index.entries) if e.path == broken]
    assert len(failing) == 1
    with pytest.warns(UserWarning, match="at load time"):
        assert dataset[failing[0]] is None


@pytest.mark.parametrize("num_workers", [0, 2])
def test_loader_drops_and_counts_videos_that_fail_to_decode(tiny_kinetics, tmp_path, num_workers):
    root = copy_of(tiny_kinetics.root, tmp_path)
    index = VideoIndex.build(root, "train")
    truncated = good_videos(index, tiny_kinetics)[0]
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])  # cut in half after indexing (header still valid)

    loader = make_loader(VideoDataset(index, SMALL, train=False), batch_size=4, num_workers=num_workers)
    batches = list(loader)
    assert sum(b.n_dropped for b in batches) == 2  # the truncated file and the corrupt frame data
    assert sum(len(b.labels) for b in batches) == len(index) - 2
    assert all(b.videos.shape[1:] == (3, 4, 16, 16) for b in batches if len(b.labels))


def test_collate_keeps_decoded_samples_and_counts_the_rest():
    video = torch.zeros(3, 2, 4, 4)
    batch = collate_videos([(video, 1), None, (video + 1, 2)])
    assert batch.videos.shape == (2, 3, 2, 4, 4) and batch.labels.tolist() == [1, 2] and batch.n_dropped == 1
    empty = collate_videos([None, None])
    assert empty.videos.numel() == 0 and empty.labels.numel() == 0 and empty.n_dropped == 2


# --------------------------------------------------------------------------- the toy dataset


def test_toy_classes_differ_by_motion_direction(tiny_kinetics, tmp_path):
    index = VideoIndex.build(tiny_kinetics.root, "val", cache_dir=tmp_path)
    for entry in index.entries:
        frames = decord.VideoReader(str(entry.path)).get_batch([0, 1]).asnumpy().astype(float).mean(axis=3)
        assert dominant_shift(frames[0], frames[1]) in {
            tuple(s * d for d in DIRECTIONS[index.classes[entry.label]]) for s in (1, 2, 3)
        }


def dominant_shift(before: np.ndarray, after: np.ndarray, reach: int = 3) -> tuple[int, int]:
    """The integer (dy, dx) that best maps ``before`` onto ``after`` (inner region only)."""
    inner = slice(reach, -reach)
    errors = {
        (dy, dx): np.mean((np.roll(before, (dy, dx), axis=(0, 1))[inner, inner] - after[inner, inner]) ** 2)
        for dy in range(-reach, reach + 1) for dx in range(-reach, reach + 1)
    }
    return min(errors, key=errors.get)


def test_toy_dataset_is_deterministic_for_a_seed(tmp_path):
    kwargs = dict(classes=("up",), videos_per_class={"train": 2}, frames=(8, 10), size=32, seed=3)
    first = write_motion_dataset(tmp_path / "a", **kwargs)
    second = write_motion_dataset(tmp_path / "b", **kwargs)
    files = sorted(p.relative_to(first.root) for p in first.root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second.root) for p in second.root.rglob("*") if p.is_file())
    assert all((first.root / f).read_bytes() == (second.root / f).read_bytes() for f in files)
    assert first.videos == {"train": 3} and len(files) == 2 + 4 + 1 + 1  # videos, broken files, one CSV, dataset.json
    with pytest.raises(ValueError, match="classes must be some of"):
        write_motion_dataset(tmp_path / "c", classes=("sideways",))
