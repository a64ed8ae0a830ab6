"""A video backbone with GRW-smoothing attached: a temporal head, intermediate taps, or both.

Backbone contract: ``backbone(x)`` maps ``[B, 3, T, H, W]`` to logits, ``backbone.frame_embeddings(x)``
returns ``[B, T, K]`` with ``K == backbone.num_features`` (for MoViNet: conv7's output averaged over
space, frame by frame). Streaming backbones also provide
``stream_frame_embeddings(chunk, state) -> (embeddings [B, t, K], state)`` and
``forward_stream(chunk, state) -> (logits, state)``. Backbones with the timm-style
``reset_classifier(0)`` lose their classifier when a head replaces it.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor, nn

from grw.head import TemporalHead
from grw.taps import IntermediateTaps


class GrwModel(nn.Module):
    """``forward(x) -> (logits, aux)``; train on ``cross_entropy(logits, y) + sum(aux.values())``.

    ``aux`` holds the GRW losses already multiplied by ``grw_weight``: ``"grw"`` from the head,
    ``"grw_taps"`` from the taps. It is empty in eval mode, and when GRW is off (no taps and a head
    without GRW, or ``grw_weight == 0``), in which case no GRW term is computed at all. Taps get
    ``taps.frames`` set to the clip length T of ``x``, which frame-wise 2D backbones fold into the batch.

    With a head, the backbone's own classifier is unused: it is removed with
    ``backbone.reset_classifier(0)`` when the backbone has that method, so the model's parameters
    (and the GFLOPs measured on it) are the backbone's without its classifier plus the head's.
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: TemporalHead | None = None,
        taps: IntermediateTaps | None = None,
        grw_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if head is not None and hasattr(backbone, "reset_classifier"):
            backbone.reset_classifier(0)
        self.backbone = backbone
        self.head = head
        self.taps = taps
        self.grw_weight = grw_weight

    def forward(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        if x.dim() != 5:
            raise ValueError(f"expected a clip batch [B, 3, T, H, W], got shape {tuple(x.shape)}")
        if self.taps is not None:
            self.taps.frames = x.shape[2]  # frame-wise backbones fold T into the batch
        aux: dict[str, Tensor] = {}
        pause_taps = self.taps is not None and self.grw_weight == 0
        with self.taps.paused() if pause_taps else contextlib.nullcontext():
            if self.head is None:
                logits = self.backbone(x)
            else:
                compute_grw = self.training and self.grw_weight != 0
                logits, grw_loss = self.head(self.backbone.frame_embeddings(x), compute_grw=compute_grw)
                if grw_loss is not None:
                    aux["grw"] = self.grw_weight * grw_loss
        if self.taps is not None:
            taps_loss = self.taps.loss()
            if taps_loss is not None:
                aux["grw_taps"] = self.grw_weight * taps_loss
        return logits, aux

    @torch.no_grad()
    def forward_stream(self, chunk: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """Classify the clip seen so far, one chunk ``[B, 3, t, H, W]`` of frames at a time.

        With a head, the state keeps the backbone's stream state and the per-frame embeddings seen
        so far (K floats per frame), and the head runs on all of them; without one, this is
        ``backbone.forward_stream``. Start with ``state=None``. Inference only (no gradients);
        call in eval mode.
        """
        if self.head is None:
            return self.backbone.forward_stream(chunk, state)
        state = state or {"backbone": None, "embeddings": None}
        embeddings, backbone_state = self.backbone.stream_frame_embeddings(chunk, state["backbone"])
        if state["embeddings"] is not None:
            embeddings = torch.cat([state["embeddings"], embeddings], dim=1)
        logits, _ = self.head(embeddings, compute_grw=False)
        return logits, {"backbone": backbone_state, "embeddings": embeddings}
