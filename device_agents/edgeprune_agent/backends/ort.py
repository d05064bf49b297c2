"""ONNX Runtime backend (CPU, sequential, full graph optimisation)."""
from __future__ import annotations

from typing import Dict

import numpy as np

from ..errors import ModelInvalid, RuntimeUnavailable
from ..inputs import make_rng, random_input, static_shape

INSTALL_HINT = "pip install onnxruntime"

_ORT_DTYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int16)": np.int16,
    "tensor(uint16)": np.uint16, "tensor(int32)": np.int32, "tensor(uint32)": np.uint32,
    "tensor(int64)": np.int64, "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_,
}


def _import_ort():
    """Import onnxruntime or raise RuntimeUnavailable with the install hint."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise RuntimeUnavailable(f"onnxruntime is not installed ({exc}): {INSTALL_HINT}") from exc
    return onnxruntime


class OrtModel:
    """A model loaded into an onnxruntime InferenceSession with fixed random inputs."""

    name = "onnxruntime"

    @staticmethod
    def version() -> str:
        """Installed onnxruntime version."""
        return str(_import_ort().__version__)

    def __init__(self, model_bytes: bytes, threads: int = 1):
        ort = _import_ort()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(model_bytes, sess_options=opts,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            hint = " (this looks like a TFLite model: use runtime=litert)" if model_bytes[4:8] == b"TFL3" else ""
            raise ModelInvalid(f"onnxruntime could not load the model{hint}: {exc}") from exc
        self.inputs: Dict[str, Dict[str, object]] = {}
        self._feeds: Dict[str, np.ndarray] = {}
        rng = make_rng()
        for arg in self._session.get_inputs():
            dtype = _ORT_DTYPES.get(arg.type)
            if dtype is None:
                raise ModelInvalid(f"input '{arg.name}' has unsupported type {arg.type}")
            shape = static_shape(arg.name, arg.shape)
            self._feeds[arg.name] = random_input(shape, dtype, rng)
            self.inputs[arg.name] = {"shape": shape, "dtype": np.dtype(dtype).name}
        self._binding = self._bind(ort)
        try:
            self.run()
        except Exception as exc:  # a first run catches models that load but cannot execute
            raise ModelInvalid(f"onnxruntime loaded the model but running it failed: {exc}") from exc

    def _bind(self, ort):
        """Bind inputs (and outputs, where static) once: per-call Python conversion is not model time."""
        binding = self._session.io_binding()
        for name, array in self._feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array))
        for arg in self._session.get_outputs():
            dtype = _ORT_DTYPES.get(arg.type)
            if dtype is not None and all(isinstance(d, int) and d >= 0 for d in arg.shape):
                binding.bind_ortvalue_output(arg.name, ort.OrtValue.ortvalue_from_shape_and_type(
                    list(arg.shape), dtype))
            else:
                binding.bind_output(arg.name, "cpu")
        return binding

    def run(self) -> None:
        """Run one inference on the bound inputs."""
        self._session.run_with_iobinding(self._binding)
