"""Deployable artifacts and their parity checks."""
