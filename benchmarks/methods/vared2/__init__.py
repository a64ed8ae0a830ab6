"""VA-RED2 (seed 004): dynamic convolutions with gates in X3D (``train --method vared2``, ``vared2-cost``,
``vared2-study``)."""

from benchmarks.engine.method import METHODS

METHODS.register("vared2", "benchmarks.methods.vared2.method:VARED2Method")
