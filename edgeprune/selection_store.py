"""The structure a compress run selected, saved before fine-tuning so an interrupted run resumes after it."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

from edgeprune.errors import EdgepruneError
from edgeprune.prune.artifact import load_compressed, save_compressed
from edgeprune.prune.closed_loop import Corrected
from edgeprune.prune.result import PruneResult

SELECTION = "selection"


def config_digest(cfg, identity: str = "") -> str:
    """A digest of everything in a compress config that shapes the selection (fine-tuning settings included), and
    of ``identity`` (the inputs given as objects rather than specs); not of ``out``, so a moved folder resumes."""
    fields = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "out"}
    text = json.dumps(fields, sort_keys=True, default=str) + identity
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_selection(out: Path, model, spec: str, shape, loop: Corrected, digest: str, timings: dict) -> None:
    """Write the selected, channel-removed model and how it was chosen under ``out/selection``."""
    r = loop.result
    meta = {"config_digest": digest, "timings_s": timings,
            "result": {"method": r.method, "widths": r.widths, "predicted_cost": r.predicted_cost,
                       "history": r.history},
            "closed_loop": {"rounds": loop.rounds, "measured": loop.measured, "within_budget": loop.within_budget,
                            "stopped": loop.stopped}}
    save_compressed(out / SELECTION, model, spec, shape, r.kept, meta, blocks_removed=r.blocks_removed)


def load_selection(out: Path, digest: str, base=None):
    """(model, Corrected, timings) of a selection saved by a run with the same config, else None; a selection or
    fine-tuning checkpoints from another config are removed (they would be resumed into another structure).
    ``base``: the dense nn.Module to rebuild from when the model was given as an object, not a spec."""
    where = out / SELECTION
    if where.is_dir():
        try:
            model, info = load_compressed(where, base=base)
        except EdgepruneError:
            model, info = None, {}
        meta = info.get("meta") or {}
        if model is not None and meta.get("config_digest") == digest:
            res, cl = meta["result"], meta["closed_loop"]
            result = PruneResult(res["method"], res["widths"], info["kept"], res["predicted_cost"], res["history"],
                                 info["blocks_removed"])
            loop = Corrected(result, None, cl["measured"], cl["within_budget"], cl["rounds"], cl["stopped"])
            return model, loop, meta.get("timings_s", {})
    shutil.rmtree(where, ignore_errors=True)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return None
