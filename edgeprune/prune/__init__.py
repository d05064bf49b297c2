"""Structured pruning to a measured-model cost budget."""
