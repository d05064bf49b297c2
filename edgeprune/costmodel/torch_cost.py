"""The cost model as a differentiable torch function of continuous group widths (for ADMM)."""
from __future__ import annotations

from collections.abc import Collection
from typing import Callable

import torch

from edgeprune.costmodel.features import FeatureSpec
from edgeprune.costmodel.model import CostModel


def _smooth_features(spec: FeatureSpec, c_in: torch.Tensor, c_out: torch.Tensor) -> torch.Tensor:
    """Features with padding replaced by its expectation and the regime switch by its probability."""
    pi = c_in + (spec.block_in - 1) / 2
    po = c_out + (spec.block_out - 1) / 2
    one = torch.ones_like(pi)
    base = torch.stack([pi * po, pi, po, one])
    if not spec.split:
        return base
    p_off = 1 - (1 / spec.align_in) * (1 / spec.align_out)
    return torch.cat([base, base * p_off])


def differentiable_cost(model: CostModel, removed: Collection[str] = ()
                        ) -> tuple[list[str], Callable[[torch.Tensor], torch.Tensor]]:
    """(group names, f) where f(widths) is the model's exact prediction at the rounded widths in value and a
    smooth surrogate in gradient (straight-through), so ADMM sees the staircase but still gets a direction.
    Layers named in ``removed`` contribute nothing, as in ``CostModel.predict``."""
    removed = model.check_removed(removed)
    groups = sorted(model.dense_widths_)
    index = {g: i for i, g in enumerate(groups)}
    dims = [(key, layer) for name, key, layer in model.layers_ if name not in removed]

    def layer_width(w: torch.Tensor, group: str | None, dense: int) -> torch.Tensor:
        return w[index[group]] if group in index else w.new_tensor(float(dense))

    def surrogate(w: torch.Tensor) -> torch.Tensor:
        per_sig: dict[str, torch.Tensor] = {}
        prior = w.new_zeros(())
        for key, layer in dims:
            if layer.signature.op == "dwconv":
                c_in = c_out = layer_width(w, layer.out_group, layer.c_out)
            else:
                c_in = layer_width(w, layer.in_group, layer.c_in)
                c_out = layer_width(w, layer.out_group, layer.c_out)
            feats = _smooth_features(model.spec_, c_in, c_out)
            per_sig[key] = per_sig.get(key, 0) + feats
            if model.layer_models_:
                prior = prior + feats @ w.new_tensor(model.layer_models_[key].coef_)
        if model.correction_ is None:
            return prior * model.scale_ + model.offset_
        keys = sorted({k for _, k, _ in model.layers_})
        n = model.spec_.n_features
        phi = torch.cat([per_sig[k] if k in per_sig else w.new_zeros(n) for k in keys])
        if model.source == "both":
            phi = torch.cat([(prior * model.prior_scale_).reshape(1), phi])
        return phi @ w.new_tensor(model.correction_["coef"]) + model.correction_["intercept"]

    def cost(w: torch.Tensor) -> torch.Tensor:
        if w.shape != (len(groups),):
            raise ValueError(f"expected {len(groups)} widths (groups {groups}), got shape {tuple(w.shape)}")
        smooth = surrogate(w)
        rounded = w.detach().round().clamp(min=1)
        exact = model.predict([{g: int(v) for g, v in zip(groups, rounded.tolist())}], removed)[0]
        return smooth + (w.new_tensor(float(exact)) - smooth).detach()

    return groups, cost
