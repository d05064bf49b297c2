"""Whether an artifact computes in int8, read from the file itself (its name may say anything)."""
from __future__ import annotations

QUANTIZED_ONNX_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
                      "MatMulInteger", "DynamicQuantizeLinear"}


def is_int8(data: bytes, runtime: str) -> bool | None:
    """True for a quantized ONNX or TFLite model, False for a float one, None when the file cannot be read here."""
    if runtime == "onnxruntime":
        import onnx

        return any(node.op_type in QUANTIZED_ONNX_OPS for node in onnx.load_from_string(data).graph.node)
    from edgeprune.export.tflite import ExportError, interpreter_class

    try:
        interpreter = interpreter_class()(model_content=data)
    except (ExportError, ValueError, RuntimeError):
        return None
    return any(d["dtype"].__name__ in ("int8", "uint8") and d["quantization"] != (0.0, 0)
               for d in interpreter.get_tensor_details())
