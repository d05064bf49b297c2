"""Export a compressed-model directory to a deployable ONNX or TFLite file, fp32 or int8, with its checks."""
from __future__ import annotations

from pathlib import Path

from edgeprune.errors import EdgepruneError
from edgeprune.export import quantize as q
from edgeprune.export.onnx_parity import export_onnx
from edgeprune.export.tflite import export_tflite
from edgeprune.files import atomic_write
from edgeprune.outcomes import accuracy_warnings

FORMATS = ("onnx", "tflite")


def data_source(info: dict, data: str | None, needed: bool) -> str | None:
    """The data source given, else the one recorded in the model dir's meta; an error when needed and absent."""
    source = data or (info.get("meta") or {}).get("data")
    if source is None and needed:
        raise EdgepruneError("no data source: pass --data (parity checks and int8 calibration need real samples; "
                             "this model dir's meta records none)")
    return source


def default_out(model_dir: Path, fmt: str, int8: bool, nhwc: bool) -> Path:
    """model_dir/model[.nhwc][.int8].onnx|tflite"""
    return model_dir / f"model{'.nhwc' if nhwc else ''}{'.int8' if int8 else ''}.{fmt}"


def export_artifact(model_dir: str | Path, fmt: str = "onnx", int8: bool = False, data: str | None = None,
                    out: str | Path | None = None, samples: int = 64, nhwc: bool = False,
                    parity: bool = True, data_limit: int | None = None, base=None, bundle=None) -> dict:
    """Write the artifact and return path, format, size, parity figures and (int8) the accuracy change; ``base``
    (the dense nn.Module of a model given as an object) and ``bundle`` (a DataBundle) stand in for the specs."""
    from edgeprune.data import load_data
    from edgeprune.prune.artifact import load_compressed

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if nhwc and fmt != "tflite":
        raise ValueError("--nhwc applies to TFLite only (ONNX keeps the torch layout, NCHW)")
    model_dir = Path(model_dir)
    model, info = load_compressed(model_dir, base=base)
    shape = tuple(info["input_shape"])
    source = bundle.name if bundle is not None else data_source(info, data, needed=parity or int8)
    if bundle is None and source:
        bundle = load_data(source, limit=data_limit)
    path = Path(out) if out else default_out(model_dir, fmt, int8, nhwc)
    path.parent.mkdir(parents=True, exist_ok=True)
    loader = bundle.val if (bundle and parity) else None
    report = (export_onnx(model, shape, path, loader, samples) if fmt == "onnx"
              else export_tflite(model, shape, path, loader, samples, nhwc))
    result = {"artifact": str(path), "format": fmt, "int8": int8, "layout": "NHWC" if nhwc else "NCHW",
              "data": source, "parity": report.to_dict() if report else None, "quantization": None,
              "parity_of": "fp32" if report else None,  # int8 is judged by its accuracy change, not parity
              "model_dir": str(model_dir)}
    warnings = [f"from compress: {w}" for w in (info.get("meta") or {}).get("warnings", [])]
    if int8:
        qz = result["quantization"] = _quantize(model, shape, path, fmt, bundle, samples, nhwc)
        classes = bundle.num_classes
        warnings += (accuracy_warnings(qz["fp32_accuracy"], qz["fp32_accuracy"], classes, "the fp32 model")
                     or accuracy_warnings(qz["fp32_accuracy"], qz["int8_accuracy"], classes, "the int8 model"))
    result["warnings"] = warnings
    result["size_bytes"] = path.stat().st_size
    return result


def _quantize(model, shape, path: Path, fmt: str, bundle, samples: int, nhwc: bool) -> dict:
    """Replace the fp32 file at ``path`` by its int8 version; the accuracy of both on the validation split."""
    calib, x, y = q.calibration_and_val(bundle, samples)
    fp32 = path.read_bytes()
    if fmt == "onnx":
        int8 = q.quantize_onnx_int8(fp32, calib)
        figures = q.accuracy_change(q.onnx_accuracy(fp32, x, y), q.onnx_accuracy(int8, x, y), len(x))
    else:
        int8 = q.quantize_tflite_int8(model, shape, calib, nhwc)
        figures = q.accuracy_change(q.tflite_accuracy(fp32, x, y, nhwc), q.tflite_accuracy(int8, x, y, nhwc), len(x))
    atomic_write(path, int8)
    return figures | {"method": "onnxruntime quantize_static QDQ per-channel" if fmt == "onnx"
                      else "ai-edge-quantizer static_wi8_ai8", "calibration_samples": len(calib),
                      "fp32_size_bytes": len(fp32)}

