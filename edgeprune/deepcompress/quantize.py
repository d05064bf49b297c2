"""Per-layer k-means weight sharing with linear initialisation, and centroid fine-tuning."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeprune.data.bundle import DataBundle
from edgeprune.train import evaluate
from edgeprune.progress import SILENT, Progress

from .prune import prunable


@dataclass
class Codebook:
    """One layer's shared weights: centroids, the keep-mask and the cluster label of each kept weight."""

    centroids: torch.Tensor  # float32 (k,)
    labels: torch.Tensor  # int64 (n_kept,), in flattened (row-major) order of the kept positions
    mask: torch.Tensor  # bool, weight shape
    bits: int


def linear_init(values: np.ndarray, k: int) -> np.ndarray:
    """k centroids evenly spaced between min and max of `values`."""
    if values.size == 0:
        return np.zeros(k, dtype=np.float64)
    return np.linspace(float(values.min()), float(values.max()), k)


def assign(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid for each value (ties to the lower index; centroids need not be sorted)."""
    order = np.argsort(centroids, kind="stable")
    c = centroids[order]
    mids = (c[1:] + c[:-1]) / 2
    return order[np.searchsorted(mids, values, side="left")]


def kmeans_1d(values: np.ndarray, k: int, iters: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means on scalars from linear initialisation; empty clusters keep their centroid."""
    values = np.asarray(values, dtype=np.float64)
    cent = linear_init(values, k)
    labels = np.zeros(values.size, dtype=np.int64)
    for _ in range(iters):
        labels = assign(values, cent)
        sums = np.bincount(labels, weights=values, minlength=k)
        counts = np.bincount(labels, minlength=k)
        new = np.where(counts > 0, sums / np.maximum(counts, 1), cent)
        if np.allclose(new, cent, rtol=0, atol=0):
            break
        cent = new
    if values.size:
        labels = assign(values, cent)
    return cent, labels


def layer_bits(layer: nn.Module, conv_bits: int, fc_bits: int) -> int:
    """Bits of the cluster index for this layer type."""
    return fc_bits if isinstance(layer, nn.Linear) else conv_bits


@torch.no_grad()
def write_shared(layer: nn.Module, book: Codebook) -> None:
    """Set the layer's weights to centroids[labels] at kept positions, zero elsewhere."""
    w = torch.zeros(book.mask.numel(), dtype=layer.weight.dtype)
    w[book.mask.flatten()] = book.centroids[book.labels].to(w.dtype)
    layer.weight.copy_(w.view_as(layer.weight))


def quantize_model(model: nn.Module, masks: dict[str, torch.Tensor], conv_bits: int = 8, fc_bits: int = 5,
                   iters: int = 10) -> dict[str, Codebook]:
    """Share weights in every masked layer (2**bits clusters of its kept weights); weights rewritten in place."""
    books = {}
    layers = prunable(model)
    for name, keep in masks.items():
        layer = layers[name]
        bits = layer_bits(layer, conv_bits, fc_bits)
        if not 1 <= bits <= 16:
            raise ValueError(f"index bits must be in 1..16, got {bits}")
        vals = layer.weight.detach().flatten()[keep.flatten()].double().numpy()
        cent, labels = kmeans_1d(vals, 2 ** bits, iters)
        books[name] = Codebook(torch.from_numpy(cent).float(), torch.from_numpy(labels), keep.clone(), bits)
        write_shared(layer, books[name])
    return books


def finetune_centroids(model: nn.Module, books: dict[str, Codebook], data: DataBundle, epochs: int,
                       lr: float = 1e-3, reporter: Progress = SILENT) -> dict:
    """Train centroids with the summed gradient of their cluster (weights stay tied) and other params by SGD."""
    layers = prunable(model)
    shared = {id(layers[n].weight) for n in books}
    others = [p for p in model.parameters() if id(p) not in shared and p.requires_grad]
    opt = torch.optim.SGD(others, lr=lr, momentum=0.9) if others else None
    reporter.start("centroid fine-tuning", epochs * len(data.train))
    for _ in range(epochs):
        model.train()
        for x, y, *_ in data.train:
            reporter.advance()
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            with torch.no_grad():
                for name, book in books.items():
                    g = layers[name].weight.grad.flatten()[book.mask.flatten()].float()
                    grad = torch.zeros_like(book.centroids).index_add_(0, book.labels, g)
                    book.centroids -= lr * grad
                    write_shared(layers[name], book)
            if opt is not None:
                opt.step()
    reporter.finish()
    model.eval()
    return evaluate(model, data.val)
