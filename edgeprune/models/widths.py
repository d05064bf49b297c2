"""Per-group widths of a (possibly pruned) checkpoint, read from its tensor shapes."""
from __future__ import annotations

from pathlib import Path

from edgeprune.models.layer_space import LayerSpace
from edgeprune.models.weights import WeightsError, read_state_dict


def widths_from_checkpoint(space: LayerSpace, path: str | Path) -> dict[str, int]:
    """Width of each prunable group = out-channels of the group's root layer in the checkpoint."""
    state = read_state_dict(path)
    widths = {}
    for group in space.prunable_groups:
        module = group.name.rsplit(":", 1)[0]
        weight = state.get(f"{module}.weight")
        if weight is None:
            raise WeightsError(f"{path} has no tensor {module}.weight; is it a checkpoint of this model?")
        if not 1 <= weight.shape[0] <= group.width:
            raise WeightsError(f"{path}: {module}.weight has {weight.shape[0]} output channels, outside "
                               f"1..{group.width} for this model")
        widths[group.name] = int(weight.shape[0])
    return widths


def parse_widths(text: str) -> dict[str, int]:
    """'group=12,other=8' or a JSON object → widths."""
    import json

    text = text.strip()
    try:
        if text.startswith("{"):
            return {str(k): int(v) for k, v in json.loads(text).items()}
        return {k.strip(): int(v) for k, v in (part.split("=", 1) for part in text.split(",") if part.strip())}
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"--widths must be JSON or group=width pairs separated by commas, got {text!r}") from exc
