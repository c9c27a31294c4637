"""Per-object measurements: morphology, per-compartment intensities, nucleus ↔ cell assignment."""
