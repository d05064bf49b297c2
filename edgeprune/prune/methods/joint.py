"""joint: polarization sparse training, then blocks and channels removed by γ to the budget (prune/joint/)."""
from __future__ import annotations

from edgeprune.prune.joint.method import describe, floor_layers, joint_summary, prune_joint, replan
from edgeprune.prune.joint.settings import JointSettings
from edgeprune.prune.methods import PruningMethod, register


@register
class Joint(PruningMethod):
    """Joint layer + channel pruning by BatchNorm scaling factors."""

    name = "joint"
    help = "residual blocks and channels by BN γ after sparse training"
    settings = JointSettings

    def criterion(self, asked, schedule):
        if asked is not None or schedule != "oneshot":
            raise ValueError("joint ranks channels and blocks by BN scaling factors after sparse training; it "
                             "takes no criterion and only schedule oneshot")
        return "bn-gamma"

    def select(self, ctx, settings, budget):
        checkpoints = ctx.work_dir / "sparse-checkpoints" if ctx.work_dir is not None else None
        return prune_joint(ctx.model, ctx.space, ctx.cost_model, budget, ctx.data, settings, round_to=ctx.round_to,
                           checkpoint_dir=checkpoints, progress=lambda r: ctx.say(describe(r)),
                           reporter=ctx.reporter), None

    def reselect(self, ctx, settings, target, current, state):
        return replan(current, ctx.space, target), None

    def floor_layers(self, ctx, settings):
        return floor_layers(ctx.model, ctx.space, settings)

    def summary(self, result, space):
        return joint_summary(result, space)
