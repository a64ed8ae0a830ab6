"""What ``export`` can write, by name: light to import (no torch), so ``export --help`` builds without it.
The exporting itself is ``benchmarks.table1.export``.
"""

EXPORTERS = ("torchscript", "dynamo")
FORMATS = ("onnx",)
