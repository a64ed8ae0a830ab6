import pytest
import torch
from torch import nn

from benchmarks.core.counting import count_gflops, count_params, peak_memory_mb


def test_convolution_and_linear_multiply_adds_are_counted_exactly():
    conv = nn.Conv3d(3, 8, kernel_size=3, padding=1, bias=False)
    expected = 8 * 4 * 16 * 16 * 3 * 27  # outputs x (in channels x kernel)
    assert count_gflops(conv, (1, 3, 4, 16, 16)) * 1e9 == pytest.approx(expected)
    assert count_gflops(nn.Linear(10, 20), (4, 10)) * 1e9 == pytest.approx(4 * 10 * 20)


@pytest.mark.parametrize("module, shape", [
    (nn.BatchNorm3d(8), (1, 8, 4, 16, 16)),
    (nn.BatchNorm2d(8), (2, 8, 16, 16)),
    (nn.LayerNorm(16), (2, 4, 16)),
    (nn.AdaptiveAvgPool2d(1), (2, 8, 16, 16)),
    (nn.AdaptiveAvgPool3d(1), (2, 8, 4, 16, 16)),
])
def test_normalisation_and_pooling_count_zero(module, shape):
    assert count_gflops(module, shape) == 0


def test_counting_restores_each_modules_mode_and_params_exclude_buffers():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).train()
    count_gflops(model, (1, 3, 8, 8))
    assert model.training
    wrapper = nn.Sequential(model.eval())  # a wrapper in training mode around a model in eval mode
    count_gflops(wrapper, (1, 3, 8, 8))
    assert wrapper.training and not model.training and not model[1].training
    assert count_params(model) == 3 * 4 + 4 + 4 + 4  # conv weight + bias, BN weight + bias


def test_cpu_peak_memory_grows_with_activations():
    model = nn.Conv3d(3, 16, 3, padding=1).eval()

    def inference(frames):
        def run():
            with torch.no_grad():
                model(torch.zeros(1, 3, frames, 32, 32))
        return run

    small, method = peak_memory_mb(model, inference(8), "cpu")
    large, _ = peak_memory_mb(model, inference(32), "cpu")
    output_mb = 16 * 32 * 32 * 32 * 4 / 2**20
    assert "profiler" in method
    assert large > small + 0.7 * (output_mb - output_mb / 4)
