"""Verify a deployable artifact on a device: measured cost vs the cost model's prediction and the budget."""
from edgeprune.verify.check import VerifyError, verify

__all__ = ["VerifyError", "verify"]
