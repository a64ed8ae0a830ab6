"""benchmarks/table1."""
