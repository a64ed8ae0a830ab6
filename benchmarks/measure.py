"""Counting GFLOPs and parameters the way the published tables do.

Peak-memory measurement lives here too (added with the Table 1 harness).
"""

from __future__ import annotations

from typing import Sequence

import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

# fvcore op handles we switch off. The published convention counts multiply-adds of convolutions and
# linear layers (matmul/bmm/einsum included: attention is linear algebra); normalisation, pooling
# and resampling are not part of it.
_EXCLUDED_OPS = (
    "aten::batch_norm",
    "aten::layer_norm",
    "aten::group_norm",
    "aten::instance_norm",
    "aten::adaptive_avg_pool1d",
    "aten::adaptive_avg_pool2d",
    "aten::adaptive_avg_pool3d",
    "aten::upsample_nearest2d",
    "aten::upsample_bilinear2d",
)


def count_gflops(model: nn.Module, input_shape: Sequence[int]) -> float:
    """GFLOPs of one forward pass of ``model`` on a zero tensor of ``input_shape``, batch included.

    Convention (the one behind the published Table 1 numbers, applied identically to every model):
    one multiply-add of a convolution or a linear layer (including matmul/bmm/einsum) counts as one
    FLOP; BatchNorm, LayerNorm/GroupNorm, pooling, upsampling, activations and elementwise ops count
    zero. fvcore's default would add BatchNorm (2 per element), 2-6% on these models, so it is
    switched off here. The model is counted in eval mode; its training mode is restored afterwards.
    Multi-view rows are counted per clip by the caller and multiplied by the number of views.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            analysis = FlopCountAnalysis(model, torch.zeros(*input_shape))
            for op in _EXCLUDED_OPS:
                analysis.set_op_handle(op, None)
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            return analysis.total() / 1e9
    finally:
        model.train(was_training)


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers such as BatchNorm statistics excluded)."""
    return sum(p.numel() for p in model.parameters())
