import pytest
import torch
from torchvision.models.mobilenetv3 import InvertedResidual

from baselines.mobilenet import mobilenet_v3
from baselines.tsm import TemporalShift, mobilenet_v3_tsm, temporal_shift
from benchmarks.core.counting import count_gflops, count_params


def hand_made_clip() -> torch.Tensor:
    """One video, 3 frames, 8 channels, 1x1 pixels; value 10 * (t + 1) + c."""
    return torch.tensor(
        [[10, 11, 12, 13, 14, 15, 16, 17], [20, 21, 22, 23, 24, 25, 26, 27], [30, 31, 32, 33, 34, 35, 36, 37]],
        dtype=torch.float,
    ).view(3, 8, 1, 1)


def test_bidirectional_shift_on_a_hand_made_tensor():
    # fold_div 8 of 8 channels: channel 0 comes from the next frame, channel 1 from the previous one.
    expected = torch.tensor(
        [[20, 0, 12, 13, 14, 15, 16, 17], [30, 11, 22, 23, 24, 25, 26, 27], [0, 21, 32, 33, 34, 35, 36, 37]],
        dtype=torch.float,
    ).view(3, 8, 1, 1)
    assert torch.equal(temporal_shift(hand_made_clip(), num_frames=3), expected)


def test_causal_shift_on_a_hand_made_tensor():
    # Only channel 0 moves, forward in time: frame t sees frame t-1.
    expected = torch.tensor(
        [[0, 11, 12, 13, 14, 15, 16, 17], [10, 21, 22, 23, 24, 25, 26, 27], [20, 31, 32, 33, 34, 35, 36, 37]],
        dtype=torch.float,
    ).view(3, 8, 1, 1)
    assert torch.equal(temporal_shift(hand_made_clip(), num_frames=3, causal=True), expected)


@pytest.mark.parametrize("causal", [False, True])
def test_shift_stays_inside_each_video(causal):
    clip = hand_made_clip()
    two_videos = torch.cat([clip, clip + 100])  # [2 * 3 frames, 8, 1, 1]
    shifted = temporal_shift(two_videos, num_frames=3, causal=causal)
    first = temporal_shift(clip, num_frames=3, causal=causal)
    assert torch.equal(shifted[:3], first)
    # The second video gets zeros at its boundary, never values of the first video.
    assert torch.equal(shifted[3:], torch.where(first == 0, 0.0, first + 100))


def test_shift_with_a_quarter_of_the_channels():
    shifted = temporal_shift(hand_made_clip(), num_frames=3, fold_div=4, causal=True)
    assert shifted[:, :2].flatten().tolist() == [0, 0, 10, 11, 20, 21]
    assert torch.equal(shifted[:, 2:], hand_made_clip()[:, 2:])


def test_shift_module_errors():
    shift = TemporalShift()
    with pytest.raises(RuntimeError, match="num_frames"):
        shift(torch.zeros(4, 8, 2, 2))
    shift.num_frames = 3
    with pytest.raises(ValueError, match="3 frames"):
        shift(torch.zeros(4, 8, 2, 2))
    with pytest.raises(ValueError, match="fold_div"):
        TemporalShift(fold_div=2)


@pytest.mark.parametrize("variant", ["small", "large"])
def test_tsm_adds_no_parameters_and_keeps_the_state_dict(variant):
    plain, shifted = mobilenet_v3(variant), mobilenet_v3_tsm(variant)
    assert count_params(plain) == count_params(shifted)
    assert list(plain.state_dict()) == list(shifted.state_dict())
    shifted.load_state_dict(plain.state_dict())


@pytest.mark.parametrize("variant", ["small", "large"])
def test_shift_goes_into_exactly_the_residual_blocks(variant):
    plain, shifted = mobilenet_v3(variant), mobilenet_v3_tsm(variant)
    residual = [
        i for i, m in enumerate(plain.backbone.features) if isinstance(m, InvertedResidual) and m.use_res_connect
    ]
    with_shift = [i for i, m in enumerate(shifted.backbone.features)
                  if isinstance(getattr(m, "shift", None), TemporalShift)]
    assert residual and with_shift == residual
    assert sum(isinstance(m, TemporalShift) for m in shifted.modules()) == len(residual)


def test_forward_averages_per_frame_torchvision_logits():
    torch.manual_seed(0)
    model = mobilenet_v3("small", num_classes=5).eval()
    video = torch.rand(2, 3, 3, 32, 32)
    with torch.no_grad():
        per_frame = torch.stack([model.backbone(video[:, :, t]) for t in range(3)], dim=1)
        assert torch.allclose(model(video), per_frame.mean(dim=1), atol=1e-5)
        embeddings = model.frame_embeddings(video)
        assert torch.allclose(model.backbone.classifier(embeddings).mean(dim=1), model(video), atol=1e-5)


@pytest.mark.parametrize(
    "build, frames_seen_by_frame_2",
    [
        (lambda: mobilenet_v3("small"), {2}),  # frame-wise: no temporal mixing
        (lambda: mobilenet_v3_tsm("small", causal=True), {0, 1, 2}),  # only the past
        (lambda: mobilenet_v3_tsm("small"), {0, 1, 2, 3, 4}),  # past and future
    ],
)
def test_temporal_receptive_field(build, frames_seen_by_frame_2):
    """Perturb one frame at a time and see which frames change the embedding of frame 2."""
    torch.manual_seed(0)
    model = build().eval()
    video = torch.rand(1, 3, 5, 32, 32)
    with torch.no_grad():
        reference = model.frame_embeddings(video)[0, 2]
        seen = set()
        for t in range(5):
            perturbed = video.clone()
            perturbed[:, :, t] = torch.rand(1, 3, 32, 32)
            change = (model.frame_embeddings(perturbed)[0, 2] - reference).abs().max()
            if change > 1e-6 * reference.abs().max():  # relative: untrained activations are tiny
                seen.add(t)
    # Each shifted block reaches one frame further; small has six of them, enough for 5 frames.
    assert seen == frames_seen_by_frame_2


@pytest.mark.parametrize(
    "variant, channels",
    [("small", [16, 24, 48, 96, 576]), ("large", [24, 40, 112, 160, 960])],
)
@pytest.mark.parametrize("tsm", [False, True])
def test_tap_points_are_addressable_stage_outputs(variant, channels, tsm):
    model = (mobilenet_v3_tsm if tsm else mobilenet_v3)(variant).eval()
    outputs = {}
    for name in model.tap_points:
        model.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: outputs.__setitem__(name, o))
    with torch.no_grad():
        model(torch.rand(2, 3, 3, 64, 64))
    shapes = [tuple(outputs[name].shape) for name in model.tap_points]
    sizes = [16, 8, 4, 2, 2]  # strides 1/4, 1/8, 1/16, 1/32, 1/32 of 64 px
    assert shapes == [(2 * 3, c, s, s) for c, s in zip(channels, sizes)]
    assert model.num_features == channels[-1]


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\[B, 3, T, H, W\]"):
        mobilenet_v3("small")(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="variant"):
        mobilenet_v3("medium")


def test_tsm_adds_no_flops():
    shape = (1, 3, 4, 64, 64)
    assert count_gflops(mobilenet_v3_tsm("small"), shape) == count_gflops(mobilenet_v3("small"), shape)


def test_mobilenet_v3_small_gflops_match_the_published_count():
    # Table 1: MobileNetV3-S, 50 frames at 224 px, 2.8 GFLOPs.
    assert count_gflops(mobilenet_v3("small"), (1, 3, 50, 224, 224)) == pytest.approx(2.8, rel=0.03)


@pytest.mark.parametrize("build", [lambda: mobilenet_v3("small", num_classes=5),
                                   lambda: mobilenet_v3_tsm("small", num_classes=5)])
def test_forward_features_and_head(build):
    torch.manual_seed(0)
    model = build().eval()
    video = torch.rand(2, 3, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_features(video)
        assert features.shape == (2, 576, 3, 2, 2)
        assert torch.allclose(features.mean(dim=(3, 4)).transpose(1, 2), model.frame_embeddings(video))
        assert torch.allclose(model.forward_head(features, pre_logits=True), model.frame_embeddings(video).mean(dim=1))
        assert torch.equal(model.forward_head(features), model(video))


@pytest.mark.parametrize("variant, hidden", [("small", 1024), ("large", 1280)])
@pytest.mark.parametrize("tsm", [False, True])
def test_reset_classifier_removes_both_linear_layers(variant, hidden, tsm):
    torch.manual_seed(0)
    model = (mobilenet_v3_tsm if tsm else mobilenet_v3)(variant, num_classes=5).eval()
    full = count_params(model)
    video = torch.rand(1, 3, 2, 32, 32)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(video), pre_logits=True)
    model.reset_classifier(0)
    assert not any("classifier" in key for key in model.state_dict())
    k = model.num_features
    assert count_params(model) == full - (k * hidden + hidden + hidden * 5 + 5)
    with torch.no_grad():
        assert torch.allclose(model(video), pooled)
    model.reset_classifier(7)  # torchvision's layout again, so its weights load
    assert [key for key in model.state_dict() if "classifier" in key] == [
        "backbone.classifier.0.weight", "backbone.classifier.0.bias",
        "backbone.classifier.3.weight", "backbone.classifier.3.bias",
    ]
    assert model.eval()(video).shape == (1, 7) and model.num_classes == 7
    hidden_weight = model.backbone.classifier[0].weight.clone()
    model.reset_classifier(2)  # keeps the hidden layer
    assert torch.equal(model.backbone.classifier[0].weight, hidden_weight) and model(video).shape == (1, 2)
