"""benchmarks/engine."""
