"""Run an .onnx (onnxruntime) or .tflite (LiteRT) model on every sample of an .npz; save outputs and versions.

Needs only numpy and the runtime, so it runs inside the emulated arm64 rootfs as well as on the host:
    python tools/model_outputs.py MODEL INPUTS.npz OUT.npz      (INPUTS.npz holds x: N x input shape)
"""
from __future__ import annotations

import json
import platform
import sys

import numpy as np


def onnx_runner(path: str):
    """A function sample -> output with onnxruntime on one CPU thread, and the runtime's version."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return (lambda x: session.run(None, {name: x})[0]), {"onnxruntime": ort.__version__}


def tflite_runner(path: str):
    """A function sample -> output with LiteRT (ai-edge-litert, else tflite-runtime), and its version."""
    try:
        from ai_edge_litert.interpreter import Interpreter
        from importlib.metadata import version
        ver = {"ai-edge-litert": version("ai-edge-litert")}
    except ImportError:
        from tflite_runtime.interpreter import Interpreter
        import tflite_runtime
        ver = {"tflite-runtime": tflite_runtime.__version__}
    interp = Interpreter(model_path=path, num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]

    def run(x: np.ndarray) -> np.ndarray:
        interp.set_tensor(inp["index"], x.astype(inp["dtype"]))
        interp.invoke()
        return interp.get_tensor(out["index"]).copy()
    return run, ver


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    model, inputs, out = argv
    run, versions = (tflite_runner if model.endswith(".tflite") else onnx_runner)(model)
    xs = np.load(inputs)["x"]
    ys = np.stack([run(x[None])[0] for x in xs])
    meta = {"machine": platform.machine(), "python": platform.python_version(), "numpy": np.__version__,
            **versions}
    np.savez(out, y=ys, meta=json.dumps(meta))
    print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
