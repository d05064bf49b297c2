"""Command-line interface (``edgeprune``)."""
