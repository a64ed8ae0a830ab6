"""The catalogue of public checkpoints (baselines.weights): data checked against its sources."""

import re

import pytest
from torchvision import models as tv_models

import baselines
from baselines.weights import CHECKPOINTS, GRW_AUTHORS_CONVERTER, MOVINET_PYTORCH_COMMIT, checkpoints_for


def test_every_entry_names_a_registry_model_and_a_converter():
    assert len(CHECKPOINTS) == 21
    for name, checkpoint in CHECKPOINTS.items():
        assert name == checkpoint.name and checkpoint.model in baselines.available()
        assert checkpoint.converter == GRW_AUTHORS_CONVERTER or callable(getattr(baselines, checkpoint.converter))
        assert checkpoint.url.startswith("https://")
        assert checkpoint.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", checkpoint.sha256)


def test_movinet_pytorch_urls_and_accuracies():
    # movinets/config.py and README.md at the pinned commit
    assert MOVINET_PYTORCH_COMMIT == "c2d1edf48fc6c5259707f9d833f22171b4f63493"
    assert CHECKPOINTS["movinet_a0_stream_k600"].url == (
        "https://github.com/Atze00/MoViNet-pytorch/blob/main/weights/modelA0_stream_statedict_v3?raw=true"
    )
    assert CHECKPOINTS["movinet_a5_k600"].url == (
        "https://github.com/Atze00/MoViNet-pytorch/blob/main/weights/modelA5_statedict_v3?raw=true"
    )
    top1 = {name: c.top1 for name, c in CHECKPOINTS.items() if name.startswith("movinet")}
    assert top1 == {
        "movinet_a0_k600": 72.28, "movinet_a1_k600": 76.69, "movinet_a2_k600": 78.62,
        "movinet_a3_k600": 81.79, "movinet_a4_k600": 83.48, "movinet_a5_k600": 84.27,
        "movinet_a0_stream_k600": 72.05, "movinet_a1_stream_k600": 76.45, "movinet_a2_stream_k600": 78.40,
    }
    assert {c.dataset for name, c in CHECKPOINTS.items() if name.startswith("movinet")} == {"Kinetics-600"}


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_x3d_urls_equal_pytorchvideo_hub():
    hub = pytest.importorskip("pytorchvideo.models.hub.x3d", reason="pytorchvideo is in the test extra")
    for variant in ("xs", "s", "m", "l"):
        checkpoint = CHECKPOINTS[f"x3d_{variant}_k400"]
        assert checkpoint.url == hub.checkpoint_paths[f"x3d_{variant}"]
        assert checkpoint.state_dict_key == "model_state" and checkpoint.num_classes == 400
    assert [CHECKPOINTS[f"x3d_{v}_k400"].top1 for v in ("xs", "s", "m", "l")] == [69.12, 73.33, 75.94, 77.44]


@pytest.mark.parametrize("variant, weights", [
    ("small", tv_models.MobileNet_V3_Small_Weights.IMAGENET1K_V1),
    ("large", tv_models.MobileNet_V3_Large_Weights.IMAGENET1K_V1),
])
def test_mobilenet_entries_equal_torchvision_meta(variant, weights):
    entries = checkpoints_for(f"mobilenet_v3_{variant}") + checkpoints_for(f"mobilenet_v3_{variant}_tsm")
    assert len(entries) == 2
    for checkpoint in entries:
        assert checkpoint.url == weights.url
        assert checkpoint.top1 == weights.meta["_metrics"]["ImageNet-1K"]["acc@1"]
        assert checkpoint.size_mb == weights.meta["_file_size"]
        assert weights.url.endswith(f"-{checkpoint.sha256_prefix}.pth")
        assert checkpoint.backbone_only and checkpoint.converter == "from_torchvision_mobilenet"


def test_grw_authors_snapshots_are_the_hugging_face_files_of_the_grw_rows():
    from benchmarks.engine.authors import BACKBONE_MODELS
    from benchmarks.table1.specs import AUTHORS_EVALUATION, AUTHORS_WEIGHTS_REPO, get_spec

    entries = {c.name: c for c in CHECKPOINTS.values() if c.converter == GRW_AUTHORS_CONVERTER}
    assert sorted(entries) == ["a0s_grw", "a1s_grw", "a2s_grw", "a3b_grw"]
    for row, evaluation in AUTHORS_EVALUATION.items():
        entry = entries[evaluation.checkpoint.removesuffix(".pt")]
        assert (entry.hf_repo, entry.hf_file) == (AUTHORS_WEIGHTS_REPO, evaluation.checkpoint)
        assert entry.url == f"https://huggingface.co/{AUTHORS_WEIGHTS_REPO}/resolve/main/{evaluation.checkpoint}"
        assert entry.model == BACKBONE_MODELS[evaluation.backbone] == get_spec(row).model
        assert entry.top1 == get_spec(row).published_top1 and entry.has_ema and entry.grw_head
