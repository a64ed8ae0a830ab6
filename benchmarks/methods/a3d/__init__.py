"""benchmarks/methods/a3d."""
