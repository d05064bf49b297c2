"""Errors a user can act on; the CLI prints them as one clear line instead of a traceback."""


class EdgepruneError(Exception):
    """Base of every user-facing edgeprune error."""
