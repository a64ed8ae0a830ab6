"""benchmarks/methods/multigrid."""
