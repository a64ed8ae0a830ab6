"""VA-RED2 as a training method (``train --method vared2``; seed 004, ``baselines.vared2``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from torch import Tensor, nn

from baselines import vared2
from baselines.x3d import x3d_of
from benchmarks.core.counting import count_gflops
from benchmarks.engine.method import Method, logits_of
from benchmarks.methods.vared2.options import VARED2Options
from benchmarks.table1.specs import RowSpec


class VARED2Method(Method):
    """VA-RED2 (seed 004, ``baselines.vared2``): the X3D's pointwise convolutions (``conv_a`` and ``conv_c``
    of every block) become dynamic convolutions with a gate. Stage ``joint`` trains with the accuracy loss
    alone; stage ``finetune`` (from the joint run's weights, ``--init``) adds the efficiency loss with
    weight ``--efficiency-weight`` (the paper's lambda_e 0.8). ``predict`` reports each video's GFLOPs (the
    static layers plus what its gates chose; gates and cheap operations excluded) and each dynamic layer's
    option (R, r)."""

    name: ClassVar[str] = "vared2"
    terms: ClassVar[tuple[str, ...]] = ("loss", "ce", "efficiency")
    Options: ClassVar[type] = VARED2Options
    legacy_fields: ClassVar[dict[str, str]] = {"vared2_stage": "stage", "vared2_weight": "weight"}

    @property
    def efficiency_weight(self) -> float:
        return self.options.weight if self.options.stage == "finetune" else 0.0

    def prepare(self, model: nn.Module, spec: RowSpec) -> nn.Module:
        try:
            net = x3d_of(model)
        except ValueError as error:
            raise ValueError(f"--method vared2 needs an X3D row; row {spec.row} ({spec.name}) "
                             f"is {spec.model}") from error
        layers = [name for name, m in net.named_modules() if name.endswith(("conv_a.0", "conv_c.0"))
                  and isinstance(m, nn.Conv3d)]
        net.vared2_macs = vared2.convert(net, layers, (1, 3, spec.frames, spec.res, spec.res))
        return model

    def loss(self, model: nn.Module, videos: Tensor, labels: Tensor,
             criterion: Callable[[Tensor, Tensor], Tensor]) -> tuple[Tensor, dict[str, float]]:
        logits = logits_of(model(videos))
        ce = criterion(logits.float(), labels)
        net = x3d_of(model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model)
        efficiency = vared2.efficiency_loss(net, net.vared2_macs, logits.argmax(1) == labels)
        loss = ce + self.efficiency_weight * efficiency
        return loss, {"loss": loss.item(), "ce": ce.item(), "efficiency": efficiency.item()}

    def predict(self, model: nn.Module, videos: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        net = x3d_of(model)
        if not hasattr(net, "vared2_static_gflops"):  # fvcore of the layers that are not dynamic, at this input
            with vared2.full_option(net):
                total = count_gflops(net, (1, *videos.shape[1:]))
            net.vared2_static_gflops = total - sum(net.vared2_macs.values()) / 1e9
        logits = logits_of(model(videos))  # after the count: its forward pass sets what each layer spent
        gflops = vared2.spent_gflops(net, net.vared2_macs, net.vared2_static_gflops)
        return logits, {"gflops": gflops, **vared2.chosen_options(net)}
