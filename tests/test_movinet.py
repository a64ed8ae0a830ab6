import pytest
import torch
from torch import nn

from baselines.movinet import (
    Conv2Plus1dBNAct,
    HardSigmoid,
    MoViNet,
    SqueezeExcite,
    avg_pool_same,
    movinet,
    same_padding,
    variants,
)
from benchmarks.core.counting import count_gflops, count_params
from tests.model_checks import assert_random_only_in_training

ALL_VARIANTS = ["a0", "a1", "a2", "a3", "a4", "a5"]


pytestmark = pytest.mark.usefixtures("one_thread")


def randomized(model: MoViNet, seed: int = 0) -> MoViNet:
    """Eval-mode model with non-trivial BN statistics and affine terms and non-zero ReZero scalars,
    so that every branch and every stream buffer affects the output."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm3d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
        for name, param in model.named_parameters():
            if name.endswith("rezero"):
                param.fill_(0.5)
            elif name.endswith("bias"):  # SE and classifier biases
                param.uniform_(-0.1, 0.1)
    return model.eval()


def test_variants_are_read_from_the_spec_table():
    assert variants() == ALL_VARIANTS


def test_unknown_variant_lists_valid_ones():
    with pytest.raises(ValueError, match="a0, a1, a2, a3, a4, a5"):
        movinet("a9")


def test_bad_input_shape_is_a_value_error():
    model = movinet("a0").eval()
    with pytest.raises(ValueError, match=r"\[B, 3, T, H, W\]"):
        model(torch.rand(1, 8, 3, 32, 32))


def test_base_model_cannot_stream():
    with pytest.raises(RuntimeError, match="stream=True"):
        movinet("a0").forward_stream(torch.rand(1, 3, 2, 32, 32))


@pytest.mark.parametrize("stream", [False, True], ids=["base", "stream"])
@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_forward_and_frame_embeddings_shapes(variant, stream):
    model = movinet(variant, stream=stream, num_classes=600).eval()
    x = torch.rand(1, 3, 8, 64, 64)
    with torch.no_grad():
        logits = model(x)
        embeddings = model.frame_embeddings(x)
    assert logits.shape == (1, 600)
    assert embeddings.shape == (1, 8, model.num_features)
    assert torch.isfinite(logits).all() and torch.isfinite(embeddings).all()


@pytest.mark.parametrize("stream", [False, True], ids=["base", "stream"])
def test_logits_are_the_classifier_on_time_averaged_conv7_embeddings(stream):
    model = randomized(movinet("a0", stream=stream))
    assert model.num_features == 480  # A0 project_filters (conv7)
    x = torch.rand(2, 3, 6, 32, 32)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, 480, 6, 1, 1)
        embeddings = model.frame_embeddings(x)
        assert torch.allclose(embeddings, features.mean(dim=(3, 4)).transpose(1, 2))
        assert torch.allclose(model.forward_head(features, pre_logits=True), embeddings.mean(dim=1), atol=1e-6)
        assert torch.allclose(model(x), model.forward_head(features))
        assert torch.allclose(model(x), model.head.classifier(embeddings.mean(dim=1)), atol=1e-6)


@pytest.mark.parametrize("variant, width", [("a0", 480), ("a1", 600), ("a2", 640), ("a3", 744)])
def test_frame_embeddings_are_conv7_averaged_over_space(variant, width):
    model = randomized(movinet(variant, stream=True))
    captured = []
    model.head.project.register_forward_hook(lambda m, i, o: captured.append(o))
    x = torch.rand(1, 3, 3, 32, 32)
    with torch.no_grad():
        embeddings = model.frame_embeddings(x)
    assert embeddings.shape == (1, 3, width)
    assert torch.equal(embeddings, captured[0].mean(dim=(3, 4)).transpose(1, 2))


def test_tf_same_padding_puts_the_odd_pad_after():
    assert same_padding(64, kernel=3, stride=2) == (0, 1)
    assert same_padding(63, kernel=3, stride=2) == (1, 1)
    assert same_padding(10, kernel=5, stride=1) == (2, 2)
    # 172 px: the map sizes the published FLOP counts assume (86, 43, 22, 11, 6)
    model = movinet("a0").eval()
    sizes = []
    model.head.project.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1]))
    for block in model.blocks:
        block[0].register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1]))
    with torch.no_grad():
        model(torch.rand(1, 3, 1, 172, 172))
    assert sizes == [43, 22, 11, 11, 6, 6]


def test_same_average_pool_leaves_padding_out_of_the_mean():
    x = torch.arange(16.0).reshape(1, 1, 1, 4, 4)  # 'same' pads one row/column after, none before
    pooled = avg_pool_same(x, (1, 3, 3), (1, 2, 2))
    assert torch.equal(pooled.flatten(), torch.tensor([5.0, 6.5, 11.0, 12.5]))


@pytest.mark.parametrize("variant, stream_conv", [("a0", "2plus1d"), ("a3", "2plus1d"), ("a0", "3d")])
def test_stream_chunks_equal_whole_clip(variant, stream_conv):
    model = randomized(movinet(variant, stream=True, num_classes=10, stream_conv=stream_conv))
    video = torch.rand(1, 3, 20, 32, 32)
    with torch.no_grad():
        whole_logits, whole_embeddings = model(video), model.frame_embeddings(video)
        assert whole_logits.abs().max() > 1e-2  # not trivially constant

        state, embeddings = None, []  # chunks of 8 (the last one shorter): embeddings and logits
        for start in range(0, 20, 8):
            chunk_embeddings, _ = model.stream_frame_embeddings(video[:, :, start : start + 8], state)
            logits, state = model.forward_stream(video[:, :, start : start + 8], state)
            embeddings.append(chunk_embeddings)
        assert (torch.cat(embeddings, dim=1) - whole_embeddings).abs().max() <= 1e-4
        assert (logits - whole_logits).abs().max() <= 1e-4

        state = None  # frame by frame: the logits after each frame are those of the clip so far
        for t in range(20):
            logits, state = model.forward_stream(video[:, :, t : t + 1], state)
            if t in (4, 19):
                assert (logits - model(video[:, :, : t + 1])).abs().max() <= 1e-4


def test_stream_models_are_2plus1d_with_hard_swish_tf_gates_and_their_se_width():
    stream, base = movinet("a0", stream=True), movinet("a0")
    # block 2, layer 0: 80 channels, kernel 3x3x3, stride 1x2x2
    feature = stream.blocks[1][0].feature
    assert isinstance(feature, Conv2Plus1dBNAct)
    assert feature.conv.kernel_size == (1, 3, 3) and feature.conv.stride == (1, 2, 2)
    assert feature.temporal.conv.kernel_size == (3, 1, 1) and feature.temporal.conv.causal
    assert isinstance(feature.act, nn.Hardswish) and isinstance(feature.temporal.act, nn.Hardswish)
    assert stream.blocks[0][0].feature.temporal is None  # 1x5x5: no temporal part
    assert base.blocks[1][0].feature.conv.kernel_size == (3, 3, 3)
    assert isinstance(base.blocks[1][0].feature.act, nn.SiLU)
    # SE hidden width: make_divisible(2 * (80 // 4)) = 40 on a 160-wide input (stream), 24 (base)
    assert (stream.blocks[1][0].se.reduce.in_channels, stream.blocks[1][0].se.reduce.out_channels) == (160, 40)
    assert (base.blocks[1][0].se.reduce.in_channels, base.blocks[1][0].se.reduce.out_channels) == (80, 24)
    assert isinstance(stream.blocks[1][0].se.gate, HardSigmoid) and isinstance(base.blocks[1][0].se.gate, nn.Sigmoid)
    # the classifier activation is swish in both kinds
    assert isinstance(stream.head.classifier.act, nn.SiLU) and isinstance(base.head.classifier.act, nn.SiLU)


def test_tf_hard_sigmoid():
    x = torch.tensor([-3.0, -2.5, 0.0, 1.0, 2.5, 4.0])
    assert torch.allclose(HardSigmoid()(x), torch.tensor([0.0, 0.0, 0.5, 0.7, 1.0, 1.0]))


@pytest.mark.parametrize("variant, params", [("a0", 3_748_031), ("a1", 6_447_352), ("a2", 7_326_962)])
def test_stream_parameter_counts_equal_movinet_pytorch(variant, params):
    # MoViNet(_C.MODEL.MoViNetA<i>, causal=True, conv_type="2plus1d", tf_like=True), commit c2d1edf
    assert count_params(movinet(variant, stream=True)) == params


def test_stream_buffer_holds_frames_after_the_spatial_conv():
    model = movinet("a0", stream=True).eval()
    with torch.no_grad():
        _, state = model.forward_stream(torch.rand(1, 3, 2, 64, 64))
    # block 2 layer 0: 80 channels, 3x3x3 at stride 1x2x2 on a 16x16 map: 2 frames of 8x8
    assert state["blocks.1.0.feature.temporal.conv"].shape == (1, 80, 2, 8, 8)
    causal_3d = movinet("a0", stream=True, stream_conv="3d").eval()
    with torch.no_grad():
        _, state = causal_3d.forward_stream(torch.rand(1, 3, 2, 64, 64))
    assert state["blocks.1.0.feature.conv"].shape == (1, 80, 2, 16, 16)  # input frames, before the stride


def test_unknown_stream_conv_is_an_error():
    with pytest.raises(ValueError, match="stream_conv"):
        movinet("a0", stream=True, stream_conv="2d")


def test_reset_classifier_removes_dense9_and_dense10():
    model = randomized(movinet("a0", stream=True))
    x = torch.rand(1, 3, 4, 32, 32)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
    model.reset_classifier(0)
    assert not any("classifier" in key for key in model.state_dict())
    assert count_params(model) == count_params(movinet("a0", stream=True)) - (480 * 2048 + 2048 + 2048 * 600 + 600)
    with torch.no_grad():
        assert torch.allclose(model(x), pooled)
        assert torch.allclose(model.forward_stream(x)[0], pooled, atol=1e-6)
    model.reset_classifier(7)
    assert model(x).shape == (1, 7) and model.num_classes == 7
    hidden = model.head.classifier.hidden.weight.clone()
    model.reset_classifier(5)  # keeps dense9
    assert torch.equal(model.head.classifier.hidden.weight, hidden) and model.head.classifier.fc.out_features == 5


def test_positional_encoding_is_used_by_a3_stream_only():
    def uses_positions(model):
        return any(m.positional_encoding for m in model.modules() if isinstance(m, SqueezeExcite))

    assert uses_positions(movinet("a3", stream=True))
    assert not uses_positions(movinet("a2", stream=True)) and not uses_positions(movinet("a3"))


def test_stream_frames_depend_only_on_the_past():
    x = torch.rand(1, 3, 12, 32, 32)
    changed = x.clone()
    changed[:, :, 7:] = torch.rand_like(changed[:, :, 7:])
    stream = randomized(movinet("a0", stream=True))
    base = randomized(movinet("a0"))
    with torch.no_grad():
        a, b = stream.frame_embeddings(x), stream.frame_embeddings(changed)
        assert (a[:, :7] - b[:, :7]).abs().max() <= 1e-6
        assert (a[:, 7:] - b[:, 7:]).abs().max() > 1e-4
        # the base model looks both ways (temporal 'same' padding, clip-level SE)
        assert (base.frame_embeddings(x)[:, :7] - base.frame_embeddings(changed)[:, :7]).abs().max() > 1e-5


def test_stream_state_size_does_not_grow():
    model = movinet("a3", stream=True).eval()
    with torch.no_grad():
        _, state = model.forward_stream(torch.rand(1, 3, 8, 32, 32))
        size_8 = {key: value.shape for key, value in state.items()}
        _, state = model.forward_stream(torch.rand(1, 3, 24, 32, 32), state)
        size_32 = {key: value.shape for key, value in state.items()}
    assert size_8 == size_32
    # plain tensors that own their memory (no views holding on to a whole chunk)
    assert all(value.untyped_storage().nbytes() == value.numel() * value.element_size() for value in state.values())
    assert int(state["head.cgap.count"]) == 32


def test_stochastic_depth_and_dropout_act_in_training_only():
    model = randomized(movinet("a0", stochastic_depth=0.5, dropout=0.5))
    assert_random_only_in_training(model, torch.rand(4, 3, 4, 32, 32))


def test_parameter_counts_match_the_paper_for_a0_a1():
    # MoViNet paper Table 2 (600 classes): A0 3.1M, A1 4.6M; the official architectures give 3.11M, 4.69M
    assert count_params(movinet("a0")) == pytest.approx(3.11e6, rel=0.005)
    assert count_params(movinet("a1")) == pytest.approx(4.69e6, rel=0.005)


def test_a4_a5_parameter_counts_are_those_of_the_official_architectures():
    # Above the paper's Table 2 column (A4 4.9M, A5 15.7M), like A2 and A3; the released A4 and A5
    # weights fit them exactly (test_convert). The paper's A6 (386 GFLOPs = A4's 105 + A5's 281) has no spec of
    # its own: the official README calls it an ensemble of A4 and A5 (movinet_specs.json `_about`).
    with torch.device("meta"):
        assert count_params(movinet("a4")) == 11_349_463
        assert count_params(movinet("a5")) == 18_650_523


@pytest.mark.parametrize(
    "stream, stream_conv, published", [(False, "2plus1d", 2.71), (True, "3d", 2.73)], ids=["base", "causal-3d"]
)
def test_a0_gflops_match_published(stream, stream_conv, published):
    # The paper's A0-Stream count (2.73) is for causal 3D convs, as first released.
    gflops = count_gflops(movinet("a0", stream=stream, stream_conv=stream_conv), [1, 3, 50, 172, 172])
    assert gflops == pytest.approx(published, rel=0.05)


def test_a0_stream_2plus1d_gflops_are_below_the_papers_causal_3d_count():
    # The public stream checkpoints use (2+1)D convs (the official models switched to them after the
    # paper, MoViNet-pytorch issue #9): a 3x3x3 depthwise kernel becomes 3x3 + 3 multiply-adds.
    gflops = count_gflops(movinet("a0", stream=True), [1, 3, 50, 172, 172])
    assert gflops == pytest.approx(2.426, rel=0.01)
