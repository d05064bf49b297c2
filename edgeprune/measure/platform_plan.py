"""Plans for fitting a platform model: random networks from several families, and single-op micro-benchmarks."""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import torch
from torch import nn

from edgeprune.models import build_model
from edgeprune.models.cellnet import random_arch
from edgeprune.models.layer_space import LayerSpace, build_layer_space
from edgeprune.models.shufflenet import random_shufflenet_config
from edgeprune.tables.store import canonical

FAMILIES = ("cell", "resnet", "mobilenetv2", "shufflenet")


@dataclass(frozen=True)
class NetworkSpec:
    """A network anyone can rebuild: zoo model, builder keyword arguments, per-group widths."""

    family: str
    model: str
    kwargs: dict = field(default_factory=dict)
    widths: dict = field(default_factory=dict)
    input_shape: tuple = (1, 3, 32, 32)

    def key(self) -> str:
        return canonical([self.model, self.kwargs, self.widths, list(self.input_shape)])

    def to_dict(self) -> dict:
        return {**asdict(self), "input_shape": list(self.input_shape)}

    @classmethod
    def from_dict(cls, d: dict) -> "NetworkSpec":
        return cls(d["family"], d["model"], d.get("kwargs") or {}, d.get("widths") or {},
                   tuple(d.get("input_shape") or (1, 3, 32, 32)))


@lru_cache(maxsize=8)
def _dense(model: str, kwargs_json: str) -> tuple[nn.Module, LayerSpace]:
    import json

    net, shape = build_model(model, **json.loads(kwargs_json))
    return net, build_layer_space(net, shape)


def build_network(spec: NetworkSpec) -> tuple[nn.Module, tuple[int, ...]]:
    """The eval-mode module of ``spec`` and its input shape (width variants physically narrowed)."""
    from edgeprune.measure.variants import build_variant

    if not spec.widths:
        torch.manual_seed(0)
        net, shape = build_model(spec.model, **spec.kwargs)
        return net.eval(), tuple(shape)
    net, space = _dense(spec.model, canonical(spec.kwargs))
    return build_variant(net, space, spec.widths), spec.input_shape


def random_network(family: str, rng: random.Random) -> NetworkSpec:
    """One random member of ``family``: a cell, random widths of ResNet-20/56 or MobileNetV2, a ShuffleNet config."""
    from edgeprune.measure.variants import design_variant

    if family == "cell":
        return NetworkSpec(family, "cellnet", {"arch": random_arch(rng)})
    if family == "shufflenet":
        return NetworkSpec(family, "shufflenet", random_shufflenet_config(rng))
    if family in ("resnet", "mobilenetv2"):
        model = rng.choice(("resnet20", "resnet56")) if family == "resnet" else "mobilenetv2"
        _, space = _dense(model, canonical({}))
        return NetworkSpec(family, model, {}, design_variant(space, rng, 0.2 if rng.random() < 0.75 else 0.05))
    raise ValueError(f"unknown network family {family!r}; choose from {FAMILIES}")


def plan_ops(points: int, seed: int = 0) -> list[NetworkSpec]:
    """``points`` single-op micro-benchmarks of every op kind (sizes drawn like the layer tables' points)."""
    from edgeprune.models.opbench import OPS, random_op_point, single_op

    plan = []
    for op in OPS:
        for i in range(points):
            kw = random_op_point(op, random.Random(f"{seed}|op|{op}|{i}"))
            plan.append(NetworkSpec("ops", "single_op", kw, {}, tuple(single_op(**kw)[1])))
    return plan


def plan_networks(count: int, seed: int = 0, families: tuple[str, ...] = FAMILIES) -> list[NetworkSpec]:
    """``count`` distinct random networks, the families taking turns (a cut-short run still covers them all)."""
    plan: list[NetworkSpec] = []
    seen: set[str] = set()
    for i in range(count):
        family = families[i % len(families)]
        for attempt in range(50):
            spec = random_network(family, random.Random(f"{seed}|{family}|{i}|{attempt}"))
            if spec.key() not in seen:
                break
        seen.add(spec.key())
        plan.append(spec)
    return plan
