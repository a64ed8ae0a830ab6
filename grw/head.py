"""Final-layer GRW-smoothing: a light temporal head over per-frame embeddings.

per-frame embeddings [B, N, C] -> linear projection -> normalisation -> (GRW loss on windows)
-> sine positional encoding -> pre-norm transformer layers -> mean over time -> classifier.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from grw.loss import GrwSmoothingLoss, windows

NORMS = ("layernorm", "batchnorm")


def sine_positional_encoding(
    length: int, dim: int, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> Tensor:
    """The transformer's fixed sine/cosine encoding ``[length, dim]`` (sin on even, cos on odd channels)."""
    if dim % 2:
        raise ValueError(f"sine positional encoding needs an even dimension, got {dim}")
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, device=device) * (-math.log(10000.0) / dim))
    encoding = torch.zeros(length, dim, device=device)
    encoding[:, 0::2] = torch.sin(position * frequency)
    encoding[:, 1::2] = torch.cos(position * frequency)
    return encoding.to(dtype or torch.get_default_dtype())


class ChannelBatchNorm(nn.BatchNorm1d):
    """Affine-free BatchNorm over the channels of a sequence ``[B, N, C]``."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, affine=False)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class TemporalHead(nn.Module):
    """Classifier over per-frame embeddings ``[B, N, in_features]`` with final-layer GRW-smoothing.

    ``forward(feats)`` returns ``(logits, grw_loss)``. The GRW loss (on non-overlapping windows of
    ``window`` frames of the normalised sequence) is computed in training mode, or when
    ``compute_grw=True``; otherwise, and always when ``grw=False``, it is ``None``.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        embed_dim: int = 256,
        depth: int = 1,
        num_heads: int = 4,
        norm: str = "layernorm",
        window: int = 5,
        alpha: float = 0.5,
        dropout: float = 0.0,
        grw: bool = True,
        mlp_ratio: float = 2.0,
        max_perms: int = 1000,
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        if embed_dim % num_heads or embed_dim % 2:
            raise ValueError(f"embed_dim must be even and divisible by num_heads={num_heads}, got {embed_dim}")
        self.window = window
        self.proj = nn.Linear(in_features, embed_dim)
        self.norm = nn.LayerNorm(embed_dim) if norm == "layernorm" else ChannelBatchNorm(embed_dim)
        self.grw_loss = GrwSmoothingLoss(window, alpha, max_perms) if grw else None
        layer = nn.TransformerEncoderLayer(
            embed_dim,
            num_heads,
            dim_feedforward=int(embed_dim * mlp_ratio),
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, depth, norm=nn.LayerNorm(embed_dim), enable_nested_tensor=False
        )
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(embed_dim, num_classes)

    def forward(self, feats: Tensor, compute_grw: bool | None = None) -> tuple[Tensor, Tensor | None]:
        if feats.dim() != 3:
            raise ValueError(f"expected per-frame embeddings [B, N, C], got shape {tuple(feats.shape)}")
        x = self.norm(self.proj(feats))
        compute_grw = self.training if compute_grw is None else compute_grw
        grw_loss = None
        if self.grw_loss is not None and compute_grw:
            grw_loss = self.grw_loss(windows(x, self.window))

        x = x + sine_positional_encoding(x.shape[1], x.shape[2], x.device, x.dtype)
        x = self.encoder(x).mean(dim=1)
        return self.fc(self.dropout(x)), grw_loss
