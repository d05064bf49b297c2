"""edgeprune: measure CNNs on real edge devices and prune them to a measured latency or energy budget.

The Python API (``edgeprune.calibrate``, ``fit``, ``compress``, ``export``, ``verify``, ``load``) is imported on
first use, so ``import edgeprune`` stays fast.
"""
import sys
import types

from edgeprune.version import __version__

API = ("calibrate", "fit", "compress", "export", "verify", "load", "load_cost_model", "CompressResult",
       "FittedCostModel")
__all__ = ["__version__", *API]


def __getattr__(name: str):
    if name in API:
        from edgeprune import api

        return getattr(api, name)
    raise AttributeError(f"module 'edgeprune' has no attribute {name!r}")


class _Package(types.ModuleType):
    """``edgeprune.export`` and ``edgeprune.verify`` name both a subpackage and an API function: importing the
    subpackage must not bind it over the function (``from edgeprune.export.x import y`` still works)."""

    def __setattr__(self, name: str, value) -> None:
        if name in API and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
