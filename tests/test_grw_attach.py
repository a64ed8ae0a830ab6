import pytest
import torch
import torch.nn.functional as F
from torch import nn

from grw import GrwModel, GrwSmoothingLoss, IntermediateTaps, TemporalHead, windows


class TinyConv3d(nn.Module):
    """A 3D backbone honouring the contract: feature maps [B, C, T, H, W]."""

    num_features = 12

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv3d(8, self.num_features, 3, padding=1)
        self.fc = nn.Linear(self.num_features, num_classes)

    def frame_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(torch.relu(self.conv1(x)))
        return x.mean(dim=(3, 4)).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.frame_embeddings(x).mean(dim=1))


class TinyFrameWise(nn.Module):
    """A frame-wise 2D backbone: frames folded into the batch, feature maps [B*T, C, H, W]."""

    num_features = 10

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, self.num_features, 3))
        self.fc = nn.Linear(self.num_features, num_classes)

    def frame_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        return self.features(frames).mean(dim=(2, 3)).view(b, t, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.frame_embeddings(x).mean(dim=1))


class TinyCausal(nn.Module):
    """A causal backbone: per-frame conv, then a temporal conv over (previous, current) frame."""

    num_features = 6

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.frame = nn.Conv2d(3, self.num_features, 3, padding=1)
        self.temporal = nn.Conv1d(self.num_features, self.num_features, 2)
        self.fc = nn.Linear(self.num_features, num_classes)

    def _per_frame(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        return self.frame(x.transpose(1, 2).reshape(b * t, c, h, w)).mean(dim=(2, 3)).view(b, t, -1)

    def stream_frame_embeddings(self, chunk, state):
        frames = self._per_frame(chunk).transpose(1, 2)  # [B, K, t]
        previous = torch.zeros_like(frames[:, :, :1]) if state is None else state
        out = self.temporal(torch.cat([previous, frames], dim=2)).transpose(1, 2)
        return out, frames[:, :, -1:]

    def frame_embeddings(self, x):
        return self.stream_frame_embeddings(x, None)[0]

    def forward(self, x):
        return self.fc(self.frame_embeddings(x).mean(dim=1))

    def forward_stream(self, chunk, state):
        total, count, causal_state = state or (0.0, 0, None)
        emb, causal_state = self.stream_frame_embeddings(chunk, causal_state)
        total, count = total + emb.sum(dim=1), count + emb.shape[1]
        return self.fc(total / count), (total, count, causal_state)


def clip(batch: int = 2, frames: int = 10, size: int = 8) -> torch.Tensor:
    return torch.randn(batch, 3, frames, size, size)


def count_calls(module: nn.Module) -> list:
    calls = []
    module.register_forward_hook(lambda *args: calls.append(1))
    return calls


# ---------------------------------------------------------------- TemporalHead


@pytest.mark.parametrize("frames", [50, 12])
def test_head_shapes_and_grw_loss_on_projected_windows(frames):
    torch.manual_seed(0)
    head = TemporalHead(16, num_classes=7, embed_dim=32, depth=2, num_heads=4, mlp_dim=48, window=5)
    feats = torch.randn(3, frames, 16)
    logits, grw_loss = head(feats)
    assert logits.shape == (3, 7)
    expected = GrwSmoothingLoss(5)(windows(head.proj(feats), 5))  # Z, before the LayerNorm
    assert grw_loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_head_grw_loss_only_when_training_or_asked():
    head = TemporalHead(16, 3, embed_dim=16, num_heads=2)
    feats = torch.randn(2, 10, 16)
    assert head(feats)[1] is not None
    head.eval()
    assert head(feats)[1] is None
    assert head(feats, compute_grw=True)[1] is not None
    head.train()
    assert head(feats, compute_grw=False)[1] is None
    assert TemporalHead(16, 3, embed_dim=16, num_heads=2, grw=False)(feats)[1] is None


def test_head_short_sequences_and_bad_arguments():
    head = TemporalHead(8, 3, embed_dim=16, num_heads=2, window=5)
    with pytest.raises(ValueError, match="shorter than one window"):
        head(torch.randn(2, 4, 8))
    head.eval()
    assert head(torch.randn(2, 4, 8))[0].shape == (2, 3)  # no GRW needed in eval
    with pytest.raises(ValueError, match="divisible by num_heads"):
        TemporalHead(8, 3, embed_dim=30, num_heads=4)
    with pytest.raises(ValueError, match=r"\[B, N, C\]"):
        head(torch.randn(4, 8))


def test_head_backward_reaches_projection_through_grw():
    head = TemporalHead(8, 3, embed_dim=16, num_heads=2)
    _, grw_loss = head(torch.randn(2, 10, 8))
    grw_loss.backward()
    assert head.proj.weight.grad.abs().sum() > 0
    assert head.fc.weight.grad is None  # the classifier is not on the GRW path


# ---------------------------------------------------------------- IntermediateTaps


def test_taps_on_3d_backbone_sum_the_losses_of_each_layer():
    torch.manual_seed(0)
    backbone = TinyConv3d()
    captured = {}
    backbone.conv1.register_forward_hook(lambda m, i, o: captured.__setitem__("conv1", o))
    backbone.conv2.register_forward_hook(lambda m, i, o: captured.__setitem__("conv2", o))
    taps = IntermediateTaps(backbone, ["conv1", "conv2"], window=5)
    backbone(clip(frames=10))

    grw = GrwSmoothingLoss(5)
    expected = 0.0
    for name in ["conv1", "conv2"]:
        pooled = F.batch_norm(captured[name].mean(dim=(3, 4)), None, None, training=True)
        expected += grw(windows(pooled.transpose(1, 2), 5)).item()
    loss = taps.loss()
    assert loss.item() == pytest.approx(expected, rel=1e-4)
    assert taps.loss() is None  # cleared
    assert [norm.num_features for norm in taps.norms] == [8, 12]


def test_taps_only_keep_the_last_forward():
    backbone = TinyConv3d()
    taps = IntermediateTaps(backbone, ["conv2"])
    first, second = clip(), clip()
    backbone(first)
    backbone(second)
    from_two = taps.loss()
    backbone(second)
    assert from_two.item() == pytest.approx(taps.loss().item(), rel=1e-5)


def test_taps_backward_reaches_the_backbone():
    backbone = TinyConv3d()
    taps = IntermediateTaps(backbone, ["conv1", "conv2"], window=5)
    backbone(clip(frames=10))
    taps.loss().backward()
    assert backbone.conv1.weight.grad.abs().sum() > 0
    assert backbone.fc.weight.grad is None


def test_taps_on_frame_wise_backbone_need_frames():
    backbone = TinyFrameWise()
    taps = IntermediateTaps(backbone, ["features.0", "features.2"], window=3)
    with pytest.raises(ValueError, match="frames"):
        backbone(clip(frames=6))
    taps.frames = 6
    backbone(clip(frames=6))
    assert taps.loss() is not None
    taps.frames = 4
    with pytest.raises(ValueError, match="not a multiple"):
        backbone(clip(batch=1, frames=6))


def test_disabled_eval_and_removed_taps_collect_nothing():
    backbone = TinyConv3d()
    taps = IntermediateTaps(backbone, ["conv1"], enabled=False)
    calls = count_calls(taps.grw_loss)
    backbone(clip())
    assert taps.loss() is None
    taps.enabled = True
    taps.eval()
    backbone(clip())
    assert taps.loss() is None
    taps.train()
    with taps.paused():
        backbone(clip())
    assert taps.loss() is None and calls == []
    backbone(clip())
    assert taps.loss() is not None and len(calls) == 1

    taps.remove()
    assert len(backbone.conv1._forward_hooks) == 0
    backbone(clip())
    assert taps.loss() is None and len(calls) == 1


def test_taps_reject_unknown_layers_and_bad_maps():
    backbone = TinyConv3d()
    with pytest.raises(AttributeError):
        IntermediateTaps(backbone, ["no_such_layer"])
    with pytest.raises(ValueError, match="at least one layer"):
        IntermediateTaps(backbone, [])
    IntermediateTaps(backbone, ["fc"])
    with pytest.raises(ValueError, match=r"\[B, C, T, H, W\]"):
        backbone(clip())


# ---------------------------------------------------------------- GrwModel


def make_model(grw_weight: float = 1.0) -> GrwModel:
    backbone = TinyConv3d()
    head = TemporalHead(backbone.num_features, 4, embed_dim=16, num_heads=2, window=5)
    taps = IntermediateTaps(backbone, ["conv1"], window=5)
    return GrwModel(backbone, head, taps, grw_weight=grw_weight)


def test_model_with_head_and_taps_returns_weighted_aux():
    torch.manual_seed(0)
    model = make_model()
    x = clip(frames=12)
    logits, aux = model(x)
    assert logits.shape == (2, 4)
    assert set(aux) == {"grw", "grw_taps"}
    model.grw_weight = 2.5
    _, aux_weighted = model(x)
    for key in aux:
        assert aux_weighted[key].item() == pytest.approx(2.5 * aux[key].item(), rel=1e-5)
    head_logits, head_grw = model.head(model.backbone.frame_embeddings(x))
    assert torch.allclose(logits, head_logits)
    assert aux["grw"].item() == pytest.approx(head_grw.item(), rel=1e-5)


def test_model_backward_gives_gradients_to_the_backbone():
    model = make_model()
    logits, aux = model(clip(frames=10))
    loss = F.cross_entropy(logits, torch.tensor([0, 1])) + sum(aux.values())
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.conv1.parameters())
    model.zero_grad()
    _, aux = model(clip(frames=10))
    aux["grw_taps"].backward()
    assert model.backbone.conv1.weight.grad.abs().sum() > 0


def test_model_without_head_uses_backbone_logits_and_sets_frames_for_taps():
    backbone = TinyFrameWise()
    taps = IntermediateTaps(backbone, ["features.2"], window=3)
    model = GrwModel(backbone, taps=taps, grw_weight=0.1)
    x = clip(frames=6)
    logits, aux = model(x)
    assert torch.allclose(logits, backbone(x))
    assert set(aux) == {"grw_taps"} and taps.frames == 6


def test_model_with_grw_off_has_no_aux_and_computes_no_grw():
    x = clip(frames=10)
    model = make_model(grw_weight=0.0)
    head_calls, taps_calls = count_calls(model.head.grw_loss), count_calls(model.taps.grw_loss)
    assert model(x)[1] == {}
    assert head_calls == [] and taps_calls == []
    assert model.taps.enabled  # the taps are paused only for that forward

    backbone = TinyConv3d()
    plain = GrwModel(backbone, TemporalHead(backbone.num_features, 4, embed_dim=16, num_heads=2, grw=False))
    assert plain(x)[1] == {}

    model.grw_weight = 1.0
    model.eval()
    assert model(x)[1] == {}
    assert head_calls == [] and taps_calls == []


def test_forward_stream_with_head_matches_the_whole_clip():
    torch.manual_seed(0)
    backbone = TinyCausal()
    model = GrwModel(backbone, TemporalHead(backbone.num_features, 4, embed_dim=16, num_heads=2)).eval()
    x = clip(frames=12)
    state = None
    for start in range(0, 12, 5):  # chunks of 5, 5, 2 frames
        logits, state = model.forward_stream(x[:, :, start : start + 5], state)
    assert state["embeddings"].shape == (2, 12, backbone.num_features)
    assert torch.allclose(logits, model(x)[0], atol=1e-5)


def test_forward_stream_without_head_delegates_to_the_backbone():
    backbone = TinyCausal()
    model = GrwModel(backbone).eval()
    x = clip(frames=9)
    state = None
    for start in range(0, 9, 3):
        logits, state = model.forward_stream(x[:, :, start : start + 3], state)
    assert torch.allclose(logits, backbone(x), atol=1e-5)
