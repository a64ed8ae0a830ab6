from dataclasses import replace

import pytest
import torch
from torchvision.models.video import mvit_v1_b

import baselines
from baselines.mvit import MVIT_SPECS, MViTB
from benchmarks.core.counting import count_gflops, count_params
from tests.model_checks import assert_random_only_in_training

pytestmark = pytest.mark.usefixtures("one_thread")


def small(num_classes: int = 7, **options) -> MViTB:
    """MViT-B with a 4-frame 64 x 64 input (2 x 16 x 16 patch tokens): the real blocks, a small clip."""
    torch.manual_seed(0)
    return MViTB(replace(MVIT_SPECS["b_16x4"], frames=4), num_classes=num_classes, spatial_size=64, **options).eval()


def shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def test_16x4_is_torchvisions_mvit_v1_b():
    with torch.device("meta"):
        ours = baselines.build("mvit_b_16x4", num_classes=400)
        theirs = mvit_v1_b(num_classes=400)
    assert count_params(ours) == count_params(theirs) == 36_610_672  # paper: 36.6M (Kinetics-400)
    assert shapes(ours) == shapes(theirs)  # same names: torchvision's weights load as they are
    # the pooling strides and kernels (in the conv reprs) and the heads, block by block
    assert str(ours.blocks) == str(theirs.blocks)
    assert [b.attn.num_heads for b in ours.blocks] == [b.attn.num_heads for b in theirs.blocks]
    assert ours.pos_encoding.temporal_size == 8 and ours.pos_encoding.spatial_size == (56, 56)


def test_32x3_differs_only_in_the_time_position_embedding():
    with torch.device("meta"):
        b16 = shapes(baselines.build("mvit_b_16x4", num_classes=600))
        b32 = shapes(baselines.build("mvit_b_32x3", num_classes=600))
    assert {k for k in b16 if b16[k] != b32[k]} == {"pos_encoding.temporal_pos"}
    assert b16["pos_encoding.temporal_pos"] == (8, 96) and b32["pos_encoding.temporal_pos"] == (16, 96)


@pytest.mark.parametrize("name, frames", [("mvit_b_16x4", 16), ("mvit_b_32x3", 32)])
def test_full_size_shapes(name, frames):
    with torch.device("meta"):
        model = baselines.build(name, num_classes=600).eval()
        video = torch.empty(2, 3, frames, 224, 224)
        tokens = model.forward_features(video)
        assert tokens.shape == (2, 1 + frames // 2 * 7 * 7, 768)
        assert model(video).shape == (2, 600)
        assert model.feature_map(tokens).shape == (2, 768, frames // 2, 7, 7)
        assert model.frame_embeddings(video).shape == (2, frames // 2, 768)
    assert model.num_features == 768


def test_head_contract_on_a_small_clip():
    model = small()
    video = torch.rand(2, 3, 4, 64, 64)
    with torch.no_grad():
        tokens = model.forward_features(video)
        assert tokens.shape == (2, 1 + 2 * 2 * 2, 768)  # class token + T/2 x H/32 x W/32
        pooled = model.forward_head(tokens, pre_logits=True)
        assert torch.equal(pooled, tokens[:, 0])
        assert torch.equal(model.forward_head(tokens), model(video))
        assert model(video).shape == (2, 7)
        embeddings = model.frame_embeddings(video)
    # per temporal token: the patch tokens of each time step averaged over space
    assert embeddings.shape == (2, 2, 768)
    grid = tokens[:, 1:].reshape(2, 2, 4, 768)  # [B, T', H'W', C], tokens in t, h, w order
    assert torch.allclose(embeddings, grid.mean(dim=2), atol=1e-6)
    assert torch.isfinite(embeddings).all()


def test_reset_classifier_zero_removes_the_classifier():
    model = small(num_classes=600)
    video = torch.rand(1, 3, 4, 64, 64)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(video), pre_logits=True)
    full = count_params(model)
    model.reset_classifier(0)
    assert model.num_classes == 0
    assert not any(key.startswith("head.") for key in model.state_dict())
    assert count_params(model) == full - (768 * 600 + 600)
    assert count_params(small(num_classes=0)) == count_params(model)
    with torch.no_grad():
        assert torch.allclose(model(video), pooled, atol=1e-6)
    model.reset_classifier(11)
    with torch.no_grad():
        assert model(video).shape == (1, 11) and model.num_classes == 11


def test_other_input_sizes_are_a_clear_error():
    model = small()
    with pytest.raises(ValueError, match=r"\[B, 3, 4, 64, 64\]"):
        model(torch.rand(1, 3, 8, 64, 64))
    with pytest.raises(ValueError, match="multiple of 32"):
        MViTB(MVIT_SPECS["b_16x4"], spatial_size=200)


def test_options_reach_the_model():
    with torch.device("meta"):
        model = baselines.build("mvit_b_32x3", dropout=0.3, stochastic_depth=0.1)
    assert model.head[0].p == 0.3  # the dropout before the classifier (the blocks' MLPs have p=0)
    assert model.blocks[0].stochastic_depth.p == 0.0
    assert model.blocks[-1].stochastic_depth.p == pytest.approx(0.1)
    assert model.input_mean == (0.45, 0.45, 0.45) and model.input_std == (0.225, 0.225, 0.225)
    with pytest.raises(ValueError, match="unknown option"):
        baselines.build("mvit_b_16x4", causal=True)


def test_stochastic_depth_and_dropout_act_in_training_only():
    assert_random_only_in_training(small(dropout=0.5, stochastic_depth=0.5), torch.rand(2, 3, 4, 64, 64))


def test_16x4_gflops_match_published():
    # MViT paper, Kinetics-400 table: 70.5 GFLOPs per view (multiply-adds, fvcore convention)
    model = baselines.build("mvit_b_16x4", num_classes=400)
    assert count_gflops(model, [1, 3, 16, 224, 224]) == pytest.approx(70.5, rel=0.01)
