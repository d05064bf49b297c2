"""ECC: energy-constrained pruning by ADMM against a differentiable cost model (after Yang et al., CVPR'19)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn

from edgeprune.costmodel.model import CostModel
from edgeprune.costmodel.torch_cost import differentiable_cost
from edgeprune.models.layer_space import LayerSpace
from edgeprune.models.tracing import model_device
from edgeprune.progress import SILENT, Progress
from edgeprune.prune.budget import InfeasibleBudget
from edgeprune.structure.channel_slices import channel_norms, group_slices
from edgeprune.prune.importance import channel_importance, keep_top
from edgeprune.structure.physical import keep_floor
from edgeprune.prune.result import PruneResult
from edgeprune.train.objective import task_loss, to_device


MAX_ROUNDS = 40
MIN_ROUND_STEPS = 5
MIN_ADMM_STEPS = 60  # below this ADMM cannot move the weights towards the mask at all


@dataclass
class EccSettings:
    """ADMM on a training budget: ``epochs`` passes over the training data, split into rounds of SGD steps, each
    round followed by projection, width and dual updates. ``iters``/``steps`` fix the rounds explicitly."""

    epochs: float = 1.0
    iters: int | None = None
    steps: int | None = None
    lr: float = 0.01
    rho: float = 0.05  # weight of the ADMM consistency penalty, grown each round so the selection settles
    rho_growth: float = 1.15
    min_width: int = 1
    # Never keep fewer than this share of a group: the cost gradient alone happily cuts a residual stream to one
    # channel (cheap, but the network cannot recover from it within a short fine-tune).
    min_keep: float = field(default=0.2, metadata={
        "option": "--min-keep", "help": "Keep at least this share of every channel group."})
    round_to: int | None = None
    price_momentum: float = 0.8
    # What a channel is worth when widths are priced: "taylor" (first-order loss change |w·∂L/∂w| over the group,
    # comparable across groups) or "norm" (ADMM group norm ÷ the group's mean, which rates every group's average
    # channel alike and so cut the residual streams, whose channels cost most, to the min_keep floor).
    strength: str = "taylor"
    strength_batches: int = 4
    strength_every: int = 5  # rounds between re-ranking channels (a Taylor pass costs a few training steps)

    def __post_init__(self):
        if self.strength not in STRENGTHS:
            raise ValueError(f"ecc strength must be one of {STRENGTHS}, got {self.strength!r}")
        if not self.epochs > 0 or any(v is not None and v < 1 for v in (self.iters, self.steps)):
            raise ValueError(f"ecc needs epochs > 0 and iters/steps >= 1, got {self}")

    def rounds(self, steps_per_epoch: int) -> tuple[int, int]:
        """(rounds, SGD steps per round) for a training loader of ``steps_per_epoch`` batches."""
        if self.iters is not None and self.steps is not None:
            return self.iters, self.steps
        total = max(MIN_ADMM_STEPS, round(self.epochs * steps_per_epoch))
        iters = self.iters or min(MAX_ROUNDS, max(1, total // MIN_ROUND_STEPS))
        return iters, self.steps or max(1, total // iters)


STRENGTHS = ("taylor", "norm")


def _steps(space: LayerSpace, groups: list[str], s: EccSettings) -> list[int]:
    """Each group's width step: the round-to multiple and any grouped-conv chunking."""
    divisors, dense = space.divisors(), space.dense_widths()
    steps = [math.lcm(s.round_to or 1, divisors.get(g, 1)) for g in groups]
    return [step if dense[g] >= step else divisors.get(g, 1) for g, step in zip(groups, steps)]


def _lowest(dense: int, s: EccSettings) -> int:
    """The narrowest width ECC may give a group of ``dense`` channels."""
    return keep_floor(dense, s.min_keep, s.min_width)


def _round(widths: torch.Tensor, dense: list[int], s: EccSettings, steps: list[int]) -> list[int]:
    out = []
    for w, d, step in zip(widths.tolist(), dense, steps):
        w = max(_lowest(d, s), min(d, int(round(w))))
        if step > 1:
            w = min(d, max(step, step * math.ceil(w / step - 1e-9)))
        out.append(w)
    return out


def _batches(loader):
    while True:
        yield from loader


class _Admm:
    """ADMM state over the parameter slices of the prunable groups."""

    def __init__(self, model: nn.Module, space: LayerSpace, groups: list[str]):
        self.slices = group_slices(model, space)
        self.groups = groups
        self.divisors = space.divisors()
        self.params = {id(p): p for sl in self.slices.values() for p, _ in sl}
        self.U = {k: torch.zeros_like(p) for k, p in self.params.items()}
        self.Z = {k: p.detach().clone() for k, p in self.params.items()}

    def norms(self, g: str) -> torch.Tensor:
        shifted = {k: p.detach() + self.U[k] for k, p in self.params.items()}
        return channel_norms(self.slices[g], shifted)

    def project(self, widths: list[int]) -> float:
        """Z = W + U with each group's weakest channels zeroed; U += W − Z; returns the pruned share of W."""
        masks = {k: torch.ones_like(p) for k, p in self.params.items()}
        for g, w in zip(self.groups, widths):
            first, dim = self.slices[g][0]
            keep = torch.zeros(first.shape[dim], device=first.device)
            keep[self.top(g, w, self.norms(g))] = 1.0
            for p, dim in self.slices[g]:
                shape = [1] * p.dim()
                shape[dim] = -1
                masks[id(p)] = masks[id(p)] * keep.view(shape)
        outside = total = 0.0
        for k, p in self.params.items():
            shifted = p.detach() + self.U[k]
            self.Z[k] = shifted * masks[k]
            self.U[k] = shifted - self.Z[k]
            outside += float((p.detach() * (1 - masks[k])).pow(2).sum())
            total += float(p.detach().pow(2).sum())
        return outside / max(total, 1e-12)

    def top(self, g: str, w: int, norms: torch.Tensor) -> list[int]:
        """The ``w`` channels of group ``g`` with the largest norms (same positions in every conv-group chunk)."""
        return keep_top({g: norms.cpu().numpy()}, {g: w}, self.divisors)[g]

    def penalty(self) -> torch.Tensor:
        return sum((p - self.Z[k] + self.U[k]).pow(2).sum() for k, p in self.params.items())


def prune_ecc(model: nn.Module, space: LayerSpace, cost_model: CostModel, budget_abs: float, data,
              settings: EccSettings = EccSettings(),
              progress: Callable[[dict], None] | None = None, reporter: Progress = SILENT) -> PruneResult:
    """Train ``model`` in place under ADMM until the predicted cost at its real channel counts meets the budget;
    returns the widths and the channels to keep. ECC takes no importance criterion: it ranks channels by their ADMM
    group norms, the very channels its projection drives to zero before removal."""
    groups, cost = differentiable_cost(cost_model)
    dense = [space.dense_widths()[g] for g in groups]
    floor = float(cost_model.predict([{g: _lowest(d, settings) for g, d in zip(groups, dense)}])[0])
    if budget_abs < floor:
        raise InfeasibleBudget(f"ecc keeps at least {settings.min_keep:.0%} of every channel group, which costs "
                               f"{floor:.4g} (predicted) — above the budget {budget_abs:.4g}; lower min_keep "
                               "(--min-keep) or raise the budget")
    admm = _Admm(model, space, groups)
    device = model_device(model)
    steps = _steps(space, groups, settings)
    widths = torch.tensor(dense, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=0.9, weight_decay=5e-4)
    batches = _batches(data.train)
    iters, round_steps = settings.rounds(len(data.train))
    history, price, strengths = [], None, None
    reporter.start("ADMM", iters * round_steps)
    for it in range(iters):
        rho = settings.rho * settings.rho_growth ** it
        model.train()
        for _ in range(round_steps):
            x, target = next(batches)[:2]
            loss = task_loss(model(x.to(device)), to_device(target, device), getattr(data, "loss_fn", None))
            loss = loss + rho / 2 * admm.penalty()
            opt.zero_grad()
            loss.backward()
            opt.step()
            reporter.advance()
        # Width step: the cost model's gradient prices each group's channels; the budget multiplier y is the
        # dual variable of the cost constraint, set so the widths it implies meet the budget.
        widths.grad = None
        cost(widths).backward()
        fresh = widths.grad.detach().clamp(min=1e-12)
        # Smoothed: the gradient of a staircase-shaped cost jumps with the widths, which made them oscillate.
        price = fresh if price is None else settings.price_momentum * price + (1 - settings.price_momentum) * fresh
        if strengths is None or it % settings.strength_every == 0:
            strengths = _strengths(model, space, groups, settings, data, admm.norms)
        y, real = _dual_widths(strengths, price, cost_model, groups, dense, budget_abs, settings, steps)
        with torch.no_grad():
            widths.copy_(torch.tensor(real, dtype=widths.dtype))
        real_cost = float(cost_model.predict([dict(zip(groups, real))])[0])
        outside = admm.project(real)
        record = {"iter": it, "loss": loss.item(), "predicted_cost": real_cost, "budget": budget_abs,
                  "dual": y, "pruned_weight_share": outside, "widths": dict(zip(groups, real))}
        history.append(record)
        if progress:
            progress(record)
        if real_cost <= budget_abs and outside < 1e-3:
            break
    reporter.finish()
    return select_ecc(model, space, cost_model, dict(zip(groups, real)), budget_abs, data, settings, history,
                      slices=admm.slices)


def select_ecc(model: nn.Module, space: LayerSpace, cost_model: CostModel, widths: dict[str, int], budget_abs: float,
               data, settings: EccSettings = EccSettings(), history: list[dict] | None = None,
               slices: dict | None = None) -> PruneResult:
    """ECC's last step on an ADMM-trained ``model``: shrink ``widths`` until the predicted cost meets the budget
    (or, below it, grow them back while it still fits), keeping each group's largest-norm channels. Also how the
    closed loop re-selects ecc at another target."""
    slices = slices or group_slices(model, space)
    groups = list(widths)
    divisors = space.divisors()
    strengths = _strengths(model, space, groups, settings, data, lambda g: channel_norms(slices[g]))
    args = (dict(zip(groups, strengths)), cost_model, budget_abs, settings, dict(zip(groups, _steps(space, groups,
                                                                                                    settings))))
    if float(cost_model.predict([widths])[0]) > budget_abs:
        final = _meet_budget(dict(widths), *args)
    else:
        final = _grow_to_budget(dict(widths), *args)
    kept = {g: keep_top({g: channel_norms(slices[g]).cpu().numpy()}, {g: w}, divisors)[g] for g, w in final.items()}
    return PruneResult("ecc", final, kept, float(cost_model.predict([final])[0]), list(history or []))


def _strengths(model: nn.Module, space: LayerSpace, groups: list[str], s: EccSettings, data,
               norms: Callable[[str], torch.Tensor]) -> list[torch.Tensor]:
    """Each group's channel strengths (``s.strength``), strongest first."""
    if s.strength == "taylor":
        scores = channel_importance(model, space, "taylor", data, s.strength_batches)
        return [torch.sort(torch.from_numpy(scores[g]), descending=True).values for g in groups]
    return [torch.sort(n / n.mean().clamp(min=1e-12), descending=True).values.cpu() for n in map(norms, groups)]


def _dual_widths(strengths, price, cost_model, groups, dense, budget, s: EccSettings, steps: list[int]):
    """Smallest multiplier y whose widths (keep channels with strength ≥ y · price) meet the budget."""
    def widths_at(y: float) -> list[int]:
        raw = torch.tensor([float((st >= y * float(p)).sum()) for st, p in zip(strengths, price)])
        return _round(raw, dense, s, steps)

    def fits(y: float) -> bool:
        return float(cost_model.predict([dict(zip(groups, widths_at(y)))])[0]) <= budget

    lo, hi = -30.0, 30.0  # log multiplier range; widths only shrink as y grows
    if fits(math.exp(lo)):
        return math.exp(lo), widths_at(math.exp(lo))
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if fits(math.exp(mid)) else (mid, hi)
    return math.exp(hi), widths_at(math.exp(hi))


def _meet_budget(widths: dict[str, int], strengths: dict[str, torch.Tensor], cost_model: CostModel, budget: float,
                 s: EccSettings, steps: dict[str, int]) -> dict[str, int]:
    """If ADMM stopped above budget, remove the channels with the best cost saving per unit of strength (each
    group's strengths sorted strongest first)."""
    while float(cost_model.predict([widths])[0]) > budget:
        base = float(cost_model.predict([widths])[0])
        best, best_score = None, -1.0
        for g, w in widths.items():
            lower = (w - 1) // steps[g] * steps[g]  # the next width down on the grid (a dense width may be off it)
            if lower < max(1, _lowest(cost_model.dense_widths_[g], s)):
                continue
            trial = {**widths, g: lower}
            saving = base - float(cost_model.predict([trial])[0])
            score = saving / float(strengths[g][lower:w].sum() + 1e-12)
            if score > best_score:
                best, best_score = (g, lower), score
        if best is None:
            break  # the floor: nothing left to remove; the caller checked feasibility beforehand
        widths = {**widths, best[0]: best[1]}
    return widths


def _grow_to_budget(widths: dict[str, int], strengths: dict[str, torch.Tensor], cost_model: CostModel, budget: float,
                    s: EccSettings, steps: dict[str, int]) -> dict[str, int]:
    """Below budget: add back the channels with the most strength per unit of cost while the prediction fits."""
    dense = cost_model.dense_widths_
    while True:
        base = float(cost_model.predict([widths])[0])
        best, best_score = None, -1.0
        for g, w in widths.items():
            step = min(steps[g], dense[g] - w)
            if step <= 0:
                continue
            trial = {**widths, g: w + step}
            cost = float(cost_model.predict([trial])[0])
            if cost > budget:
                continue
            score = float(strengths[g][w:w + step].sum()) / max(cost - base, 1e-12)
            if score > best_score:
                best, best_score = (g, w + step), score
        if best is None:
            return widths
        widths = {**widths, best[0]: best[1]}
