"""netadapt: greedily shrink the group whose short-tuned accuracy holds up best (see prune/netadapt.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

from edgeprune.prune.methods import PruningMethod, register
from edgeprune.prune.netadapt import NetAdaptIncomplete, netadapt_search


@dataclass
class NetAdaptSettings:
    """Short-tune steps per proposal, the share of cost each step removes, and the width floor."""

    tune_steps: int = 50
    step: float = 0.05
    min_keep: float = field(default=0.2, metadata={  # as ecc's min_keep: no group below this share of dense
        "option": "--min-keep", "help": "Keep at least this share of every channel group."})


@register
class NetAdapt(PruningMethod):
    """NetAdapt (Yang et al., ECCV'18) priced by the fitted cost model."""

    name = "netadapt"
    help = "greedy one-group steps, short-tuned"
    settings = NetAdaptSettings

    def _search(self, ctx, s: NetAdaptSettings, target: float, start=None, on_step=None):
        # NetAdapt short-tunes between steps: keep those weights rather than re-pruning the dense model.
        def progress(r):
            ctx.say(f"netadapt step {r['iter']}: {r['group']} → {r['width']}, predicted {r['cost']:.4g} {ctx.unit} "
                    f"(target {r['target']:.4g}), held-out accuracy {r['accuracy']:.2%}")
            if on_step is not None:
                on_step(r)

        return netadapt_search(ctx.model, ctx.space, ctx.cost, target, ctx.data, round_to=ctx.round_to,
                               short_tune_steps=s.tune_steps, step_fraction=s.step, start=start,
                               min_keep=s.min_keep, **ctx.ranking(), progress=progress)

    def select(self, ctx, settings, budget):
        # The number of greedy steps is not known in advance: the bar shows the share of the predicted cost
        # reduction done so far (dense -> budget), which is what the ETA should extrapolate.
        dense = ctx.cost(ctx.space.dense_widths())
        shown = {"pct": 0}

        def on_step(r):
            pct = min(100, max(0, int(100 * (dense - r["cost"]) / max(dense - budget, 1e-12))))
            ctx.reporter.advance(pct - shown["pct"])
            shown["pct"] = pct

        ctx.reporter.start("NetAdapt (% of the cost reduction to the budget)", 100)
        try:
            return self._search(ctx, settings, budget, on_step=on_step)
        finally:
            ctx.reporter.finish()

    def reselect(self, ctx, settings, target, current, state):
        if target >= current.predicted_cost:
            return None  # netadapt only shrinks after its search
        try:
            return self._search(ctx, settings, target, start=(current, state))
        except NetAdaptIncomplete as stopped:
            return stopped.result, stopped.model
