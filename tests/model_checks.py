"""Checks every model family's tests share."""

import torch
from torch import nn


def assert_random_only_in_training(model: nn.Module, video: torch.Tensor) -> None:
    """Dropout and stochastic depth: the same output twice in eval mode, seed-dependent ones in training."""
    with torch.no_grad():
        assert torch.equal(model(video), model(video))
        model.train()
        torch.manual_seed(1)
        first = model(video)
        torch.manual_seed(2)
        assert not torch.allclose(first, model(video))
