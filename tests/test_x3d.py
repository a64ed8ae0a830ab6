import pytest
import torch

from baselines.x3d import X3D_CONFIGS, SqueezeExcitation3d, x3d
from benchmarks.core.counting import count_gflops, count_params


@pytest.mark.parametrize("variant, millions", [("xs", 3.79), ("s", 3.79), ("m", 3.79), ("l", 6.15)])
def test_parameter_count_with_400_classes_matches_the_paper(variant, millions):
    assert count_params(x3d(variant, num_classes=400)) / 1e6 == pytest.approx(millions, rel=0.01)


def test_depths_and_squeeze_excitation_every_other_block():
    model = x3d("l")
    stages = [model.res2, model.res3, model.res4, model.res5]
    assert [len(stage) for stage in stages] == [5, 10, 25, 15]
    assert [len(stage) for stage in (x3d("xs").res2, x3d("xs").res3, x3d("xs").res4, x3d("xs").res5)] == [3, 5, 11, 7]
    for stage in stages:
        assert [isinstance(block.se, SqueezeExcitation3d) for block in stage] == [i % 2 == 0 for i in range(len(stage))]
    # SE width: 1/16 of the bottleneck width rounded to a multiple of 8 (54, 108, 216, 432 -> 8, 8, 16, 32).
    assert [stage[0].se.fc1.out_channels for stage in stages] == [8, 8, 16, 32]


def test_feature_maps_at_182_px_keep_every_frame():
    model = x3d("xs").eval()
    shapes = {}
    for name in ("stem", *model.tap_points):
        model.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, o.shape))
    with torch.no_grad():
        model(torch.rand(1, 3, 4, 182, 182))
    assert [tuple(shapes[n]) for n in ("stem", "res2", "res3", "res4", "res5", "conv5")] == [
        (1, 24, 4, 91, 91),
        (1, 24, 4, 46, 46),
        (1, 48, 4, 23, 23),
        (1, 96, 4, 12, 12),
        (1, 192, 4, 6, 6),
        (1, 432, 4, 6, 6),
    ]


@pytest.mark.parametrize("shape", [(2, 3, 5, 64, 96), (1, 3, 1, 32, 32), (1, 3, 9, 48, 48)])
def test_any_frames_and_crop(shape):
    model = x3d("s", num_classes=10).eval()
    video = torch.rand(*shape)
    with torch.no_grad():
        assert model(video).shape == (shape[0], 10)
        assert model.frame_embeddings(video).shape == (shape[0], shape[2], 432)


def test_logits_come_from_the_time_average_of_frame_embeddings():
    torch.manual_seed(0)
    model = x3d("xs", num_classes=5).eval()
    video = torch.rand(2, 3, 6, 64, 64)
    with torch.no_grad():
        pooled = model.frame_embeddings(video).mean(dim=1)
        expected = model.classifier.fc(torch.relu(model.classifier.lin5(pooled)))
        assert torch.allclose(model(video), expected, rtol=1e-4, atol=1e-6)
        features = model.forward_features(video)
        assert features.shape == (2, 432, 6, 2, 2)
        assert torch.allclose(model.forward_head(features, pre_logits=True), pooled, atol=1e-6)
        assert torch.equal(model.forward_head(features), model(video))


def test_reset_classifier_removes_lin5_and_fc():
    torch.manual_seed(0)
    model = x3d("xs", num_classes=5).eval()
    video = torch.rand(1, 3, 2, 32, 32)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(video), pre_logits=True)
    model.reset_classifier(0)
    assert not any(key.startswith("classifier") for key in model.state_dict())
    assert count_params(model) == count_params(x3d("xs", num_classes=5)) - (432 * 2048 + 2048 * 5 + 5)
    with torch.no_grad():
        assert torch.allclose(model(video), pooled)
    model.reset_classifier(3)
    assert model(video).shape == (1, 3) and model.num_classes == 3
    lin5 = model.classifier.lin5.weight.clone()
    model.reset_classifier(4)  # keeps lin5
    assert torch.equal(model.classifier.lin5.weight, lin5) and model.classifier.fc.out_features == 4


def test_res2_shortcut_has_no_batch_norm():
    # pytorchvideo's create_x3d: the shortcut gets BN only where the width changes (not res2: 24 -> 24)
    model = x3d("xs")
    assert [len(stage[0].shortcut) for stage in (model.res2, model.res3, model.res4, model.res5)] == [1, 2, 2, 2]
    assert model.res2[0].shortcut[0].bias is None


def test_frame_embeddings_mix_neighbouring_frames():
    """3D convs run along time: changing frame 2 changes the embedding of frame 0 (stem: 5x1x1)."""
    torch.manual_seed(0)
    model = x3d("xs").eval()
    video = torch.rand(1, 3, 6, 32, 32)
    perturbed = video.clone()
    perturbed[:, :, 2] = 0
    with torch.no_grad():
        reference, changed = model.frame_embeddings(video), model.frame_embeddings(perturbed)
    assert (changed[0, 0] - reference[0, 0]).abs().max() > 1e-3 * reference[0, 0].abs().max()


def test_stochastic_depth_grows_linearly_and_is_off_in_eval():
    model = x3d("m", stochastic_depth=0.3)
    rates = [block.stochastic_depth.p for stage in (model.res2, model.res3, model.res4, model.res5) for block in stage]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.3)
    assert all(b > a for a, b in zip(rates, rates[1:]))
    model.eval()
    video = torch.rand(1, 3, 2, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(video), model(video))


def test_configs_record_the_standard_inputs():
    assert {v: (c.num_frames, c.train_crop, c.test_crop) for v, c in X3D_CONFIGS.items()} == {
        "xs": (4, 160, 182),
        "s": (13, 160, 182),
        "m": (16, 224, 256),
        "l": (16, 312, 356),
    }


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\[B, 3, T, H, W\]"):
        x3d("xs")(torch.rand(1, 4, 2, 32, 32))
    with pytest.raises(ValueError, match="xl"):
        x3d("xl")


def test_x3d_m_gflops_match_the_published_count():
    # Table 1: X3D-M, 50 frames at 256 px, 19.4 GFLOPs.
    assert count_gflops(x3d("m"), (1, 3, 50, 256, 256)) == pytest.approx(19.4, rel=0.03)
