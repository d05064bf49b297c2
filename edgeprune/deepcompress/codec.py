"""Encode a weight-shared model as Huffman-coded CSR and decode it back bit-exactly; size at each stage."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .csr import from_relative, to_relative
from .huffman import huffman_decode, huffman_encode
from .prune import prunable
from .quantize import Codebook

FORMAT = "edgeprune-deepcompress/1"


def _as_u8(blob: bytes) -> torch.Tensor:
    """Bytes as a uint8 tensor (weights_only-loadable)."""
    return torch.frombuffer(bytearray(blob), dtype=torch.uint8).clone() if blob else torch.zeros(0, dtype=torch.uint8)


def _encode_layer(book: Codebook, pos_bits: int) -> dict:
    """One layer: codebook, Huffman-coded cluster indices and Huffman-coded relative positions."""
    k = book.centroids.numel()
    positions = torch.nonzero(book.mask.flatten()).flatten().numpy()
    gaps, syms = to_relative(positions, book.labels.numpy(), pos_bits, pad_symbol=k)
    return {"shape": list(book.mask.shape), "bits": book.bits, "pos_bits": pos_bits,
            "centroids": book.centroids.float().clone(), "n_entries": int(gaps.size), "n_pad": int((syms == k).sum()),
            "index_huffman": _as_u8(huffman_encode(syms)), "pos_huffman": _as_u8(huffman_encode(gaps))}


def encode(model: nn.Module, books: dict[str, Codebook], conv_pos_bits: int = 8, fc_pos_bits: int = 5) -> dict:
    """Plain dict of tensors/ints (torch.save-able, weights_only-loadable) holding the whole compressed model."""
    layers = prunable(model)
    enc = {}
    for name, book in books.items():
        pos_bits = fc_pos_bits if isinstance(layers[name], nn.Linear) else conv_pos_bits
        if not 1 <= pos_bits <= 16:
            raise ValueError(f"position bits must be in 1..16, got {pos_bits}")
        enc[name + ".weight"] = _encode_layer(book, pos_bits)
    other = {k: v.detach().clone() for k, v in model.state_dict().items() if k not in enc}
    return {"format": FORMAT, "layers": enc, "other": other}


def _decode_layer(e: dict) -> torch.Tensor:
    """Dense float32 weight tensor of one encoded layer."""
    k = e["centroids"].numel()
    syms = np.asarray(huffman_decode(e["index_huffman"].numpy().tobytes()), dtype=np.int64)
    gaps = np.asarray(huffman_decode(e["pos_huffman"].numpy().tobytes()), dtype=np.int64)
    if syms.size != gaps.size:
        raise ValueError("index and position streams differ in length")
    pos, labels = from_relative(gaps, syms, pad_symbol=k)
    w = torch.zeros(math.prod(e["shape"]), dtype=torch.float32)
    w[torch.from_numpy(pos)] = e["centroids"][torch.from_numpy(labels)].to(torch.float32)
    return w.view(e["shape"])


def decode(enc: dict) -> dict[str, torch.Tensor]:
    """State dict with the shared weights restored exactly."""
    if enc.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} blob (format={enc.get('format')!r})")
    state = {k: v.clone() for k, v in enc["other"].items()}
    state.update({k: _decode_layer(e) for k, e in enc["layers"].items()})
    return state


def stage_sizes(enc: dict) -> list[dict]:
    """Bytes at each stage (dense fp32 → pruned CSR → quantized → Huffman) with the ratio to dense."""
    other = sum(t.numel() * t.element_size() for t in enc["other"].values())
    dense = pruned = quant = huff = 0
    for e in enc["layers"].values():
        n, k = e["n_entries"], e["centroids"].numel()
        idx_bits = max(1, math.ceil(math.log2(k + 1))) if e["n_pad"] else e["bits"]
        dense += math.prod(e["shape"]) * 4
        pruned += math.ceil(n * (32 + e["pos_bits"]) / 8)
        quant += math.ceil(n * (idx_bits + e["pos_bits"]) / 8) + k * 4
        huff += e["index_huffman"].numel() + e["pos_huffman"].numel() + k * 4
    rows = [("dense fp32", dense), ("pruned CSR (fp32 values + relative indices)", pruned),
            ("quantized (cluster indices + codebook)", quant), ("Huffman-coded", huff)]
    return [{"stage": s, "weight_bytes": b, "other_bytes": other, "bytes": b + other,
             "ratio": (dense + other) / (b + other)} for s, b in rows]
