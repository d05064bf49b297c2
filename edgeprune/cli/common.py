"""Options and helpers shared by several commands."""
from __future__ import annotations

from pathlib import Path

import typer

from edgeprune.models import build_model
from edgeprune.models.layer_space import LayerSpace, build_layer_space

JsonOpt = typer.Option(False, "--json", help="Print exactly one JSON object on stdout.")
ModelOpt = typer.Option("demo_cnn", "--model", "-m", help="Zoo name (resnet20, mobilenetv2, demo_cnn, ...) "
                        "or path/to/file.py:build_fn.")
WeightsOpt = typer.Option(None, "--weights", help="State dict / checkpoint to load into the model.")
ShapeOpt = typer.Option(None, "--input-shape", help="Input shape N,C,H,W (default: the model's own).")


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """'1,3,32,32' → (1, 3, 32, 32)."""
    if text is None:
        return None
    try:
        shape = tuple(int(p) for p in text.replace("x", ",").split(",") if p.strip())
    except ValueError:
        raise ValueError(f"--input-shape must be integers like 1,3,32,32, got {text!r}") from None
    if not shape or any(d < 1 for d in shape):
        raise ValueError(f"--input-shape must be positive integers, got {text!r}")
    return shape


def load_model_and_space(model: str, weights: Path | None, input_shape: str | None):
    """Build the model (with weights) and its layer space."""
    net, shape = build_model(model, weights, input_shape=parse_shape(input_shape))
    space: LayerSpace = build_layer_space(net, shape)
    return net, shape, space
