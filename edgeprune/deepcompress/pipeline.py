"""The three-stage pipeline: prune + retrain, weight sharing + centroid fine-tuning, Huffman encoding."""
from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from edgeprune.data.bundle import DataBundle
from edgeprune.files import atomic_open
from edgeprune.train import evaluate
from edgeprune.progress import SILENT, Progress

from .codec import decode, encode, stage_sizes
from .prune import magnitude_masks, retrain, sparsity_of
from .quantize import finetune_centroids, quantize_model
from .speed import speed_report

ENCODED_NAME = "deepcompressed.pt"


def _check_settings(prune: float, bits: dict[str, int], epochs: dict[str, int], rates: dict[str, float]) -> None:
    """ValueError naming the first setting out of its range, before any training."""
    if not 0 <= prune < 1:
        raise ValueError(f"--prune must be in [0, 1), got {prune}")
    for name, value in bits.items():
        if not 1 <= value <= 16:
            raise ValueError(f"--{name} must be in 1..16, got {value}")
    for name, value in epochs.items():
        if not value >= 0:
            raise ValueError(f"--{name} must be >= 0, got {value}")
    for name, value in rates.items():
        if not value > 0:
            raise ValueError(f"--{name} must be > 0, got {value}")


def deep_compress(model: nn.Module, data: DataBundle, prune: float = 0.9, conv_bits: int = 8, fc_bits: int = 5,
                  epochs: int = 2, centroid_epochs: int = 1, lr: float = 0.05, centroid_lr: float = 1e-4,
                  conv_pos_bits: int = 8, fc_pos_bits: int = 5, input_shape: tuple[int, ...] | None = None,
                  measure: bool = True, out: str | Path | None = None,
                  say: Callable[[str], None] = lambda _m: None,
                  reporter: Progress = SILENT) -> tuple[dict, dict]:
    """Run Deep Compression on a copy of `model`; return (summary, encoded dict); save the encoding under `out`."""
    _check_settings(prune, {"conv-bits": conv_bits, "fc-bits": fc_bits},
                    {"epochs": epochs, "centroid-epochs": centroid_epochs}, {"lr": lr, "centroid-lr": centroid_lr})
    dense = copy.deepcopy(model).eval()
    net = copy.deepcopy(model)
    acc = {"dense": evaluate(dense, data.val)["accuracy"]}
    say(f"pruning {prune:.0%} of every conv/linear layer by magnitude, retraining {epochs} epoch(s)")
    masks = magnitude_masks(net, prune)
    acc["pruned_retrained"] = retrain(net, masks, data, epochs, lr=lr, reporter=reporter)["accuracy"]
    pruned = copy.deepcopy(net).eval()
    say(f"k-means weight sharing (conv {2 ** conv_bits}, fc {2 ** fc_bits} clusters), "
        f"centroid fine-tuning {centroid_epochs} epoch(s)")
    books = quantize_model(net, masks, conv_bits, fc_bits)
    acc["quantized"] = evaluate(net, data.val)["accuracy"]
    if centroid_epochs > 0:
        acc["quantized_finetuned"] = finetune_centroids(net, books, data, centroid_epochs, lr=centroid_lr,
                                                       reporter=reporter)["accuracy"]
    enc = encode(net, books, conv_pos_bits, fc_pos_bits)
    decoded = copy.deepcopy(net)
    decoded.load_state_dict(decode(enc), strict=True)
    acc["decoded"] = evaluate(decoded.eval(), data.val)["accuracy"]
    exact = all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), decoded.state_dict().values()))
    summary = {"prune": prune, "conv_bits": conv_bits, "fc_bits": fc_bits, "conv_pos_bits": conv_pos_bits,
               "fc_pos_bits": fc_pos_bits, "sparsity": sparsity_of(net), "accuracy": acc,
               "decoded_bit_exact": exact, "stages": stage_sizes(enc)}
    if measure:
        shape = tuple(input_shape or data.input_shape)
        say("measuring dense vs pruned latency in onnxruntime")
        summary["speed"] = speed_report(dense, pruned, (1, *shape[1:]))
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        path = Path(out) / ENCODED_NAME
        with atomic_open(path) as f:
            torch.save(enc, f)
        summary["artifact"] = str(path)
        summary["artifact_bytes"] = path.stat().st_size
    return summary, enc
