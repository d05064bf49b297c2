"""Inference backends; import them through `edgeprune_agent.runtimes`, which loads them lazily."""
