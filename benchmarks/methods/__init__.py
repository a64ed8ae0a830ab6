"""benchmarks/methods."""
