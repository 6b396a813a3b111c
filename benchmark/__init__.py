"""The reference benchmark: every predictor and placement on the bundled trained reference model (CPU)."""
