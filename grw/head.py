"""Final-layer GRW-smoothing: the authors' temporal head over per-frame embeddings.

The head is the network that follows the backbone in the authors' ``ActionRecognitionModel``
(repo ``gilgoldm/grw-smoothing``, package ``packages/grw-smoothing-models/src/grw_smoothing_models/``;
file names below are relative to it)::

    feats [B, N, C] --proj (affine)--> Z [B, N, D] --LayerNorm--> + position encoding
        --> depth x pre-norm block --> LayerNorm --> mean over time --> dropout --> linear --> logits
                                    |
                                    +--> GRW loss on windows of T frames of Z (before the LayerNorm)

Where each detail comes from:

- The projection ``proj`` is ``Linear(C, D)`` on conv7's output averaged over space, frame by frame:
  ``backbones/movinets/{a0s,a1s,a2s,a3b}/*_backbone.py`` (there it is the backbone's ``classifier``
  attribute, ``Linear(480 | 600 | 640 | 744, embed_dim)``).
- GRW on ``Z``, the projection's output, before the LayerNorm: ``model/action_recognition_model.py``
  (``forward`` normalises a copy with ``self.ln`` for the transformer and returns the unnormalised
  ``Z`` reshaped into ``[B, N // T, T, D]`` windows for the loss).
- The LayerNorm ``norm`` (``self.ln``), then ``SimpleViT``: ``model/attention.py``.
- Position encoding (``posemb_sincos_1d`` in ``model/attention.py``), added to the normalised ``Z``:
  position ``n`` and channel ``i < D/2`` get ``sin(n * w_i)`` in channel ``i`` and ``cos(n * w_i)``
  in channel ``D/2 + i``, with ``w_i = 10000 ** -(i / (D/2 - 1))`` (so the last frequency is
  exactly 1/10000). Not the interleaved ``10000 ** -(2i/D)`` of the original transformer.
- Each block (``Transformer`` in ``model/attention.py``) is pre-norm:
  ``x = x + sd(attn(LN(x)))`` then ``x = x + sd(FF(x))``, where the feed-forward carries its own
  LayerNorm: ``FF = LN -> Linear(D, mlp_dim) -> GELU (exact, erf) -> Linear(mlp_dim, D)``. The
  attention is ``nn.MultiheadAttention(D, num_heads, batch_first=True)`` with its defaults: biases on
  the q/k/v and output projections, scale ``1/sqrt(D / num_heads)``, no attention dropout, no mask.
  There is no dropout anywhere in the blocks.
- ``sd`` is stochastic depth, ``torchvision.ops.stochastic_depth(p, mode="row")`` (a whole sample's
  branch dropped, the rest scaled by ``1/(1-p)``), the same ``p`` for every branch of every block.
- After the blocks: a final LayerNorm (``Transformer.norm``), the mean over time, dropout
  (``nn.functional.dropout``), and ``Linear(D, num_classes)`` (``SimpleViT.linear_head``).
- Hyper-parameters: ``embed_dim``, ``depth``, ``num_heads``, ``mlp_dim`` and ``num_classes`` are the
  fields of the authors' ``TransformerParams`` (pickled in every snapshot); ``dropout`` and
  ``stochastic_depth`` are arguments of ``ActionRecognitionModel`` (both 0 by default, and 0 in their
  evaluation scripts ``backbones/movinets/*/a*_test.py``).

The attention is written out (one ``qkv`` linear, scaled dot product, softmax, ``out`` linear) rather
than calling ``nn.MultiheadAttention``: the parameters are the same tensors (``qkv`` holds
``in_proj_weight``/``in_proj_bias``, ``out`` is ``out_proj``), the FLOP counter sees every matmul, and
the numbers do not depend on which of PyTorch's attention kernels runs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.ops import StochasticDepth

from grw.loss import GrwSmoothingLoss, windows


def sincos_position_encoding(
    length: int, dim: int, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> Tensor:
    """The authors' 1-D sine-cosine position encoding ``[length, dim]``: sines first, then cosines.

    Frequencies ``w_i = 10000 ** -(i / (dim/2 - 1))`` for ``i < dim/2``; computed in float32 and cast
    to ``dtype`` at the end, in the same order of operations as the authors' ``posemb_sincos_1d``.
    """
    if dim % 2 or dim < 4:
        raise ValueError(f"the sine-cosine position encoding needs an even dimension >= 4, got {dim}")
    half = dim // 2
    exponent = torch.arange(half, device=device) / (half - 1)
    frequency = 1.0 / (10000**exponent)
    angle = torch.arange(length, device=device)[:, None] * frequency[None, :]
    return torch.cat((angle.sin(), angle.cos()), dim=1).to(dtype or torch.get_default_dtype())


class SelfAttention(nn.Module):
    """Multi-head self-attention with biased q/k/v and output projections, no mask, no dropout."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        weights = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)  # [B, heads, N, N]
        return self.out((weights @ v).transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block: attention and feed-forward residual branches, each with stochastic depth."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, stochastic_depth: float = 0.0) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, num_heads)
        self.mlp_norm = nn.LayerNorm(dim)  # the authors' FeedForward starts with its own LayerNorm
        self.fc1 = nn.Linear(dim, mlp_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(mlp_dim, dim)
        self.drop_path = StochasticDepth(stochastic_depth, mode="row")

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.attn_norm(x)))
        return x + self.drop_path(self.fc2(self.act(self.fc1(self.mlp_norm(x)))))


class TemporalHead(nn.Module):
    """The authors' head over per-frame embeddings ``[B, N, in_features]``, with final-layer GRW-smoothing.

    ``forward(feats)`` returns ``(logits, grw_loss)``. The GRW loss is computed on the projection's
    output ``Z`` (before the LayerNorm), cut into non-overlapping windows of ``window`` frames (a
    remainder shorter than a window is left out), in training mode or when ``compute_grw=True``;
    otherwise, and always when ``grw=False``, it is ``None``. See the module docstring for the
    architecture and where each detail comes from.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        embed_dim: int = 256,
        depth: int = 1,
        num_heads: int = 4,
        mlp_dim: int = 512,
        window: int = 5,
        alpha: float = 0.5,
        dropout: float = 0.0,
        stochastic_depth: float = 0.0,
        grw: bool = True,
        max_perms: int = 1000,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        if embed_dim % num_heads or embed_dim % 2 or embed_dim < 4:
            raise ValueError(f"embed_dim must be even, >= 4 and divisible by num_heads={num_heads}, got {embed_dim}")
        if not 0.0 <= dropout < 1.0 or not 0.0 <= stochastic_depth < 1.0:
            raise ValueError(f"dropout and stochastic_depth must be in [0, 1), got {dropout}, {stochastic_depth}")
        self.window = window
        self.proj = nn.Linear(in_features, embed_dim)
        self.norm = nn.LayerNorm(embed_dim)
        self.grw_loss = GrwSmoothingLoss(window, alpha, max_perms) if grw else None
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_dim, stochastic_depth) for _ in range(depth))
        self.final_norm = nn.LayerNorm(embed_dim)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(embed_dim, num_classes)

    def embed(self, feats: Tensor) -> Tensor:
        """``Z [B, N, embed_dim]``: the affine projection of the per-frame features, what the GRW loss sees."""
        if feats.dim() != 3:
            raise ValueError(f"expected per-frame embeddings [B, N, C], got shape {tuple(feats.shape)}")
        return self.proj(feats)

    def classify(self, z: Tensor) -> Tensor:
        """Logits from ``Z``: LayerNorm, position encoding, blocks, final norm, mean over time, dropout, linear."""
        x = self.norm(z)
        x = x + sincos_position_encoding(x.shape[1], x.shape[2], x.device, x.dtype)
        for block in self.blocks:
            x = block(x)
        return self.fc(self.dropout(self.final_norm(x).mean(dim=1)))

    def forward(self, feats: Tensor, compute_grw: bool | None = None) -> tuple[Tensor, Tensor | None]:
        z = self.embed(feats)
        compute_grw = self.training if compute_grw is None else compute_grw
        grw_loss = None
        if self.grw_loss is not None and compute_grw:
            grw_loss = self.grw_loss(windows(z, self.window))
        return self.classify(z), grw_loss
