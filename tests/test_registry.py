import pytest
import torch

import baselines
from baselines.tsm import TemporalShift

REQUIRED_NAMES = [
    *[f"movinet_a{i}" for i in range(6)],
    *[f"movinet_a{i}_stream" for i in range(6)],
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "mobilenet_v3_small_tsm",
    "mobilenet_v3_large_tsm",
    "x3d_xs",
    "x3d_s",
    "x3d_m",
    "x3d_l",
    "mvit_b_16x4",
    "mvit_b_32x3",
]
# MViT takes one input size (16 or 32 x 224 x 224) and has T/2 frame embeddings: tests/test_mvit.py
PER_FRAME_NAMES = [name for name in REQUIRED_NAMES if not name.startswith("mvit")]


def test_available_lists_exactly_the_required_names():
    names = baselines.available()
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(REQUIRED_NAMES)


@pytest.mark.parametrize("name", PER_FRAME_NAMES)
def test_every_model_follows_the_contract(name):
    torch.manual_seed(0)
    model = baselines.build(name, num_classes=600).eval()
    video = torch.rand(1, 3, 8, 64, 64)
    with torch.no_grad():
        logits = model(video)
        embeddings = model.frame_embeddings(video)
    assert logits.shape == (1, 600)
    assert embeddings.shape == (1, 8, model.num_features)
    assert torch.isfinite(logits).all() and torch.isfinite(embeddings).all()
    assert len(model.input_mean) == 3 and len(model.input_std) == 3


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "mobilenet_v3_small_tsm", "x3d_xs", "movinet_a0"])
def test_num_classes_and_batch(name):
    model = baselines.build(name, num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 4, 32, 32)).shape == (2, 7)


@pytest.mark.parametrize(
    "name, mean, std",
    [
        ("mobilenet_v3_large_tsm", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ("x3d_m", (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)),
        ("movinet_a0_stream", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    ],
)
def test_input_normalisation(name, mean, std):
    model = baselines.build(name)
    assert tuple(model.input_mean) == mean and tuple(model.input_std) == std


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(ValueError, match="x3d_xxl") as info:
        baselines.build("x3d_xxl")
    for name in REQUIRED_NAMES:
        assert name in str(info.value)


@pytest.mark.parametrize(
    "name, option, accepted",
    [
        ("x3d_m", "drop_out", "stochastic_depth"),
        ("mobilenet_v3_small", "causal", "dropout"),  # only the TSM models have a causal shift
        ("mobilenet_v3_small_tsm", "stochastic_depth", "causal"),
        ("movinet_a0", "no_such_option", "stochastic_depth"),
    ],
)
def test_unknown_option_is_a_clear_error(name, option, accepted):
    with pytest.raises(ValueError, match=option) as info:
        baselines.build(name, **{option: 0.1})
    assert name in str(info.value) and accepted in str(info.value)


def test_options_fixed_by_the_name_cannot_be_overridden():
    with pytest.raises(ValueError, match="'stream'.*fixed by its name"):
        baselines.build("movinet_a2_stream", stream=False)


def test_options_reach_the_model():
    x3d = baselines.build("x3d_s", dropout=0.3, stochastic_depth=0.2)
    assert x3d.classifier.dropout.p == 0.3
    assert x3d.res2[0].stochastic_depth.p == 0.0
    assert x3d.res5[-1].stochastic_depth.p == pytest.approx(0.2)

    mobilenet = baselines.build("mobilenet_v3_large", dropout=0.1)
    assert [m.p for m in mobilenet.modules() if isinstance(m, torch.nn.Dropout)] == [0.1]

    for causal in (False, True):
        tsm = baselines.build("mobilenet_v3_small_tsm", causal=causal)
        shifts = [m for m in tsm.modules() if isinstance(m, TemporalShift)]
        assert shifts and all(m.causal is causal for m in shifts)


def test_stream_names_build_stream_models():
    assert baselines.build("movinet_a1_stream").stream is True
    assert baselines.build("movinet_a1").stream is False


@pytest.mark.parametrize(
    "name", ["movinet_a0", "movinet_a0_stream", "x3d_xs", "mobilenet_v3_small", "mobilenet_v3_large_tsm"]
)
def test_head_contract_and_reset_classifier_zero_removes_the_classifier(name):
    torch.manual_seed(0)
    model = baselines.build(name, num_classes=600).eval()
    video = torch.rand(1, 3, 4, 32, 32)
    with torch.no_grad():
        features = model.forward_features(video)
        assert features.shape[:3] == (1, model.num_features, 4)
        assert torch.equal(model.forward_head(features), model(video))
        pooled = model.forward_head(features, pre_logits=True)
    assert pooled.shape == (1, model.num_features)

    model.reset_classifier(0)
    assert model.num_classes == 0
    assert not any("classifier" in key for key in model.state_dict())
    assert not any("classifier" in key for key, _ in model.named_parameters())
    with torch.no_grad():
        assert torch.allclose(model(video), pooled, atol=1e-6)
        assert torch.allclose(model.forward_head(model.forward_features(video)), pooled, atol=1e-6)
        assert model.frame_embeddings(video).shape == (1, 4, model.num_features)

    model.reset_classifier(11)
    with torch.no_grad():
        assert model(video).shape == (1, 11)
