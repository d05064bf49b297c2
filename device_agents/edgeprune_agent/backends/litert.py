"""LiteRT (TFLite) backend via ai-edge-litert, falling back to tflite-runtime."""
from __future__ import annotations

from importlib import metadata
from typing import Dict

import numpy as np

from ..errors import ModelInvalid, RuntimeUnavailable
from ..inputs import make_rng, random_input, static_shape

INSTALL_HINT = "pip install ai-edge-litert"
TFLITE_MAGIC = b"TFL3"


def _import_interpreter():
    """Return (Interpreter class, distribution name) or raise RuntimeUnavailable."""
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter, "ai-edge-litert"
    except ImportError as first:
        try:
            from tflite_runtime.interpreter import Interpreter
            return Interpreter, "tflite-runtime"
        except ImportError:
            raise RuntimeUnavailable(f"LiteRT is not installed ({first}): {INSTALL_HINT}") from first


def check_magic(model_bytes: bytes) -> None:
    """Raise ModelInvalid unless the bytes carry the TFLite flatbuffer identifier."""
    if model_bytes[4:8] != TFLITE_MAGIC:
        raise ModelInvalid("not a TFLite model: the flatbuffer identifier 'TFL3' is missing at bytes 4..8")


def allocated_interpreter(interpreter_cls, model_bytes: bytes, threads: int, default_delegates: bool):
    """An interpreter with tensors allocated, with or without the default (XNNPACK) delegate."""
    kwargs = {"model_content": bytes(model_bytes), "num_threads": threads}
    if not default_delegates:
        from ai_edge_litert.interpreter import OpResolverType

        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interp = interpreter_cls(**kwargs)
    interp.allocate_tensors()
    return interp


class LiteRtModel:
    """A model loaded into a LiteRT Interpreter with fixed random inputs."""

    name = "litert"

    @staticmethod
    def version() -> str:
        """Installed LiteRT package version."""
        _, dist = _import_interpreter()
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "unknown"

    def __init__(self, model_bytes: bytes, threads: int = 1):
        interpreter_cls, _ = _import_interpreter()
        check_magic(model_bytes)
        self.delegate = "default (XNNPACK)"
        try:
            self._interp = allocated_interpreter(interpreter_cls, model_bytes, threads, default_delegates=True)
        except RuntimeError as exc:
            if "delegate" not in str(exc).lower():
                raise ModelInvalid(f"LiteRT could not load the model: {exc}") from exc
            # XNNPACK refuses some graphs (seen with int8 ResNets); the built-in kernels still run them.
            try:
                self._interp = allocated_interpreter(interpreter_cls, model_bytes, threads, default_delegates=False)
            except Exception as again:  # the interpreter raises ValueError/RuntimeError on bad flatbuffers
                raise ModelInvalid(f"LiteRT could not load the model: {again}") from again
            self.delegate = "none (XNNPACK refused the graph)"
        except Exception as exc:  # the interpreter raises ValueError/RuntimeError on bad flatbuffers
            raise ModelInvalid(f"LiteRT could not load the model: {exc}") from exc
        self.inputs: Dict[str, Dict[str, object]] = {}
        rng = make_rng()
        for detail in self._interp.get_input_details():
            name = detail["name"]
            signature = detail.get("shape_signature", detail["shape"])
            dims = [int(d) if int(d) >= 0 else None for d in signature]
            shape = static_shape(name, dims)
            dtype = np.dtype(detail["dtype"])
            self._interp.set_tensor(detail["index"], random_input(shape, dtype, rng))
            self.inputs[name] = {"shape": shape, "dtype": dtype.name}
        try:
            self.run()
        except Exception as exc:  # a first run catches models that load but cannot execute
            raise ModelInvalid(f"LiteRT loaded the model but running it failed: {exc}") from exc

    def run(self) -> None:
        """Run one inference on the prepared inputs."""
        self._interp.invoke()
