"""``edgeprune export``: a compressed-model directory to ONNX or TFLite (fp32 or int8) with parity checks."""
from __future__ import annotations

from pathlib import Path

import typer

from edgeprune.cli.common import JsonOpt
from edgeprune.cli.output import Output, RichProgress


def export_command(model_dir: Path = typer.Option(..., "--model-dir", help="Directory written by compress."),
                   fmt: str = typer.Option("onnx", "--format", "-f", help="onnx or tflite."),
                   int8: bool = typer.Option(False, "--int8", help="int8 post-training quantization, calibrated "
                                             "on the data source; reports the accuracy change."),
                   data: str = typer.Option(None, "--data", help="Data source for parity/calibration (default: "
                                            "the one recorded in the model dir)."),
                   out: Path = typer.Option(None, "--out", help="Output file (default: in the model dir)."),
                   samples: int = typer.Option(64, "--samples", help="Samples for parity and calibration."),
                   nhwc: bool = typer.Option(False, "--nhwc", help="TFLite with NHWC input."),
                   data_limit: int = typer.Option(None, "--data-limit", help="Use at most N samples per split."),
                   as_json: bool = JsonOpt):
    """Export a compressed model, check it against torch on real samples, optionally quantize to int8."""
    import edgeprune

    o = Output(as_json)
    bar = RichProgress(o.console)
    bar.start(f"export {fmt}{' int8' if int8 else ''} + parity check", 1)
    try:
        r = edgeprune.export(model_dir, out, fmt=fmt, int8=int8, data=data, samples=samples, nhwc=nhwc,
                             data_limit=data_limit)
        bar.advance()
    finally:
        bar.finish()
    o.emit(r)
    o.print(f"wrote {r['artifact']} ({r['format']}, {r['layout']}, {r['size_bytes']:,} bytes)")
    if r["parity"]:
        p = r["parity"]
        o.print(f"parity on {p['samples']} samples of {r['data']}: max |diff| {p['max_abs_diff']:.1e}, "
                f"top-1 agreement {p['top1_agreement']:.0%}")
    if r["quantization"]:
        q = r["quantization"]
        o.print(f"int8 ({q['method']}): accuracy {q['fp32_accuracy']:.2%} → {q['int8_accuracy']:.2%} "
                f"({q['accuracy_change']:+.2%}) on {q['samples']} validation samples")
    for w in r["warnings"]:
        o.warn(w)
