"""The suite's inference path: BatchNorm folded into convolutions computes what the model computes."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

import baselines
from benchmarks.table1 import deploy
from benchmarks.table1.specs import get_spec


def with_trained_statistics(model: torch.nn.Module) -> torch.nn.Module:
    """Random BatchNorm statistics and affine parameters, as a trained model has (not 0/1)."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            n = module.num_features
            module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(n, generator=generator) - 0.5)
    return model.eval()


@pytest.mark.parametrize("row", [1, 2, 4, 5])  # MoViNet stream + GRW head, MoViNet base, MobileNetV3 + TSM, X3D
def test_folding_removes_every_batchnorm_after_a_convolution_and_keeps_the_output(row):
    spec = dataclasses.replace(get_spec(row), frames=4, res=32)
    from benchmarks.table1.specs import build_model

    torch.manual_seed(0)
    model = with_trained_statistics(build_model(spec, num_classes=5))
    fast = deploy.folded(model, lambda m: deploy.reference_output(m, spec, "cpu"))
    assert not any(isinstance(m, _BatchNorm) for m in fast.modules())
    assert any(isinstance(m, _BatchNorm) for m in model.modules())  # the original is left as it was
    with torch.inference_mode():
        expected, got = deploy.reference_output(model, spec, "cpu"), deploy.reference_output(fast, spec, "cpu")
    assert (expected - got).abs().max() < 1e-4


def test_a_fold_that_changes_the_output_is_refused(monkeypatch):
    model = with_trained_statistics(baselines.build("x3d_xs", num_classes=3))
    spec = dataclasses.replace(get_spec(5), frames=4, res=32)
    original = deploy.fold_into

    def wrong(conv, bn):
        original(conv, bn)
        conv.bias.data += 1.0

    monkeypatch.setattr(deploy, "fold_into", wrong)
    with pytest.raises(deploy.FoldError, match="changes the output"):
        deploy.folded(model, lambda m: deploy.reference_output(m, spec, "cpu"))


def test_fold_into_matches_batchnorm_after_a_grouped_convolution():
    conv = torch.nn.Conv3d(4, 4, 3, groups=4, bias=False)
    bn = with_trained_statistics(torch.nn.Sequential(torch.nn.BatchNorm3d(4)))[0]
    x = torch.randn(2, 4, 5, 6, 6)
    expected = bn(conv(x))
    fused = copy.deepcopy(conv)
    deploy.fold_into(fused, bn)
    assert torch.allclose(fused(x), expected, atol=1e-5)
