"""Export to ONNX (layer names kept) and check it against torch on real samples in onnxruntime."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn

from edgeprune.errors import EdgepruneError
from edgeprune.export.samples import take_samples
from edgeprune.files import atomic_write
from edgeprune.formats import on_cpu, to_onnx_bytes
from edgeprune.models.layer_space import output_tensors


class ParityError(EdgepruneError):
    """The exported model does not compute what the torch model computes."""


@dataclass
class ParityReport:
    samples: int
    max_abs_diff: float
    top1_agreement: float
    atol: float  # on outputs of magnitude ≤ 1; larger outputs are held to atol × their largest magnitude
    passed: bool
    layout: str = "NCHW"
    output_scale: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


def export_onnx(model: nn.Module, input_shape: tuple[int, ...], path: str | Path, loader=None,
                samples: int = 64, atol: float = 1e-3, min_agreement: float = 0.99) -> ParityReport | None:
    """Write ``path``, validate it with onnx.checker and, given a loader, compare outputs with torch."""
    model = on_cpu(model)  # one CPU copy of a GPU-trained model, for the export and the parity check
    data = to_onnx_bytes(model, input_shape)
    onnx.checker.check_model(onnx.load_from_string(data))
    path = atomic_write(path, data)
    if loader is None:
        return None
    report = check_parity(model, data, take_samples(loader, samples), atol, min_agreement)
    if not report.passed:
        raise ParityError(f"{path}: ONNX output differs from torch (max |diff| {report.max_abs_diff:.2e} > "
                          f"{atol:g} × output scale {report.output_scale:.3g} or top-1 agreement "
                          f"{report.top1_agreement:.1%} < {min_agreement:.0%})")
    return report


def check_parity(model: nn.Module, onnx_bytes: bytes, x: torch.Tensor, atol: float = 1e-3,
                 min_agreement: float = 0.99) -> ParityReport:
    """Max abs difference and top-1 agreement between torch and onnxruntime, one sample at a time; a model with
    several outputs (tuple, list, dict) is compared output by output, its agreement over the 2-D ones whose torch
    top two differ by more than ``atol`` (a near-tie is no disagreement)."""
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    batch = sess.get_inputs()[0].shape[0]
    model = model.eval()
    with torch.no_grad():
        refs = [t.numpy() for _, t in output_tensors(model(x))]
    runs = [sess.run(None, {name: x[i:i + batch].numpy()}) for i in range(0, len(x), batch)]
    gots = [np.concatenate([r[k] for r in runs]) for k in range(len(refs))]
    diff = max(float(np.abs(ref - got).max()) for ref, got in zip(refs, gots))
    if len(refs) == 1:
        agree = float(np.mean(refs[0].argmax(1) == gots[0].argmax(1)))
    else:
        same = [(ref.argmax(1) == got.argmax(1))[_margin(ref) > atol] for ref, got in zip(refs, gots) if ref.ndim == 2]
        counted = np.concatenate(same) if same else np.ones(1, dtype=bool)
        agree = float(np.mean(counted)) if counted.size else 1.0
    scale = output_scale(refs)
    return ParityReport(len(x), diff, agree, atol, diff <= atol * scale and agree >= min_agreement, "NCHW", scale)


def output_scale(refs) -> float:
    """The largest output magnitude, at least 1: float32 rounding grows with it (deep nets reach |logits| of 10+)."""
    return max([1.0] + [float(np.abs(r).max()) for r in refs if r.size])


def _margin(scores: np.ndarray) -> np.ndarray:
    """Per row: the largest score minus the second largest (infinite for a single column)."""
    if scores.shape[1] < 2:
        return np.full(len(scores), np.inf)
    top = np.sort(scores, axis=1)
    return top[:, -1] - top[:, -2]
