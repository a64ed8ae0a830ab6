"""GRW-smoothing: the loss and how it attaches to video models."""

from grw.loss import GrwSmoothingLoss, windows

__all__ = ["GrwSmoothingLoss", "windows"]
