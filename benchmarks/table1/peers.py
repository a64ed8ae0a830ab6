"""The public implementations of the suite's architectures, timed against the suite's own on the same
input and threads (``speed --peers``).

Each peer pair names the suite's model (a ``baselines`` registry name at a Table 1 row's input) and the
public one, built with random weights (nothing is downloaded):

- MoViNet-pytorch (``movinets``, github.com/Atze00/MoViNet-pytorch; ``pip install
  git+https://github.com/Atze00/MoViNet-pytorch``): A0 and A2 base (3D convolutions, whole clip), A0 and A1
  stream (causal (2+1)D with its stream buffer, one frame per call), with ``tf_like=True``, the setting its
  released weights use;
- PyTorchVideo (``pytorchvideo.models.hub``): X3D-XS and X3D-M;
- torchvision: MobileNetV3-S and -L, a clip's frames as one batch (frame-wise, as the suite's).

A peer whose package is not installed is reported as unavailable, with how to install it. The two models
are called alternately (``speed.time_alternating``), so the ratio ours / peer of each pair of calls sees
the same machine load; its median and quartiles are reported.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

import baselines
from benchmarks.table1.specs import RowSpec, get_spec


@dataclass(frozen=True)
class Peer:
    """The suite's ``ours`` model and the public ``build`` at the input of Table 1 row ``row``."""

    name: str
    ours: str  # a baselines registry name
    row: int  # the Table 1 row whose input (frames, side) both run at
    package: str
    install: str
    build: Callable[[], nn.Module]
    mode: str = "clip"  # "clip": one whole clip per call; "frame": one frame per call on a warm state;
    # "frames": the clip's frames as a batch of images
    num_classes: int = 600  # the peer's head, which ours copies (Kinetics-400 X3D, ImageNet MobileNetV3)


def _movinet_pytorch(variant: str, causal: bool) -> nn.Module:
    movinets = importlib.import_module("movinets")
    config = importlib.import_module("movinets.config")
    cfg = getattr(config._C.MODEL, f"MoViNet{variant}")
    return movinets.MoViNet(cfg, causal=causal, pretrained=False, num_classes=600,
                            conv_type="2plus1d" if causal else "3d", tf_like=True)


def _pytorchvideo_x3d(name: str) -> nn.Module:
    hub = importlib.import_module("pytorchvideo.models.hub")
    return getattr(hub, name)(pretrained=False)


def _torchvision_mobilenet(name: str) -> nn.Module:
    models = importlib.import_module("torchvision.models")
    return getattr(models, name)(weights=None)


MOVINET_PYTORCH = "pip install git+https://github.com/Atze00/MoViNet-pytorch"
PEERS: tuple[Peer, ...] = (
    Peer("MoViNet-A0 base", "movinet_a0", 2, "movinets", MOVINET_PYTORCH, lambda: _movinet_pytorch("A0", False)),
    Peer("MoViNet-A2 base", "movinet_a2", 9, "movinets", MOVINET_PYTORCH, lambda: _movinet_pytorch("A2", False)),
    Peer("MoViNet-A0 stream, per frame", "movinet_a0_stream", 1, "movinets", MOVINET_PYTORCH,
         lambda: _movinet_pytorch("A0", True), mode="frame"),
    Peer("MoViNet-A1 stream, per frame", "movinet_a1_stream", 6, "movinets", MOVINET_PYTORCH,
         lambda: _movinet_pytorch("A1", True), mode="frame"),
    Peer("X3D-XS", "x3d_xs", 5, "pytorchvideo", "pip install pytorchvideo", lambda: _pytorchvideo_x3d("x3d_xs"),
         num_classes=400),
    Peer("X3D-M", "x3d_m", 13, "pytorchvideo", "pip install pytorchvideo", lambda: _pytorchvideo_x3d("x3d_m"),
         num_classes=400),
    Peer("MobileNetV3-S", "mobilenet_v3_small", 3, "torchvision", "pip install torchvision",
         lambda: _torchvision_mobilenet("mobilenet_v3_small"), mode="frames", num_classes=1000),
    Peer("MobileNetV3-L", "mobilenet_v3_large", 10, "torchvision", "pip install torchvision",
         lambda: _torchvision_mobilenet("mobilenet_v3_large"), mode="frames", num_classes=1000),
)


def unavailable(peer: Peer) -> str | None:
    """Why ``peer`` cannot be timed here (its package is missing), or None."""
    try:
        importlib.import_module(peer.package)
    except ImportError as error:
        return f"{peer.package} is not installed ({error}); {peer.install}"
    return None


def peer_call(peer: Peer, model: nn.Module, spec: RowSpec, device: str) -> Callable[[], object]:
    if peer.mode == "frame":
        # MoViNet-pytorch keeps its stream buffer in the modules: warm it with half a clip, as ours, and
        # keep it at that length (its buffers hold the last frames only, so every call does the same work)
        frame = torch.zeros(1, 3, 1, spec.res, spec.res, device=device)
        model.clean_activation_buffers()
        with torch.inference_mode():
            for _ in range(max(1, spec.frames // 2)):
                model(frame)
        return lambda: model(frame)
    if peer.mode == "frames":
        images = torch.zeros(spec.frames, 3, spec.res, spec.res, device=device)
        return lambda: model(images)
    clip = torch.zeros(spec.clip_shape, device=device)
    return lambda: model(clip)


def build_pair(peer: Peer, device: str) -> tuple[RowSpec, nn.Module, Callable[[], object]]:
    """The row's input, our model (seeded, eval mode, on ``device``; the caller prepares it as it times
    ours) and the peer's call on that input (seeded, as published, under ``inference_mode``)."""
    spec = get_spec(peer.row)
    torch.manual_seed(0)
    ours = baselines.build(peer.ours, num_classes=peer.num_classes).eval().to(device)
    torch.manual_seed(0)
    theirs = peer.build().eval().to(device)
    call = peer_call(peer, theirs, spec, device)

    def run() -> object:
        with torch.inference_mode():
            return call()

    return spec, ours, run


def peer_input(peer: Peer, spec: RowSpec) -> RowSpec:
    """The row's input as ours is exported for the pair (a plain model of the row's family: no GRW)."""
    return dataclasses.replace(spec, grw=None, model=peer.ours)
