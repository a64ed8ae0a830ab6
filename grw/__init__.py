"""GRW-smoothing: the loss and how it attaches to video models."""
