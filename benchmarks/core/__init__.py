"""benchmarks/core."""
