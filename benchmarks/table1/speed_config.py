"""How ``speed`` times, as data (``SpeedConfig``, the backends and devices). Light to import, no torch:
``speed --help`` builds from these defaults; the timing itself is ``benchmarks.table1.speed``.
"""

from __future__ import annotations

from dataclasses import dataclass

BACKENDS = ("eager", "compile", "onnxruntime")  # onnxruntime: the graph of benchmarks.table1.export
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class SpeedConfig:
    """How to time (see the docstring of ``benchmarks.table1.speed``)."""

    device: str = "cpu"
    threads: int = 1
    batch_sizes: tuple[int, ...] = (1,)
    backend: str = "eager"
    channels_last: bool = False
    amp: bool = False  # bf16 autocast
    fold_bn: bool = False  # BatchNorm folded into the convolutions (benchmarks.table1.deploy), checked
    profile: bool = False  # also store where one call's time goes (torch.profiler, eager and compile only)
    warmup: int = 2
    repeats: int = 20
    min_repeats: int = 3
    max_seconds: float = 20.0  # per timed quantity, after warm-up

    def __post_init__(self) -> None:
        object.__setattr__(self, "batch_sizes", tuple(int(b) for b in self.batch_sizes))
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.threads < 1 or not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ValueError(f"need threads >= 1 and batch sizes >= 1, got {self.threads}, {list(self.batch_sizes)}")
        if self.backend == "onnxruntime" and self.batch_sizes != (1,):
            raise ValueError("--backend onnxruntime times graphs exported at batch 1: use --batch-sizes 1")
        onnx_unfit = self.device != "cpu" or self.amp or self.channels_last or self.profile
        if self.backend == "onnxruntime" and onnx_unfit:
            raise ValueError("--backend onnxruntime runs on the CPU, in float32 and its own layout, out of "
                             "torch's profiler's sight (no --device cuda, --amp, --channels-last or --profile)")
        if self.warmup < 0 or not 1 <= self.min_repeats <= self.repeats or self.max_seconds <= 0:
            raise ValueError(f"need warmup >= 0, 1 <= min_repeats <= repeats and max_seconds > 0, got "
                             f"{self.warmup}, {self.min_repeats}, {self.repeats}, {self.max_seconds}")
