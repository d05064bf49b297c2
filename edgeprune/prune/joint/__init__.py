"""Joint layer + channel pruning: polarization-regularised sparse training, per-layer γ thresholds, block removal."""
