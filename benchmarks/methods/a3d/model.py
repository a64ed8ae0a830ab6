"""A3D (Zhu, Yang, Mendieta, Chen, "A3D: Adaptive 3D Networks for Video Action Recognition"; seed 002):
one adaptive X3D trained jointly over width, spatial and temporal configurations.

A configuration is (gamma_w, gamma_s, gamma_t): the network at ``gamma_w`` of every layer's width
(``baselines.slimmable``: the leading channels of each layer, as a freshly built X3D of that width
has them, ``baselines.x3d.width_channels``), fed the clip at ``gamma_s`` of its side and ``gamma_t``
of its frames. Cost ~ gamma_w^2 gamma_s^2 gamma_t of the full network (the paper's Eq. 2; the
sweep counts it with fvcore).

Training (section 3.1, "mutual training", Eq. 3): every iteration runs the full network on the full
clip, trained with cross-entropy against the labels, and two sub-networks: one with gamma_w drawn
uniformly from the range's [w_min, 1], one at w_min, each with gamma_s and gamma_t drawn from the
range's sets. Each sub-network is trained with the KL divergence from the full network's output to
its own. The paper's two ranges (``A3D_RANGES``, section 4):

- ``[0.016,1]``: gamma_w ~ U[0.5, 1], gamma_s in {0.57, 0.71, 0.86, 1}, gamma_t in {0.25, 0.5, 0.75, 1};
- ``[0.06,1]``: gamma_w ~ U[0.63, 1], gamma_s in {0.63, 0.80, 1}, gamma_t in {0.4, 0.63, 1}.

What the paper leaves open, and this suite's choice: the teacher (the full network's output) is
detached (no gradient flows into the full network through the KL terms), the temperature is 1, the
KL terms are summed (Eq. 3) and averaged over the batch. A smaller clip is cut from the full one: the
frames evenly spaced over the clip (``round(gamma_t T)`` of them), each frame resized to
``round(gamma_s S)`` px (bilinear). The random draws come from torch's generator, which the training
loop seeds per step, so a resumed run draws the same configurations.

Deployment (section 3.3): every configuration of the range's grid (gamma_w in 6 steps of 0.1 from
0.5, for ``[0.016,1]``) is evaluated on validation data with its BatchNorm statistics recomputed
(``baselines.slimmable.recompute_batchnorm``), and the best one under each budget forms the
configuration-budget table (``benchmarks.methods.a3d.sweep``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.slimmable import active_channels
from baselines.x3d import X3D, X3DConfig, scaled_config, width_channels, x3d_of
from benchmarks.methods.a3d.options import A3D_RANGES, A3DRange, Configuration  # noqa: F401  (also as model.*)

FULL = Configuration()


def grid(a3d_range: A3DRange) -> list[Configuration]:
    """Every configuration evaluated after training (the paper's 96 for ``[0.016,1]``)."""
    return [Configuration(w, s, t) for w, s, t in itertools.product(a3d_range.eval_widths, a3d_range.spatial,
                                                                    a3d_range.temporal)]


def scale_clip(videos: Tensor, configuration: Configuration) -> Tensor:
    """A batch of clips ``[B, 3, T, S, S]`` at the configuration's input: ``round(gamma_t T)`` frames
    evenly spaced over the clip, each resized to ``round(gamma_s S)`` px (bilinear)."""
    frames, side = configuration.input_shape(videos.shape[2], videos.shape[-1])
    if frames != videos.shape[2]:
        index = torch.linspace(0, videos.shape[2] - 1, frames, device=videos.device).round().long()
        videos = videos.index_select(2, index)
    if side != videos.shape[-1]:
        videos = F.interpolate(videos, size=(frames, side, side), mode="trilinear", align_corners=False)
    return videos


def configured(model: nn.Module, configuration: Configuration):
    """A context in which ``model``'s X3D runs at the configuration's width (input scaling is the
    caller's: ``scale_clip``)."""
    net = x3d_of(model)
    return active_channels(net, width_channels(net.config, configuration.width))


def narrow_x3d(config: X3DConfig, configuration: Configuration, num_classes: int) -> X3D:
    """The plain X3D a configuration of an A3D model of ``config`` is equivalent to: built at the
    configuration's width (``scaled_config``: every convolution has the channels the sliced layer keeps,
    ``width_channels``; the classifier's 2048 and ``num_classes`` stay), randomly initialised, to be fed
    the configuration's clip (``Configuration.input_shape``). Its layer shapes, parameters and multiply-adds
    are the configuration's; its weights are not (the sliced model's are the leading slices of the full
    one's). Built on the current default device (``torch.device("meta")`` for shapes only)."""
    return X3D(scaled_config(config, configuration.width), num_classes=num_classes)


def sample_subnetworks(a3d_range: A3DRange, generator: torch.Generator | None = None) -> list[Configuration]:
    """The two sub-networks of one training iteration: a random width in [w_min, 1] and w_min, each
    with a random gamma_s and gamma_t from the range's sets."""
    def pick(values: tuple[float, ...]) -> float:
        return values[int(torch.randint(len(values), (1,), generator=generator))]

    random_width = a3d_range.width_min + (1 - a3d_range.width_min) * float(torch.rand(1, generator=generator))
    return [Configuration(width, pick(a3d_range.spatial), pick(a3d_range.temporal))
            for width in (random_width, a3d_range.width_min)]


def distillation(student: Tensor, teacher: Tensor, temperature: float = 1.0) -> Tensor:
    """KL(teacher || student) of the softened distributions, averaged over the batch (x T^2, so its
    gradient scale does not depend on the temperature)."""
    return F.kl_div(F.log_softmax(student.float() / temperature, dim=1),
                    F.log_softmax(teacher.float() / temperature, dim=1), reduction="batchmean",
                    log_target=True) * temperature**2


def a3d_loss(model: nn.Module, videos: Tensor, labels: Tensor, criterion: Callable[[Tensor, Tensor], Tensor],
             a3d_range: A3DRange, logits_of: Callable[[object], Tensor],
             subnetworks: list[Configuration] | None = None) -> tuple[Tensor, dict[str, float], list[Configuration]]:
    """Eq. 3 for one micro-batch: CE of the full network on the full clip, plus the KL from its
    (detached) output to each sub-network's output on its scaled clip. Returns the loss, its terms and
    the configurations trained (full first). Sub-networks run on the X3D itself, not through a DDP
    wrapper: their gradients add to the full network's before the one backward that DDP reduces."""
    full = logits_of(model(videos))
    ce = criterion(full.float(), labels)
    teacher = full.detach()
    subnetworks = sample_subnetworks(a3d_range) if subnetworks is None else subnetworks
    net = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    distill = torch.zeros((), device=ce.device)
    for configuration in subnetworks:
        with configured(net, configuration):
            distill = distill + distillation(logits_of(net(scale_clip(videos, configuration))), teacher)
    loss = ce + distill
    terms = {"loss": loss.item(), "ce": ce.item(), "distill": distill.item()}
    return loss, terms, [FULL, *subnetworks]
