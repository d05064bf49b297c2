"""Options and helpers shared by several commands."""
from __future__ import annotations

from pathlib import Path

import typer

from edgeprune.errors import EdgepruneError

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


def check_metric(metric: str) -> None:
    """ValueError unless ``metric`` is latency or energy (checked before any slow work)."""
    from edgeprune.costmodel.dataset import METRIC_UNITS

    check_choice("--metric", metric, METRIC_UNITS)


def check_choice(option: str, value: str, choices) -> None:
    """ValueError unless ``value`` is one of ``choices`` (checked before any slow work)."""
    if value not in choices:
        raise ValueError(f"{option} must be one of {', '.join(sorted(choices))}, got {value!r}")


def check_runtime(runtime: str) -> None:
    """ValueError unless edgeprune can measure on ``runtime``."""
    from edgeprune.formats import runtime_format

    runtime_format(runtime)


def shape_option(text: str | None) -> str:
    """' --input-shape X' to repeat in a suggested command, or '' when none was given."""
    return f" --input-shape {text}" if text else ""


def check_runs(net, shape: tuple[int, ...], model: str) -> None:
    """EdgepruneError, saying which shape to give, when the model cannot run on an input of ``shape``."""
    import torch

    try:
        with torch.no_grad():
            net.eval()(torch.zeros(*shape))
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        own = _own_shape(model)
        hint = (f"give --input-shape as N,C,H,W; {model}'s own is {','.join(map(str, own))} (leave --input-shape "
                "out to use it)" if own else "give --input-shape as N,C,H,W, e.g. 1,3,32,32")
        raise EdgepruneError(f"{model} does not run on input shape {','.join(map(str, shape))}: {first}",
                             hint=hint) from exc


def _own_shape(model: str) -> tuple[int, ...] | None:
    """The input shape ``model`` builds with when none is given, or None when it needs one."""
    from edgeprune.models import build_model

    try:
        return tuple(build_model(model)[1])
    except (EdgepruneError, ValueError, TypeError, RuntimeError):
        return None


def load_model_and_space(model: str, weights: Path | None, input_shape: str | None):
    """Build the model (with weights) and its layer space."""
    from edgeprune.models import build_model
    from edgeprune.models.layer_space import build_layer_space

    net, shape = build_model(model, weights, input_shape=parse_shape(input_shape))
    if input_shape is not None:
        check_runs(net, shape, model)
    space = build_layer_space(net, shape)
    return net, shape, space
