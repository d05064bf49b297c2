"""``edgeprune layers``: the layer space of a model (what calibration measures and pruning changes)."""
from __future__ import annotations

from pathlib import Path

from rich.table import Table

from edgeprune.cli.common import JsonOpt, ModelOpt, ShapeOpt, WeightsOpt, load_model_and_space
from edgeprune.cli.output import Output


def layers_command(model: str = ModelOpt, weights: Path = WeightsOpt, input_shape: str = ShapeOpt,
                   as_json: bool = JsonOpt):
    """List every conv/linear layer with its signature, widths and coupled channel groups."""
    out = Output(as_json)
    _, shape, space = load_model_and_space(model, weights, input_shape)
    out.emit({"model": model, **space.to_dict()})
    table = Table("layer", "op", "c_in", "c_out", "kernel", "stride", "in H×W", "in group", "out group",
                  title=f"{model} at input {tuple(shape)}")
    for l in space.layers:
        s = l.signature
        table.add_row(l.name, s.op, str(l.c_in), str(l.c_out), f"{s.kernel[0]}×{s.kernel[1]}",
                      str(s.stride[0]), f"{s.in_hw[0]}×{s.in_hw[1]}", l.in_group or "fixed",
                      l.out_group or "fixed")
    out.print(table)
    groups = Table("group", "width", "prunable", "members / reason", title="channel groups")
    for g in space.groups:
        groups.add_row(g.name, str(g.width), "yes" if g.prunable else "no",
                       ", ".join(g.members) if g.prunable else g.reason)
    out.print(groups)
