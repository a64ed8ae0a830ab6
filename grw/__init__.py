"""GRW-smoothing: the loss and how it attaches to video models."""

from grw.head import TemporalHead
from grw.loss import GrwSmoothingLoss, windows
from grw.model import GrwModel
from grw.taps import IntermediateTaps

__all__ = ["GrwModel", "GrwSmoothingLoss", "IntermediateTaps", "TemporalHead", "windows"]
