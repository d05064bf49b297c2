"""ecc: ADMM against the differentiable cost model, then widths priced by channel strength (see prune/ecc.py)."""
from __future__ import annotations

import dataclasses

from edgeprune.prune.ecc import EccSettings, prune_ecc, select_ecc
from edgeprune.prune.methods import Context, PruningMethod, register


@register
class Ecc(PruningMethod):
    """Energy-constrained compression (Yang et al., CVPR'19) against this device's fitted cost model."""

    name = "ecc"
    help = "ADMM against the fitted cost model (default)"
    settings = EccSettings
    phase = "admm"

    def prepare(self, settings: EccSettings, ctx: Context) -> EccSettings:
        return dataclasses.replace(settings, epochs=ctx.prune_epochs, round_to=settings.round_to or ctx.round_to)

    def criterion(self, asked, schedule):
        if schedule != "oneshot":
            return asked or "l1"
        if asked is not None:
            raise ValueError("ecc ranks channels by its ADMM group norms; a criterion applies to ecc only with "
                             "schedule iterative or agp")
        return "admm-norm"

    def select(self, ctx, settings, budget):
        tell = lambda r: ctx.say(f"ecc round {r['iter']}: predicted {r['predicted_cost']:.4g} {ctx.unit}, "  # noqa: E731
                                 f"off-mask weight {r['pruned_weight_share']:.2%}")
        return prune_ecc(ctx.model, ctx.space, ctx.cost_model, budget, ctx.data, settings, progress=tell,
                         reporter=ctx.reporter), None

    def reselect(self, ctx, settings, target, current, state):
        return select_ecc(ctx.model, ctx.space, ctx.cost_model, current.widths, target, ctx.data, settings,
                          current.history), None

    def pruning_steps(self, settings, steps_per_epoch):
        iters, steps = settings.rounds(steps_per_epoch)
        return iters * steps + (iters // settings.strength_every + 2) * settings.strength_batches
