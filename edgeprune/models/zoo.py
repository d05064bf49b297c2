"""Model registry: build zoo models or user `file.py:function` specs, optionally with weights."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import NamedTuple

from torch import nn
from edgeprune.errors import EdgepruneError
from edgeprune.userfile import import_user_file

from .cellnet import cellnet
from .demo_cnn import demo_cnn
from .mobilenetv2 import mobilenetv2
from .opbench import single_op
from .resnet_cifar import resnet20, resnet32, resnet44, resnet56
from .shufflenet import shufflenet
from .weights import WeightsError, load_weights

__all__ = ["MODELS", "ModelEntry", "ModelSpecError", "WeightsError", "build_model", "load_weights"]

Shape = tuple[int, ...]


class ModelSpecError(EdgepruneError):
    """A model spec names no zoo model or no loadable `file.py:function`."""


class ModelEntry(NamedTuple):
    """A zoo builder and the input shape it expects by default."""

    builder: Callable[..., nn.Module]
    input_shape: Shape


MODELS: dict[str, ModelEntry] = {
    "resnet20": ModelEntry(resnet20, (1, 3, 32, 32)),
    "resnet32": ModelEntry(resnet32, (1, 3, 32, 32)),
    "resnet44": ModelEntry(resnet44, (1, 3, 32, 32)),
    "resnet56": ModelEntry(resnet56, (1, 3, 32, 32)),
    "mobilenetv2": ModelEntry(mobilenetv2, (1, 3, 32, 32)),
    "demo_cnn": ModelEntry(demo_cnn, (1, 1, 8, 8)),
    "demo_cnn32": ModelEntry(partial(demo_cnn, in_channels=3), (1, 3, 32, 32)),
    "cellnet": ModelEntry(cellnet, (1, 3, 32, 32)),
    "shufflenet": ModelEntry(shufflenet, (1, 3, 32, 32)),
}
# Builders that return (module, input shape): the shape depends on their arguments.
SHAPED = {"single_op": single_op}



def _as_shape(value: object, where: str) -> Shape:
    """Validate an input shape as a non-empty tuple of positive ints."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise ModelSpecError(f"{where}: input shape must be a sequence of ints like (1, 3, 32, 32), got {value!r}")
    if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in value):
        raise ModelSpecError(f"{where}: input shape must contain positive ints, got {value!r}")
    return tuple(value)


def _is_file_spec(spec: str) -> bool:
    """True when `spec` looks like `path/to/file.py:function`."""
    path, sep, _ = spec.rpartition(":")
    return bool(sep) and path.endswith(".py")


def _import_file(path: Path) -> object:
    """Import a Python file under a fresh, unique module name."""
    return import_user_file(path, "edgeprune_user_model", ModelSpecError)


def _build_from_file(spec: str, kwargs: dict) -> tuple[nn.Module, Shape | None]:
    """Call the function named by `file.py:function`; return (module, shape or None)."""
    file_part, _, func_name = spec.rpartition(":")
    path = Path(file_part).expanduser().resolve()
    if not path.is_file():
        raise ModelSpecError(f"model file not found: {file_part} (spec {spec!r})")
    module = _import_file(path)
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ModelSpecError(f"{file_part} has no function {func_name!r} (spec {spec!r})")
    try:
        result = func(**kwargs)
    except TypeError as exc:
        if not kwargs:
            raise
        raise ModelSpecError(f"{spec} does not take the arguments {sorted(kwargs)}: {exc}") from exc
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], nn.Module):
        return result[0], _as_shape(result[1], spec)
    if isinstance(result, nn.Module):
        return result, None
    raise ModelSpecError(f"{spec} must return an nn.Module or (nn.Module, input_shape), got {type(result).__name__}")


def build_model(
    spec: str, weights: str | Path | None = None, *, input_shape: Sequence[int] | None = None, **kwargs
) -> tuple[nn.Module, Shape]:
    """Build a zoo model (kwargs go to its builder) or a `file.py:function` model; return (eval model, shape)."""
    if _is_file_spec(spec):
        model, shape = _build_from_file(spec, kwargs)
        if input_shape is not None:
            shape = _as_shape(input_shape, spec)
        if shape is None:
            raise ModelSpecError(
                f"{spec} returned only a module; return (module, input_shape) or pass input_shape=(1, C, H, W)"
            )
    elif spec in SHAPED:
        model, shape = SHAPED[spec](**kwargs)
        shape = shape if input_shape is None else _as_shape(input_shape, spec)
    elif spec in MODELS:
        entry = MODELS[spec]
        model = entry.builder(**kwargs)
        shape = entry.input_shape if input_shape is None else _as_shape(input_shape, spec)
    else:
        raise ModelSpecError(
            f"unknown model {spec!r}; available: {', '.join([*MODELS, *SHAPED])} or path/to/file.py:function"
        )
    if weights is not None:
        load_weights(model, weights)
    return model.eval(), shape
