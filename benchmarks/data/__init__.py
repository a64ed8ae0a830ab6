"""benchmarks/data."""
