"""MViT-B (Fan et al., "Multiscale Vision Transformers", ICCV 2021), 16x4 and 32x3, on torchvision's MViT.

MViT-B is 16 transformer blocks over space-time patch tokens, in four scale stages:

* patch embedding: a 3x7x7 conv, stride 2x4x4, padding 1x3x3, to 96 channels, so a T x H x W clip
  becomes T/2 x H/4 x W/4 tokens; a class token and separate learned space and time position
  embeddings are added;
* blocks 1, 3 and 14 start a stage: the query is pooled 1x2x2 (a depthwise 3x3x3 conv) and the number
  of heads doubles (1 -> 2 -> 4 -> 8), and the block before doubles the width in its MLP
  (96 -> 192 -> 384 -> 768 channels);
  keys and values are pooled 3x3x3 with a stride that starts at 1x8x8 and halves spatially with each
  stage, down to 1x1x1;
* a final LayerNorm; the class token goes through dropout and the linear classifier.

The two variants are the same network; they differ in the clip: 16 frames taken every 4th (16x4) or
32 frames taken every 3rd (32x3), both 224 x 224. Only the time position embedding depends on the
frame count (8 or 16 positions), so 32x3 has 8 x 96 more parameters. PySlowFast's
``configs/Kinetics/MVIT_B_32x3_CONV.yaml`` is a different, deeper network (``DEPTH: 24``, stages at
blocks 2, 5, 21; apparently the paper's MViT-B-24) and is not what this module builds: at 32 x 224 x 224
the 16-block network counts the paper's 170 GFLOPs.

The layers are torchvision's ``MViT`` (``torchvision.models.video.mvit_v1_b`` is MViT-B 16x4), built
from :class:`MViTSpec` and subclassed for the suite's contract, so the parameter names are
torchvision's and its Kinetics-400 ``mvit_v1_b`` weights load into ``mvit_b_16x4`` as they are.

Contract deviations (a transformer with a class token and a fixed-size position embedding):

* the input size is fixed when the model is built: ``[B, 3, frames, 224, 224]`` (the ``spatial_size``
  option changes the 224); other sizes are a ValueError;
* ``forward_features(x)`` returns the token sequence after the final norm, ``[B, 1 + T'H'W', 768]``
  with the class token first (timm's ViT convention), not a video feature map, because the
  classifier reads the class token; :meth:`MViTB.feature_map` reshapes the patch tokens to the video
  layout ``[B, 768, T', H', W']`` (T' = T/2, H' = H/32, W' = W/32);
* ``frame_embeddings(x)`` is that feature map averaged over space, ``[B, T/2, 768]``: one embedding per
  *pair* of input frames (the patch embedding's temporal stride 2), not per frame;
* ``forward_head(tokens, pre_logits=True)`` is the class token ``[B, 768]``; ``reset_classifier(0)``
  removes ``head`` (dropout and linear layer);
* the blocks return ``(tokens, thw)`` tuples, so they are no GRW intermediate tap points.

Input: RGB in [0, 1] normalised with mean 0.45 and std 0.225 per channel (PySlowFast's and
torchvision's ``mvit_v1_b`` preprocessing).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn
from torchvision.models.video.mvit import MSBlockConfig
from torchvision.models.video.mvit import MViT as TorchvisionMViT

__all__ = ["MViTB", "MViTSpec", "MVIT_SPECS", "block_settings", "mvit_b"]

Triple = tuple[int, int, int]


@dataclass(frozen=True)
class MViTSpec:
    """MViT-B in the terms of the paper's architecture table and PySlowFast's ``MVIT`` config keys."""

    frames: int  # clip length T (the time position embedding has T / patch_stride[0] entries)
    sampling_stride: int  # frames taken every this many video frames (the "x4" of 16x4); not used by the network
    depth: int = 16
    embed_dim: int = 96
    num_heads: int = 1
    stage_starts: tuple[int, ...] = (1, 3, 14)  # blocks that pool the query 1x2x2 and double width and heads
    pool_kernel: Triple = (3, 3, 3)  # query and key/value pooling kernels
    kv_stride: Triple = (1, 8, 8)  # key/value pooling stride of block 0, halved spatially at each stage start
    patch_kernel: Triple = (3, 7, 7)
    patch_stride: Triple = (2, 4, 4)
    patch_padding: Triple = (1, 3, 3)


MVIT_SPECS: dict[str, MViTSpec] = {
    "b_16x4": MViTSpec(frames=16, sampling_stride=4),
    "b_32x3": MViTSpec(frames=32, sampling_stride=3),
}


def block_settings(spec: MViTSpec) -> list[MSBlockConfig]:
    """torchvision's per-block configuration of ``spec`` (for MViT-B 16x4 the table in ``mvit_v1_b``).

    At a stage start the block pools its query and has the doubled number of heads; the block before
    it doubles the width in its MLP (torchvision's ``output_channels``), as in PySlowFast.
    """
    blocks = []
    width, heads, kv_stride = spec.embed_dim, spec.num_heads, spec.kv_stride
    for index in range(spec.depth):
        starts_stage = index in spec.stage_starts
        if starts_stage:
            heads *= 2
            kv_stride = (kv_stride[0], max(kv_stride[1] // 2, 1), max(kv_stride[2] // 2, 1))
        out_width = 2 * width if index + 1 in spec.stage_starts else width
        blocks.append(
            MSBlockConfig(
                num_heads=heads,
                input_channels=width,
                output_channels=out_width,
                kernel_q=list(spec.pool_kernel) if starts_stage else [],
                kernel_kv=list(spec.pool_kernel),
                stride_q=[1, 2, 2] if starts_stage else [],
                stride_kv=list(kv_stride),
            )
        )
        width = out_width
    return blocks


class MViTB(TorchvisionMViT):
    """torchvision's MViT configured from ``spec``, with the suite's model contract (module docstring)."""

    input_mean = (0.45, 0.45, 0.45)
    input_std = (0.225, 0.225, 0.225)

    def __init__(
        self,
        spec: MViTSpec,
        num_classes: int = 600,
        dropout: float = 0.5,
        stochastic_depth: float = 0.2,
        spatial_size: int = 224,
    ) -> None:
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        if not 0.0 <= dropout < 1.0 or not 0.0 <= stochastic_depth < 1.0:
            raise ValueError(f"dropout and stochastic_depth must be in [0, 1), got {dropout}, {stochastic_depth}")
        # The position embedding is sized by division; these keep it equal to the conv's token grid.
        patch_t, patch_s = spec.patch_stride[0], spec.patch_stride[1] * 2 ** len(spec.stage_starts)
        if spec.frames % patch_t or spatial_size % patch_s:
            raise ValueError(
                f"frames must be a multiple of {patch_t} and spatial_size a multiple of {patch_s}, "
                f"got {spec.frames} and {spatial_size}"
            )
        super().__init__(
            spatial_size=(spatial_size, spatial_size),
            temporal_size=spec.frames,
            block_setting=block_settings(spec),
            residual_pool=False,  # the MViTv2 options off: this is MViT (v1), as in mvit_v1_b
            residual_with_cls_embed=False,
            rel_pos_embed=False,
            proj_after_attn=False,
            dropout=dropout,
            stochastic_depth_prob=stochastic_depth,
            num_classes=max(num_classes, 1),
            patch_embed_kernel=spec.patch_kernel,
            patch_embed_stride=spec.patch_stride,
            patch_embed_padding=spec.patch_padding,
        )
        self.spec = spec
        self.input_size: Triple = (spec.frames, spatial_size, spatial_size)
        self.num_features = self.norm.normalized_shape[0]
        self._dropout = dropout
        self.num_classes = num_classes
        if num_classes == 0:
            self.reset_classifier(0)

    # ---------------------------------------------------------------------------- head contract

    def reset_classifier(self, num_classes: int) -> None:
        """A new, randomly initialised classifier (dropout + linear, torchvision's init) with
        ``num_classes`` outputs; ``0`` removes it, parameters included (``forward`` then returns the
        class token)."""
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        reference = self.conv_proj.weight
        if num_classes == 0:
            self.head = nn.Identity()
        else:
            linear = nn.Linear(self.num_features, num_classes, device=reference.device, dtype=reference.dtype)
            nn.init.trunc_normal_(linear.weight, std=0.02)
            nn.init.zeros_(linear.bias)
            self.head = nn.Sequential(nn.Dropout(self._dropout, inplace=True), linear)
        self.num_classes = num_classes

    def forward_features(self, x: Tensor) -> Tensor:
        """Tokens after the final LayerNorm, ``[B, 1 + T'H'W', num_features]``, class token first."""
        if x.dim() != 5 or tuple(x.shape[1:]) != (3, *self.input_size):
            raise ValueError(
                f"expected video [B, 3, {', '.join(map(str, self.input_size))}] (the size this MViT's "
                f"position embedding was built for), got shape {tuple(x.shape)}"
            )
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = self.pos_encoding(x)
        thw = (self.pos_encoding.temporal_size, *self.pos_encoding.spatial_size)
        for block in self.blocks:
            x, thw = block(x, thw)
        return self.norm(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Tokens ``[B, 1 + N, C]`` -> class token ``[B, C]`` -> classifier (unless ``pre_logits``)."""
        cls = x[:, 0]
        return cls if pre_logits else self.head(cls)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[B, num_classes]`` for normalised video ``x`` ``[B, 3, T, H, W]``."""
        return self.forward_head(self.forward_features(x))

    def feature_map(self, tokens: Tensor) -> Tensor:
        """The patch tokens of ``forward_features`` in the video layout ``[B, C, T', H', W']``."""
        t, h, w = self.output_grid
        return tokens[:, 1:].transpose(1, 2).reshape(tokens.shape[0], -1, t, h, w)

    @property
    def output_grid(self) -> Triple:
        """Token grid ``(T', H', W')`` after the last block: the patch grid, spatially halved at each
        stage start (``spatial_size`` is a multiple of 32, so every halving is exact)."""
        t, h, w = self.pos_encoding.temporal_size, *self.pos_encoding.spatial_size
        scale = 2 ** len(self.spec.stage_starts)
        return t, h // scale, w // scale

    def frame_embeddings(self, x: Tensor) -> Tensor:
        """Patch tokens after the final norm averaged over space: ``[B, T/2, num_features]``, one
        embedding per temporal token (pair of input frames)."""
        return self.feature_map(self.forward_features(x)).mean(dim=(3, 4)).transpose(1, 2)


def mvit_b(
    variant: str,
    num_classes: int = 600,
    dropout: float = 0.5,
    stochastic_depth: float = 0.2,
    spatial_size: int = 224,
) -> MViTB:
    """MViT-B ``variant`` ("b_16x4" or "b_32x3"), randomly initialised.

    ``dropout`` before the classifier (0.5) and ``stochastic_depth`` (0.2 at the last block, linear in
    depth) are PySlowFast's and torchvision's MViT-B 16x4 settings. ``spatial_size``: the input height
    and width the position embedding is built for (a multiple of 32).
    """
    if variant not in MVIT_SPECS:
        raise ValueError(f"unknown MViT variant {variant!r}; expected one of {', '.join(MVIT_SPECS)}")
    return MViTB(MVIT_SPECS[variant], num_classes, dropout, stochastic_depth, spatial_size)
