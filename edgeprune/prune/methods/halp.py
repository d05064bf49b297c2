"""halp: latency-saliency knapsack steps with short-tunes between them (see prune/halp.py)."""
from __future__ import annotations

import dataclasses

from edgeprune.prune.halp import HalpSettings, prune_halp
from edgeprune.prune.methods import Context, PruningMethod, register


@register
class Halp(PruningMethod):
    """HALP (Shen et al., NeurIPS'22): keep the channels whose Taylor importance is worth their predicted cost."""

    name = "halp"
    help = "latency-saliency knapsack, step by step"
    settings = HalpSettings
    phase = "halp"

    def prepare(self, settings: HalpSettings, ctx: Context) -> HalpSettings:
        return dataclasses.replace(settings, epochs=ctx.prune_epochs, round_to=ctx.round_to, lr=ctx.lr)

    def _run(self, ctx, settings, target, start=None):
        tell = lambda r: ctx.say(f"halp step {r['step']}: predicted {r['predicted_cost']:.4g} {ctx.unit} "  # noqa: E731
                                 f"(cost model, target {r['target']:.4g})")
        return prune_halp(ctx.model, ctx.space, lambda ws: ctx.cost_model.predict(list(ws)), target, ctx.data,
                          settings, progress=tell, start=start, reporter=ctx.reporter)

    def select(self, ctx, settings, budget):
        return self._run(ctx, settings, budget)

    def reselect(self, ctx, settings, target, current, state):
        if target < current.predicted_cost:  # shrink: one more step on the pruned model; widen: again from dense
            return self._run(ctx, dataclasses.replace(settings, steps=1), target, start=(current, state))
        return self._run(ctx, settings, target)

    def pruning_steps(self, settings, steps_per_epoch):
        tune = (settings.steps - 1) * settings.steps_between(steps_per_epoch)
        return tune + settings.steps * settings.criterion_batches
