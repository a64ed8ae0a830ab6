"""The GRW authors' evaluation protocol (benchmarks.table1.protocols, eval --protocol authors): which frames each
clip takes, the square resize + crop, and a whole evaluation on the toy data.

The authors' test scripts (gilgoldm/grw-smoothing, backbones/movinets/*/a*_test.py) build
``KineticsDs(frames_per_clip=N, step_between_clips=N, frame_rate=fps)`` (data/kinetics_ds.py), i.e.
torchvision's ``VideoClips``: resample the video to ``fps`` (``_resample_video_idx``), then cut it with
``unfold(size=N, step=N)``. By hand, for a video of L native frames at F fps:

- ``step = F / fps``. Integer step: the resampled video is frames 0, step, 2 step, ... < L, i.e.
  ``ceil(L / step)`` frames. Otherwise: ``floor(L * fps / F)`` frames, frame k at ``floor(k * step)``.
- ``unfold(size=N, step=N)`` gives ``(M - N) // N + 1`` clips of M resampled frames when M >= N (that
  is ``M // N``), clip j taking resampled frames ``j N .. j N + N - 1``; the ``M - N * (M // N)``
  frames of the tail are dropped, and a video with M < N has no clip.
"""

import json
import math

import numpy as np
import pytest
import torch
from torchvision import transforms

from benchmarks.core.store import Store
from benchmarks.data.videos import VideoIndex
from benchmarks.engine.config import RunConfig
from benchmarks.engine.evaluate import EvalConfig, evaluate
from benchmarks.run import main
from benchmarks.table1 import protocols
from benchmarks.table1.protocols import ClipDataset, ClipProtocol, authors_protocol, clip_layout
from tests.test_evaluate import untrained_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

A0S = ClipProtocol(frames=50, fps=5, resize=200, crop=172)  # rows 1 and 6
A3 = ClipProtocol(frames=120, fps=12, resize=300, crop=256)  # row 15


def test_the_protocols_values_are_the_authors():
    assert authors_protocol(1) == (A0S, {})
    assert authors_protocol(15) == (A3, {})
    assert authors_protocol(12)[0] == ClipProtocol(frames=50, fps=5, resize=256, crop=224)
    protocol, deviations = authors_protocol(1, {"frames": 5, "crop": 172})
    assert protocol.frames == 5 and deviations == {"frames": {"authors": 50, "used": 5}}
    with pytest.raises(ValueError, match="only for the GRW rows"):
        authors_protocol(2)
    with pytest.raises(ValueError, match="unknown protocol override"):
        authors_protocol(1, {"size": 3})


def test_clip_layout_integer_step():
    # 30 fps -> 5 fps: step 6, resampled frames 0, 6, ..., 396 (ceil(400 / 6) = 67); 67 // 50 = 1 clip,
    # frames 0 .. 6 * 49 = 294; the 17 frames 300 .. 396 of the tail are dropped.
    layout = clip_layout(400, 30.0, A0S)
    assert layout.shape == (1, 50)
    assert layout[0].tolist() == list(range(0, 295, 6))
    # 295 frames: ceil(295 / 6) = 50 resampled frames, exactly one clip ending at frame 294;
    # 294 frames: 49 resampled frames, no clip.
    assert clip_layout(295, 30.0, A0S).shape == (1, 50) and clip_layout(295, 30.0, A0S)[0, -1] == 294
    assert clip_layout(294, 30.0, A0S).shape == (0, 50)
    # 25 fps, 10 s (250 frames): step 5, 50 resampled frames: one clip, frames 0 .. 245.
    assert clip_layout(250, 25.0, A0S)[0].tolist() == list(range(0, 246, 5))
    # 25 fps, 22 s (550 frames): 110 resampled frames, 2 clips (frames 0..245 and 250..495), 10 dropped.
    layout = clip_layout(550, 25.0, A0S)
    assert layout.shape == (2, 50) and layout[1, 0] == 250 and layout[1, -1] == 495


def test_clip_layout_fractional_step():
    # 29.97 fps -> 5 fps: step 5.994, floor(400 * 5 / 29.97) = floor(66.73) = 66 resampled frames, frame k
    # at floor(5.994 k): 0, 5, 11, 17, 23, 29, 35, ...; 66 // 50 = 1 clip, the last at floor(5.994 * 49) = 293.
    layout = clip_layout(400, 29.97, A0S)
    assert layout.shape == (1, 50)
    assert layout[0, :7].tolist() == [0, 5, 11, 17, 23, 29, 35] and layout[0, -1] == 293
    # A3: 25 fps -> 12 fps, step 25/12 = 2.083, 300 frames -> floor(300 * 12 / 25) = 144 resampled frames:
    # one 120-frame clip, frame k at floor(2.0833 k): 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 25 (12 x 25/12 is
    # exactly 25, and float32 keeps it), 27, ...
    layout = clip_layout(300, 25.0, A3)
    assert layout.shape == (1, 120)
    assert layout[0, :14].tolist() == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 25, 27]
    assert layout[0, -1] == math.floor(119 * 25 / 12) == 247
    # Slower than the target rate (4 fps -> 5 fps, step 0.8): frames repeat. 50 frames ->
    # floor(50 * 5 / 4) = 62 resampled, floor(0.8 k) = 0, 0, 1, 2, 3, 4, 4, 5, ...; one clip.
    assert protocols.resampled_frames(50, 4.0, 5)[:8].tolist() == [0, 0, 1, 2, 3, 4, 4, 5]
    assert clip_layout(50, 4.0, A0S).shape == (1, 50)


@pytest.mark.filterwarnings("ignore:There aren't enough frames")  # torchvision, on the videos without a clip
@pytest.mark.parametrize("native_fps", [30.0, 25.0, 29.97, 24.0, 23.976, 15.0, 10.0, 4.0, 60.0])
def test_clip_layout_is_torchvisions(native_fps):
    """The same clips as torchvision's VideoClips (the class the authors' KineticsDs uses), with each
    frame's timestamp equal to its index."""
    video_clips = pytest.importorskip("torchvision.datasets.video_utils").VideoClips  # deprecated in torchvision
    for protocol in (A0S, A3):
        for num_frames in (0, 1, 119, 249, 250, 251, 299, 300, 301, 601, 1000):
            clips, _ = video_clips.compute_clips_for_video(torch.arange(num_frames), protocol.frames, protocol.frames,
                                                          native_fps, protocol.fps)
            theirs = clips.numpy().reshape(-1, protocol.frames)
            assert np.array_equal(clip_layout(num_frames, native_fps, protocol), theirs)


@pytest.mark.parametrize("protocol", [A0S, ClipProtocol(frames=50, fps=5, resize=256, crop=224), A3])
def test_square_resize_crop_is_the_authors_transform(protocol):
    """transform_test of a*_test.py: float, / 255, Resize((s, s)), CenterCrop(c), on a [T, 3, H, W] clip."""
    frames = torch.randint(0, 256, (3, 3, 90, 160), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    theirs = transforms.Compose([lambda v: v.to(torch.float32) / 255,
                                 transforms.Resize((protocol.resize, protocol.resize)),
                                 transforms.CenterCrop(protocol.crop)])
    ours = protocols.square_resize_crop(frames, protocol)
    assert ours.dtype == torch.float32 and ours.shape == (3, 3, protocol.crop, protocol.crop)
    assert torch.equal(ours, theirs(frames))
    # the order matters: resizing uint8 frames first rounds, and is not their number
    rounded = transforms.CenterCrop(protocol.crop)(transforms.Resize((protocol.resize,) * 2)(frames)).float() / 255
    assert not torch.equal(ours, rounded)


TOY = {"frames": 5, "fps": 4, "resize": 40, "crop": 32}  # the toy videos are 24-40 frames at 10 fps


def test_authors_protocol_end_to_end_on_toy_data(tiny_kinetics, tmp_path, capsys):
    config = RunConfig(row=1, data=str(tiny_kinetics.root), out=str(tmp_path), res=32, frames=10)
    untrained_checkpoint(tmp_path / "last.pt", config, tiny_kinetics.classes)
    overrides = [arg for key, value in TOY.items() for arg in ("--protocol-override", f"{key}={value}")]
    assert main(["eval", "--row", "1", "--checkpoint", str(tmp_path / "last.pt"), "--data", str(tiny_kinetics.root),
                 "--protocol", "authors", *overrides, "--num-workers", "0", "--batch-size", "4",
                 "--index-cache", str(tmp_path), "--results", str(tmp_path / "results")]) == 0
    assert "authors' protocol: per clip" in capsys.readouterr().out
    [run] = Store(tmp_path / "results").load_runs()

    # By hand: 10 fps -> 4 fps is step 2.5, so L frames give floor(L * 4 / 10) resampled frames and
    # floor(that / 5) clips of 5 frames.
    index = VideoIndex.build(tiny_kinetics.root, "val", annotations=tiny_kinetics.annotations["val"],
                             cache_dir=tmp_path)
    assert {entry.fps for entry in index.entries} == {10.0}
    per_video = [(entry.num_frames * 4 // 10) // 5 for entry in index.entries]
    assert run["protocol"] == "authors" and run["accuracy_unit"] == "clip" and run["mode"] == "per-clip"
    assert run["clips"] == {"evaluated": sum(per_video), "videos": sum(n > 0 for n in per_video), "skipped": 0,
                            "videos_without_clip": sum(n == 0 for n in per_video)}
    assert run["videos_evaluated"] == sum(n > 0 for n in per_video)
    assert run["authors_protocol"]["deviations"] == {
        "frames": {"authors": 50, "used": 5}, "fps": {"authors": 5, "used": 4.0},
        "resize": {"authors": 200, "used": 40}, "crop": {"authors": 172, "used": 32}}
    assert {"authors_frames", "authors_crop"} <= set(run["deviations"])  # Table 1 marks the run as deviating
    assert run["input"]["frames"] == 5 and run["gflops"] == run["gflops_per_view"]
    assert 0 <= run["top1"] <= 100 and 0 <= run["top1_per_video"] <= 100

    # Per-clip accuracy is the mean over the clips: the per-class CSV counts clips.
    per_class = json.loads(json.dumps(run))["per_class_csv"]
    assert sum(int(line.split(",")[1]) for line in open(per_class).read().splitlines()[1:]) == sum(per_video)


def test_authors_protocol_only_for_the_grw_rows(tmp_path, capsys):
    assert main(["eval", "--row", "2", "--checkpoint", str(tmp_path / "none.pt"), "--data", str(tmp_path),
                 "--protocol", "authors", "--results", str(tmp_path / "results")]) == 2
    assert "--protocol authors" in capsys.readouterr().err
    assert main(["eval", "--row", "1", "--checkpoint", str(tmp_path / "none.pt"), "--data", str(tmp_path),
                 "--protocol-override", "frames=5", "--results", str(tmp_path / "results")]) == 2
    with pytest.raises(ValueError, match="protocol must be one of"):
        EvalConfig(checkpoint="c", data="d", protocol="paper")


def test_clip_dataset_decodes_the_clips_frames(tiny_kinetics, tmp_path):
    index = VideoIndex.build(tiny_kinetics.root, "val", annotations=tiny_kinetics.annotations["val"],
                             cache_dir=tmp_path)
    protocol = ClipProtocol(**TOY)
    dataset = ClipDataset(index, protocol)
    clip, label, video = dataset[len(dataset) - 1]
    assert clip.shape == (3, 5, 32, 32) and 0 <= clip.min() and clip.max() <= 1
    assert video == len(index) - 1 and label == index.entries[video].label


def test_evaluate_rejects_the_authors_protocol_for_other_rows(tiny_kinetics, tmp_path):
    config = RunConfig(row=2, data=str(tiny_kinetics.root), out=str(tmp_path), res=32, frames=8)
    untrained_checkpoint(tmp_path / "last.pt", config, tiny_kinetics.classes)
    with pytest.raises(ValueError, match="only for the GRW rows"):
        evaluate(EvalConfig(checkpoint=str(tmp_path / "last.pt"), data=str(tiny_kinetics.root), protocol="authors"))
