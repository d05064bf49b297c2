"""Errors a user can act on; the CLI prints them as one clear line instead of a traceback."""
from __future__ import annotations


class EdgepruneError(Exception):
    """Base of every user-facing edgeprune error; ``hint`` says what to do about it."""

    def __init__(self, *args, hint: str | None = None):
        super().__init__(*args)
        self.hint = hint
