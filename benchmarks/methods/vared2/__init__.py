"""benchmarks/methods/vared2."""
