"""The authors' GRW model: head numerics, the safe snapshot reader, GRW on Z, parameters, streaming.

Golden numbers come from ``tests/fixtures/grw/``, made by ``tools/make_grw_fixtures.py`` running the
authors' own classes (gilgoldm/grw-smoothing at the commit in ``manifest.json``) with random weights:
a snapshot in their exact format and their outputs (raw and EMA weights) on one clip.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pickle
import sys
import types
from pathlib import Path

import pytest
import torch
from torch import nn

import baselines
import grw
from baselines.movinet import MoViNet, MovinetSpec
from benchmarks.engine import authors
from benchmarks.table1.specs import AUTHORS_COMMIT, GRW_SETTING_SOURCES, GrwSettings, build_model, get_spec
from grw.head import sincos_position_encoding

FIXTURES = Path(__file__).parent / "fixtures" / "grw"
SNAPSHOT = FIXTURES / "authors_a0s_tiny.pt"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def outputs() -> dict[str, torch.Tensor]:
    return torch.load(FIXTURES / "authors_a0s_tiny_outputs.pt", weights_only=True)


@pytest.fixture(scope="module")
def snapshot() -> authors.AuthorsSnapshot:
    return authors.read_snapshot(SNAPSHOT)


def authors_head(snapshot: authors.AuthorsSnapshot, variant: str) -> grw.TemporalHead:
    head_state, _ = authors.split_state(snapshot.state(variant))
    head = grw.TemporalHead(**snapshot.head_options()).eval()
    head.load_state_dict({key.removeprefix("head."): value for key, value in head_state.items()})
    return head


# ---------------------------------------------------------------- fixtures


def test_fixtures_are_the_generated_ones_and_small():
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    assert manifest["authors_commit"] == AUTHORS_COMMIT
    for name, entry in manifest["files"].items():
        data = (FIXTURES / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) < 1_000_000


# ---------------------------------------------------------------- the head against theirs


@pytest.mark.parametrize("variant", ["raw", "ema"])
def test_head_equals_the_authors_head(snapshot, outputs, variant):
    head = authors_head(snapshot, variant)
    feats = outputs[f"{variant}_feats"]  # conv7 averaged over space, per frame: what their projection gets
    with torch.no_grad():
        logits, grw_loss = head(feats, compute_grw=True)
        z = head.embed(feats)
    torch.testing.assert_close(logits, outputs[f"{variant}_logits"], atol=1e-5, rtol=0)
    torch.testing.assert_close(z.reshape(outputs[f"{variant}_z"].shape), outputs[f"{variant}_z"], atol=1e-5, rtol=0)
    # their GrwSmoothingLoss (packages/grw-smoothing) on their Z windows
    assert grw_loss.item() == pytest.approx(outputs[f"{variant}_grw_loss"].item(), abs=1e-5)


def test_raw_and_ema_outputs_differ(outputs):
    assert (outputs["raw_logits"] - outputs["ema_logits"]).abs().max() > 0.1


def test_position_encoding_is_sines_then_cosines_with_the_authors_frequencies():
    length, dim = 7, 12
    encoding = sincos_position_encoding(length, dim)
    half = dim // 2
    for n in range(length):
        for i in range(half):
            angle = n * 10000 ** -(i / (half - 1))
            assert encoding[n, i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert encoding[n, half + i].item() == pytest.approx(math.cos(angle), abs=1e-6)
    assert encoding[:, half - 1].tolist() == pytest.approx([math.sin(n * 1e-4) for n in range(length)], abs=1e-7)
    with pytest.raises(ValueError, match="even dimension >= 4"):
        sincos_position_encoding(3, 2)


# ---------------------------------------------------------------- reading the snapshot


def test_read_snapshot_fields(snapshot):
    assert snapshot.version == 10 and snapshot.T == 5 and snapshot.num_samples == 123456
    assert snapshot.transformer_params == authors.TransformerParams(16, 2, 2, 24, 5)
    assert snapshot.backbone_class == "grw_smoothing_models.backbones.movinets.a0s.a0s_backbone.MovinetBackbone"
    assert (snapshot.backbone, snapshot.model) == ("a0s", "movinet_a0_stream")
    assert snapshot.ema_n_averaged == 2
    assert set(snapshot.ema_state) == set(snapshot.model_state)
    assert not any(key.startswith("module.") or key == "n_averaged" for key in snapshot.ema_state)
    assert snapshot.head_options() == dict(in_features=480, num_classes=5, embed_dim=16, depth=2, num_heads=2,
                                           mlp_dim=24, window=5)
    differ = [k for k, v in snapshot.model_state.items()
              if v.is_floating_point() and not torch.equal(v, snapshot.ema_state[k])]
    assert len(differ) > 100


def test_every_key_is_mapped_and_the_head_keys_are_exactly_ours(snapshot):
    head_state, backbone_state = authors.split_state(snapshot.model_state)
    head = grw.TemporalHead(**snapshot.head_options())
    assert set(head_state) == {f"head.{key}" for key in head.state_dict()}
    assert len(head_state) + len(backbone_state) == len(snapshot.model_state)
    assert all(key.split(".")[0] in {"conv1", "blocks", "conv7"} for key in backbone_state)  # MoViNet-pytorch names
    with pytest.raises(KeyError, match="unexpected key"):
        authors.split_state({"something.else": torch.zeros(1)})


class FeatureBackbone(nn.Module):
    """Stand-in backbone whose per-frame embeddings are given features (to test the import's head path)."""

    num_features = 480

    def __init__(self, feats: torch.Tensor) -> None:
        super().__init__()
        self.feats = feats

    def frame_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        return self.feats


@pytest.mark.parametrize("variant", ["raw", "ema"])
def test_import_into_a_grw_model_matches_to_1e4(outputs, variant):
    snapshot = authors.read_snapshot(SNAPSHOT)
    seen = {}

    def convert_backbone(state, model):  # stands in for baselines.from_movinet_pytorch
        seen.update(model=model, keys=set(state))
        return {}

    state = authors.to_grw_state_dict(snapshot.state(variant), snapshot.model, convert_backbone=convert_backbone)
    options = snapshot.head_options()
    model = grw.GrwModel(FeatureBackbone(outputs[f"{variant}_feats"]), grw.TemporalHead(**options)).eval()
    model.load_state_dict(state, strict=True)
    clip = outputs["clip"].transpose(1, 2)  # theirs [B, N, 3, H, W] -> ours [B, 3, N, H, W]
    with torch.no_grad():
        logits, aux = model(clip)
    torch.testing.assert_close(logits, outputs[f"{variant}_logits"], atol=1e-4, rtol=0)
    assert aux == {}
    assert seen["model"] == "movinet_a0_stream"
    assert seen["keys"] == {k.removeprefix(authors.BACKBONE_PREFIX) for k in snapshot.model_state
                            if k.startswith(authors.BACKBONE_PREFIX) and ".classifier." not in k}


def our_spec(config: dict) -> MovinetSpec:
    """The zoo's MovinetSpec of a MoViNet-pytorch config (the fixture's reduced A0-S)."""
    return MovinetSpec.from_dict({
        "stem": {"filters": config["conv1"]["out_channels"], "kernel": config["conv1"]["kernel_size"],
                 "stride": config["conv1"]["stride"]},
        "blocks": [{"base_filters": block[0]["out_channels"],
                    "layers": [{"expand_filters": layer["expanded_channels"], "kernel": layer["kernel_size"],
                                "stride": layer["stride"]} for layer in block]} for block in config["blocks"]],
        "head": {"project_filters": config["conv7"]["out_channels"], "hidden_filters": config["dense9"]["hidden_dim"]},
        "stream_positional_encoding": False,
    })


@pytest.mark.parametrize("variant", ["raw", "ema"])
def test_the_whole_authors_model_imports_into_the_zoo_backbone_and_head(outputs, variant):
    """Their snapshot (tiny (2+1)D stream A0-S + head) through baselines.from_movinet_pytorch and the head
    mapping: our GrwModel gives their logits, whole and frame by frame."""
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    assert manifest["backbone_config"]["conv_type"] == "2plus1d" and manifest["backbone_config"]["causal"]
    backbone = MoViNet(our_spec(manifest["backbone_config"]["movinet_pytorch_config"]), stream=True, num_classes=0)
    snapshot = authors.read_snapshot(SNAPSHOT)
    model = grw.GrwModel(backbone, grw.TemporalHead(**snapshot.head_options())).eval()
    model.load_state_dict(authors.to_grw_state_dict(snapshot.state(variant), backbone), strict=True)
    clip = outputs["clip"].transpose(1, 2)  # theirs [B, N, 3, H, W] -> ours [B, 3, N, H, W]
    with torch.no_grad():
        torch.testing.assert_close(backbone.frame_embeddings(clip), outputs[f"{variant}_feats"], atol=1e-4, rtol=0)
        logits, _ = model(clip)
        state = None
        for t in range(clip.shape[2]):
            streamed, state = model.forward_stream(clip[:, :, t:t + 1], state)
    torch.testing.assert_close(logits, outputs[f"{variant}_logits"], atol=1e-4, rtol=0)
    torch.testing.assert_close(streamed, outputs[f"{variant}_logits"], atol=1e-4, rtol=0)


# ---------------------------------------------------------------- refusing code


class RunsCode:
    """Unpickling this calls ``call(*args)``: what a malicious snapshot would carry."""

    def __init__(self, call, *args) -> None:
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


@pytest.fixture
def their_classes(monkeypatch) -> types.SimpleNamespace:
    """Classes under the authors' module names (registered in ``sys.modules``), so that pickle writes
    the same globals as their snapshots: ``TransformerParams`` and ``MovinetBackbone``."""

    def register(module_name: str, class_name: str) -> type:
        parts = module_name.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name not in sys.modules:
                monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
        cls = type(class_name, (), {"__module__": module_name})
        setattr(sys.modules[module_name], class_name, cls)
        return cls

    return types.SimpleNamespace(
        TransformerParams=register("grw_smoothing_models.model.attention", "TransformerParams"),
        MovinetBackbone=register("grw_smoothing_models.backbones.movinets.a0s.a0s_backbone", "MovinetBackbone"),
    )


def snapshot_with(tmp_path: Path, their_classes, **changes) -> Path:
    """A snapshot in the authors' format (their globals, version 10) with ``changes`` applied."""
    snapshot = authors.read_snapshot(SNAPSHOT)
    params = their_classes.TransformerParams()
    params.__dict__.update(dataclasses.asdict(snapshot.transformer_params))
    content = {
        "model_state": snapshot.model_state,
        "ema_weights": None,
        "num_samples": snapshot.num_samples,
        "transformer_params": params,
        "backbone": their_classes.MovinetBackbone,
        "T": snapshot.T,
        "version": 10,
        **changes,
    }
    path = tmp_path / "crafted.pt"
    torch.save(content, path)
    return path


def test_a_crafted_snapshot_with_their_globals_reads(tmp_path, their_classes):
    snapshot = authors.read_snapshot(snapshot_with(tmp_path, their_classes))
    assert snapshot.transformer_params == authors.TransformerParams(16, 2, 2, 24, 5)
    assert snapshot.backbone == "a0s" and snapshot.ema_state is None


@pytest.mark.parametrize("where", ["extra_key", "transformer_params", "inside_state_dict"])
def test_a_global_that_would_run_code_is_refused_and_nothing_runs(tmp_path, their_classes, where):
    marker = tmp_path / "marker"
    evil = RunsCode(os.system, f"touch {marker}")
    if where == "extra_key":
        path = snapshot_with(tmp_path, their_classes, evil=evil)
    elif where == "transformer_params":
        path = snapshot_with(tmp_path, their_classes, transformer_params=evil)
    else:
        path = snapshot_with(tmp_path, their_classes, model_state={"ln.weight": evil})
    with pytest.raises(authors.UnsafeSnapshotError, match=rf"refused global {os.system.__module__}\.system"):
        authors.read_snapshot(path)
    assert not marker.exists()


def test_builtins_exec_is_refused(tmp_path, their_classes):
    marker = tmp_path / "marker"
    path = snapshot_with(tmp_path, their_classes, evil=RunsCode(exec, f"open({str(marker)!r}, 'w').close()"))
    with pytest.raises(authors.UnsafeSnapshotError, match=r"refused global builtins\.exec"):
        authors.read_snapshot(path)
    assert not marker.exists()


def test_calling_the_backbone_class_reference_is_refused(tmp_path, their_classes):
    # A snapshot that *calls* their backbone class (instantiates it) must not get past the stand-in.
    path = snapshot_with(tmp_path, their_classes, backbone=RunsCode(their_classes.MovinetBackbone, 16))
    with pytest.raises(authors.UnsafeSnapshotError, match=r"refused call of .*a0s_backbone\.MovinetBackbone"):
        authors.read_snapshot(path)


def test_not_a_snapshot_and_bad_params_are_refused(tmp_path):
    torch.save({"model_state": {}}, tmp_path / "partial.pt")
    with pytest.raises(authors.UnsafeSnapshotError, match="expected keys"):
        authors.read_snapshot(tmp_path / "partial.pt")
    with pytest.raises(authors.UnsafeSnapshotError, match="positive integers"):
        authors.TransformerParams(16, 2, 2, 24, 0)
    params = authors.TransformerParams.__new__(authors.TransformerParams)
    with pytest.raises(authors.UnsafeSnapshotError, match="fields"):
        params.__setstate__({"embed_dim": 16, "__class__": "x"})


def test_plain_pickle_round_trip_of_the_stand_in():
    params = authors.TransformerParams(16, 2, 2, 24, 5)
    assert pickle.loads(pickle.dumps(params)) == params


# ---------------------------------------------------------------- GRW on Z, before the LayerNorm


def test_grw_loss_is_on_the_projection_before_the_layernorm():
    torch.manual_seed(0)
    head = grw.TemporalHead(6, 3, embed_dim=8, depth=1, num_heads=2, mlp_dim=16, window=5)
    with torch.no_grad():  # Z = the features themselves (padded), a LayerNorm that would change them a lot
        head.proj.weight.copy_(torch.eye(8, 6))
        head.proj.bias.zero_()
        head.norm.weight.fill_(7.0)
        head.norm.bias.fill_(-3.0)
    feats = torch.randn(2, 10, 6) * 5 + 2
    _, grw_loss = head(feats, compute_grw=True)
    z = torch.cat([feats, torch.zeros(2, 10, 2)], dim=2)
    expected = grw.GrwSmoothingLoss(5)(grw.windows(z, 5))
    assert grw_loss.item() == pytest.approx(expected.item(), rel=1e-6)
    after_norm = grw.GrwSmoothingLoss(5)(grw.windows(head.norm(z), 5))
    assert abs(after_norm.item() - expected.item()) > 1.0
    grw_loss.backward()  # the LayerNorm and everything after it are off the GRW path
    assert head.proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None for name, p in head.named_parameters() if not name.startswith("proj."))


# ---------------------------------------------------------------- parameters: backbone without classifier + head


class TimmStyleBackbone(nn.Module):
    """A stand-in zoo model with the timm-style head contract (``reset_classifier(0)`` removes the classifier)."""

    num_features = 12

    def __init__(self, num_classes: int = 600) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, self.num_features, 3, padding=1)
        self.classifier = nn.Sequential(nn.Linear(self.num_features, 64), nn.Hardswish(), nn.Linear(64, num_classes))

    def frame_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(3, 4)).transpose(1, 2)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=1)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.frame_embeddings(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.classifier = nn.Identity() if num_classes == 0 else nn.Linear(self.num_features, num_classes)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_grw_model_parameters_are_backbone_without_classifier_plus_head():
    backbone = TimmStyleBackbone()
    without_classifier = count(backbone) - count(backbone.classifier)
    head = grw.TemporalHead(backbone.num_features, 600, embed_dim=16, depth=2, num_heads=2, mlp_dim=24)
    model = grw.GrwModel(backbone, head)
    assert count(model) == without_classifier + count(head)
    assert isinstance(model.backbone.classifier, nn.Identity)
    logits, aux = model(torch.randn(2, 3, 10, 8, 8))
    assert logits.shape == (2, 600) and set(aux) == {"grw"}


def test_grw_row_parameters():
    spec = get_spec(1)
    backbone = baselines.build(spec.model, num_classes=600)
    model = build_model(spec)
    head_params = count(model.head)
    settings = spec.grw
    expected_head = grw.TemporalHead(backbone.num_features, 600, embed_dim=settings.embed_dim, depth=settings.depth,
                                     num_heads=settings.num_heads, mlp_dim=settings.mlp_dim)
    assert head_params == count(expected_head)
    if hasattr(backbone, "reset_classifier"):
        backbone.reset_classifier(0)
    assert count(model) == count(backbone) + head_params


def test_every_grw_setting_has_a_source():
    assert set(GRW_SETTING_SOURCES) == {field.name for field in dataclasses.fields(GrwSettings)}
    assert all(source for source in GRW_SETTING_SOURCES.values())


# ---------------------------------------------------------------- streaming


def test_stream_grw_row_gives_the_same_logits_whole_and_chunk_by_chunk():
    torch.manual_seed(0)
    spec = get_spec(1)
    model = build_model(spec, num_classes=7).eval()
    with torch.no_grad():  # random (non-zero) norms and gates, so every layer matters
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and ("running_var" in name or tensor.dim() == 1):
                tensor.uniform_(0.5, 1.5)
    video = torch.rand(1, 3, 10, 32, 32)
    with torch.no_grad():
        whole, _ = model(video)
        state = None
        for start in range(0, 10, 4):  # chunks of 4, 4, 2 frames
            logits, state = model.forward_stream(video[:, :, start : start + 4], state)
    torch.testing.assert_close(logits, whole, atol=1e-5, rtol=1e-5)
