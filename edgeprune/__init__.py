"""edgeprune: measure CNNs on real edge devices and prune them to a measured latency or energy budget."""
__version__ = "0.1.0"
