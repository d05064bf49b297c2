"""Single-layer micro-benchmark models for a layer signature at given channel counts, cached on disk."""
from __future__ import annotations

import hashlib

import torch
import torch.nn as nn

from edgeprune.files import atomic_write
from edgeprune.formats import export_model, runtime_format
from edgeprune.models.layer_space import LayerSignature
from edgeprune.paths import cache_dir

CACHE_VERSION = "1"  # bump when the builder or exporter settings change


def build_layer_model(sig: LayerSignature, c_in: int, c_out: int) -> tuple[nn.Module, tuple[int, ...]]:
    """The layer (+BN +activation, as runtimes fuse them) alone, and its input shape."""
    if c_in < 1 or c_out < 1:
        raise ValueError(f"channel counts must be >= 1, got c_in={c_in}, c_out={c_out}")
    torch.manual_seed(0)
    if sig.op == "linear":
        parts: list[nn.Module] = [nn.Linear(c_in, c_out, bias=sig.bias)]
        shape: tuple[int, ...] = (1, c_in)
    elif sig.op in ("conv", "dwconv"):
        if sig.op == "dwconv" and c_in != c_out:
            raise ValueError(f"depthwise conv needs c_in == c_out, got {c_in} and {c_out}")
        groups = c_in if sig.op == "dwconv" else sig.groups
        if c_in % groups or c_out % groups:
            raise ValueError(f"grouped conv with {groups} groups needs c_in and c_out divisible by it, "
                             f"got {c_in} and {c_out}")
        parts = [nn.Conv2d(c_in, c_out, sig.kernel, sig.stride, sig.padding, sig.dilation, groups, sig.bias)]
        if sig.bn:
            parts.append(nn.BatchNorm2d(c_out))
        shape = (1, c_in, *sig.in_hw)
    else:
        raise ValueError(f"unsupported op {sig.op!r} in signature {sig.key()}")
    if sig.act == "relu":
        parts.append(nn.ReLU())
    elif sig.act == "relu6":
        parts.append(nn.ReLU6())
    return nn.Sequential(*parts).eval(), shape


def layer_model_bytes(sig: LayerSignature, c_in: int, c_out: int, runtime: str) -> bytes:
    """Exported single-layer model, from the on-disk cache when present."""
    fmt = runtime_format(runtime)
    key = hashlib.sha256(f"{CACHE_VERSION}|{torch.__version__}|{fmt}|{sig.key()}|{c_in}|{c_out}".encode())
    path = cache_dir() / "microbench" / f"{key.hexdigest()[:24]}.{fmt}"
    if path.is_file():
        return path.read_bytes()
    model, shape = build_layer_model(sig, c_in, c_out)
    data = export_model(model, shape, runtime)
    atomic_write(path, data, durable=False)  # a lost cache entry is exported again
    return data

