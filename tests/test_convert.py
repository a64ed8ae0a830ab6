"""Converters of public weights: the zoo's models reproduce the public implementations' numbers.

* X3D against pytorchvideo itself (random weights and BN statistics);
* MoViNet against MoViNet-pytorch, through fixtures that ``tools/make_movinet_fixtures.py`` wrote
  from its pinned commit (their code is not in this repository);
* MobileNetV3 against torchvision.
"""

import gzip
import json
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision import models as tv_models

import baselines
from baselines.convert import ConversionError, convert_state_dict, from_movinet_pytorch
from baselines.movinet import MoViNet, MovinetSpec

pytestmark = pytest.mark.usefixtures("one_thread")

FIXTURES = Path(__file__).parent / "fixtures"
MOVINET_PYTORCH_COMMIT = "c2d1edf48fc6c5259707f9d833f22171b4f63493"


@torch.no_grad()
def randomize_batch_norm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN statistics and affine terms (fresh ones are the identity and hide mistakes)."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.2, 0.2, generator=generator)
            module.running_var.uniform_(0.5, 1.5, generator=generator)
            module.weight.uniform_(0.5, 1.5, generator=generator)
            module.bias.uniform_(-0.2, 0.2, generator=generator)
    return model.eval()


# ------------------------------------------------------------------------------- pytorchvideo X3D


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("name", ["x3d_xs", "x3d_m"])
def test_x3d_logits_equal_pytorchvideo(name):
    pytorchvideo_x3d = pytest.importorskip("pytorchvideo.models.x3d", reason="pytorchvideo is in the test extra")
    torch.manual_seed(0)
    # XS, S and M are one network; the head's average pool is sized for (frames, crop): 4 x 64 here.
    # head_activation=None: pytorchvideo's default head ends in a softmax, ours returns logits.
    reference = pytorchvideo_x3d.create_x3d(
        input_clip_length=4, input_crop_size=64, model_num_class=7, head_activation=None
    )
    randomize_batch_norm(reference)
    ours = baselines.build(name, num_classes=7).eval()
    ours.load_state_dict(baselines.from_pytorchvideo(reference.state_dict(), name), strict=True)
    video = torch.rand(2, 3, 4, 64, 64)
    with torch.no_grad():
        expected, logits = reference(video), ours(video)
    assert expected.abs().max() > 1e-2
    assert (logits - expected).abs().max() <= 1e-5


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_x3d_l_converts_from_pytorchvideo():
    pytorchvideo_x3d = pytest.importorskip("pytorchvideo.models.x3d", reason="pytorchvideo is in the test extra")
    reference = pytorchvideo_x3d.create_x3d(input_clip_length=4, input_crop_size=64, depth_factor=5.0)
    converted = baselines.from_pytorchvideo(reference.state_dict(), "x3d_l")
    assert len(converted) == len(reference.state_dict())
    baselines.build("x3d_l", num_classes=400).load_state_dict(converted, strict=True)


# ---------------------------------------------------------------------------------- MoViNet-pytorch


def load_fixture(kind: str) -> dict:
    fixture = torch.load(FIXTURES / f"movinet_pytorch_{kind}.pt", weights_only=True)
    assert fixture["commit"] == MOVINET_PYTORCH_COMMIT
    return fixture


def converted_movinet(fixture: dict) -> MoViNet:
    """Our MoViNet built from the fixture's reduced spec, with their converted weights."""
    spec = MovinetSpec.from_dict(fixture["spec"])
    model = MoViNet(spec, stream=fixture["causal"], num_classes=fixture["num_classes"])
    model.load_state_dict(from_movinet_pytorch(fixture["state_dict"], model), strict=True)
    return model.eval()


@pytest.mark.parametrize("kind", ["base", "stream"])
def test_movinet_logits_and_conv7_embeddings_equal_movinet_pytorch(kind):
    fixture = load_fixture(kind)
    model = converted_movinet(fixture)
    clip = fixture["frames"].float() / 255
    with torch.no_grad():
        logits, embeddings = model(clip), model.frame_embeddings(clip)
    assert fixture["logits"].abs().max() > 1e-1
    assert (logits - fixture["logits"]).abs().max() <= 1e-4
    assert (embeddings - fixture["conv7_frames"]).abs().max() <= 1e-4


def test_movinet_stream_frame_by_frame_equals_movinet_pytorch():
    fixture = load_fixture("stream")
    model = converted_movinet(fixture)
    clip = fixture["frames"].float() / 255
    state = None
    with torch.no_grad():
        for t in range(clip.shape[2]):  # the logits after each frame: CGAP over frames 0..t
            logits, state = model.forward_stream(clip[:, :, t : t + 1], state)
            assert (logits - fixture["stream_logits"][t]).abs().max() <= 1e-4


@pytest.mark.parametrize("chunks", [(3, 1, 4), (5, 3), (1, 6, 1)])
def test_movinet_stream_in_uneven_chunks_equals_movinet_pytorch(chunks):
    fixture = load_fixture("stream")
    model = converted_movinet(fixture)
    clip = fixture["frames"].float() / 255
    assert sum(chunks) == clip.shape[2]
    state, embedding_state, embeddings, start = None, None, [], 0
    with torch.no_grad():
        for size in chunks:
            chunk = clip[:, :, start : start + size]
            logits, state = model.forward_stream(chunk, state)
            chunk_embeddings, embedding_state = model.stream_frame_embeddings(chunk, embedding_state)
            embeddings.append(chunk_embeddings)
            start += size
            assert (logits - fixture["stream_logits"][start - 1]).abs().max() <= 1e-4
    assert (logits - fixture["logits"]).abs().max() <= 1e-4
    assert (torch.cat(embeddings, dim=1) - fixture["conv7_frames"]).abs().max() <= 1e-4


def test_movinet_pytorch_weights_only_fit_their_own_kind():
    with pytest.raises(ConversionError, match="feature.temporal.conv.weight"):
        base = MoViNet(MovinetSpec.from_dict(load_fixture("stream")["spec"]), stream=False, num_classes=10)
        from_movinet_pytorch(load_fixture("stream")["state_dict"], base)


def their_full_size_layouts() -> dict[str, dict[str, list[int]]]:
    with gzip.open(FIXTURES / "movinet_pytorch_shapes.json.gz", "rt") as file:
        layouts = json.load(file)
    assert layouts["commit"] == MOVINET_PYTORCH_COMMIT
    return layouts["models"]


@pytest.mark.parametrize("name", [*(f"movinet_a{i}" for i in range(6)), *(f"movinet_a{i}_stream" for i in range(3))])
def test_movinet_pytorch_full_size_layouts_load_into_the_registry_models(name):
    """Every tensor of their A0-A5 base / A0-A2 stream models (names and shapes, as their pretrained
    weights have them) maps onto exactly one tensor of the registry model, shapes included."""
    layout = their_full_size_layouts()[name]
    foreign = {key: torch.zeros(shape) for key, shape in layout.items()}
    converted = from_movinet_pytorch(foreign, name)
    assert len(converted) == len(foreign)
    baselines.build(name, num_classes=600).load_state_dict(converted, strict=True)


# ------------------------------------------------------------------------------ conversion errors


@pytest.fixture
def stream_fixture() -> dict:
    return load_fixture("stream")


def convert_stream(state_dict: dict) -> dict:
    fixture = load_fixture("stream")
    model = MoViNet(MovinetSpec.from_dict(fixture["spec"]), stream=True, num_classes=fixture["num_classes"])
    return from_movinet_pytorch(state_dict, model)


def test_a_missing_key_is_named(stream_fixture):
    state_dict = dict(stream_fixture["state_dict"])
    del state_dict["blocks.b1_l0.deep.conv_2.norm.running_var"]
    with pytest.raises(ConversionError, match=r"no foreign tensor: blocks\.1\.0\.feature\.temporal\.bn\.running_var"):
        convert_stream(state_dict)


def test_an_extra_key_is_named(stream_fixture):
    state_dict = dict(stream_fixture["state_dict"])
    state_dict["blocks.b1_l0.deep.conv_3.conv2d.weight"] = torch.zeros(1)
    with pytest.raises(ConversionError, match=r"no rule uses: blocks\.b1_l0\.deep\.conv_3\.conv2d\.weight"):
        convert_stream(state_dict)


def test_a_shape_mismatch_is_named(stream_fixture):
    state_dict = dict(stream_fixture["state_dict"])
    key = "blocks.b2_l0.se.fc1.conv_1.conv2d.weight"
    state_dict[key] = torch.zeros(8, *state_dict[key].shape[1:])
    with pytest.raises(ConversionError, match=r"shape mismatches: blocks\.b2_l0\.se\.fc1\.conv_1\.conv2d\.weight"):
        convert_stream(state_dict)


def test_a_key_filled_twice_is_named():
    rules = [baselines.convert.Rule(r"(a|b)\.weight", "x.weight")]
    with pytest.raises(ConversionError, match=r"filled twice: a\.weight and b\.weight -> x\.weight"):
        foreign = {"a.weight": torch.zeros(2), "b.weight": torch.zeros(2)}
        convert_state_dict(foreign, rules, {"x.weight": torch.zeros(2)})


def test_every_problem_is_reported_at_once(stream_fixture):
    state_dict = dict(stream_fixture["state_dict"])
    del state_dict["conv7.conv_1.norm.weight"]
    state_dict["extra"] = torch.zeros(1)
    with pytest.raises(ConversionError) as info:
        convert_stream(state_dict)
    assert "head.project.bn.weight" in str(info.value) and "extra" in str(info.value)


# -------------------------------------------------------------------------------- torchvision


def test_mobilenet_with_torchvision_classifier_equals_torchvision_per_frame():
    torch.manual_seed(0)
    reference = randomize_batch_norm(tv_models.mobilenet_v3_small(weights=None))
    ours = baselines.build("mobilenet_v3_small", num_classes=1000).eval()
    ours.load_state_dict(baselines.from_torchvision_mobilenet(reference.state_dict(), "mobilenet_v3_small",
                                                             classifier=True), strict=True)
    video = torch.rand(1, 3, 2, 32, 32)
    with torch.no_grad():
        expected = torch.stack([reference(video[:, :, t]) for t in range(2)], dim=1).mean(dim=1)
        assert (ours(video) - expected).abs().max() <= 1e-5


@pytest.mark.parametrize("name, builder", [
    ("mobilenet_v3_small_tsm", tv_models.mobilenet_v3_small),
    ("mobilenet_v3_large", tv_models.mobilenet_v3_large),
])
def test_mobilenet_backbone_only_loads_after_reset_classifier(name, builder):
    torch.manual_seed(0)
    reference = randomize_batch_norm(builder(weights=None))
    converted = baselines.from_torchvision_mobilenet(reference.state_dict(), name)
    assert not any("classifier" in key for key in converted)
    model = baselines.build(name, num_classes=600).eval()
    model.reset_classifier(0)
    model.load_state_dict(converted, strict=True)
    model.reset_classifier(600)
    assert model(torch.rand(1, 3, 2, 32, 32)).shape == (1, 600)
    if not name.endswith("_tsm"):  # frame-wise: the embeddings are torchvision's pooled features
        frame = torch.rand(1, 3, 32, 32)
        with torch.no_grad():
            expected = reference.avgpool(reference.features(frame)).flatten(1)
            assert (model.frame_embeddings(frame[:, :, None])[:, 0] - expected).abs().max() <= 1e-5


def test_converter_version_is_recorded():
    assert isinstance(baselines.CONVERTER_VERSION, int) and baselines.CONVERTER_VERSION >= 1
