"""The pruning-method registry: one protocol every method implements, each method a module registering itself.

``compress``, the CLI's ``compress`` options and ``--json`` are built from this registry, so a method's setting can
no longer be dropped on its way from the command line: every field of a method's settings dataclass that carries
``metadata={"option": "--flag", "help": ...}`` becomes that CLI option.
"""
from __future__ import annotations

import dataclasses
import importlib
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from edgeprune.progress import SILENT, Progress
from edgeprune.prune.result import PruneResult

BUILTIN = ("ecc", "halp", "netadapt", "uniform", "global_magnitude", "joint")  # modules in this package
_REGISTRY: dict[str, PruningMethod] = {}


@dataclass
class NoSettings:
    """A method without settings of its own (it uses only the shared ones: round-to, criterion)."""


@dataclass
class Context:
    """What every method selects with: the working model (methods may train it in place), its layer space, the
    fitted cost model, the data, and the settings shared by all methods."""

    model: Any
    space: Any
    cost_model: Any
    data: Any
    unit: str = ""
    round_to: int | None = None
    criterion: str = "l1"
    criterion_batches: int = 8  # as prune.importance.DEFAULT_BATCHES (not imported: this module stays light)
    lr: float = 0.01
    prune_epochs: float = 0.2  # training budget of a method that trains while it prunes (ecc's ADMM, halp)
    work_dir: Path | None = None
    say: Callable[[str], None] = lambda _: None
    reporter: Progress = SILENT

    def cost(self, widths: dict[str, int]) -> float:
        """Predicted network cost at ``widths``."""
        return float(self.cost_model.predict([widths])[0])

    def ranking(self) -> dict:
        """The channel-ranking keyword arguments of the criterion-driven methods."""
        return {"criterion": self.criterion, "criterion_batches": self.criterion_batches}


class PruningMethod(ABC):
    """Select widths for a budget, and re-select at a scaled target for the closed loop; ``settings`` is the
    dataclass the method owns. Subclasses set ``name`` and ``help`` and implement ``select`` and ``reselect``."""

    name: ClassVar[str]
    help: ClassVar[str]
    settings: ClassVar[type] = NoSettings
    phase: ClassVar[str | None] = None  # the training phase it runs while selecting (uses --admm-epochs)

    def prepare(self, settings, ctx: Context):
        """The settings with the shared ones (round-to, learning rate, pruning epochs) filled in."""
        return settings

    def criterion(self, asked: str | None, schedule: str) -> str:
        """The channel criterion this method ranks by, given the one asked for (None: the default)."""
        return asked or "l1"

    @abstractmethod
    def select(self, ctx: Context, settings, budget: float) -> tuple[PruneResult, Any]:
        """(selection whose predicted cost meets ``budget``, its pruned model or None)."""

    @abstractmethod
    def reselect(self, ctx: Context, settings, target: float, current: PruneResult, state: Any):
        """(selection at another predicted ``target``, state), or None when the method cannot move that way."""

    def floor_layers(self, ctx: Context, settings) -> list[str]:
        """Layers the method may remove outright (beyond narrowing): they lower the reachable cost floor."""
        return []

    def pruning_steps(self, settings, steps_per_epoch: int) -> float:
        """Training steps (dense-model equivalents) the selection itself takes, for the time estimate."""
        return 0.0

    def summary(self, result: PruneResult, space) -> dict:
        """What the method adds to ``compress --json``."""
        return {}


class RankedBaseline(PruningMethod):
    """A baseline that ranks channels by the criterion and is bisected to any target, so it re-selects by running
    again (it can widen as well as shrink). Subclasses set ``prune``: (model, space, cost, target, **kw) → result."""

    prune: ClassVar[Callable[..., PruneResult]]

    def select(self, ctx, settings, budget):
        return type(self).prune(ctx.model, ctx.space, ctx.cost, budget, round_to=ctx.round_to, data=ctx.data,
                                **ctx.ranking(), **dataclasses.asdict(settings)), None

    def reselect(self, ctx, settings, target, current, state):
        return self.select(ctx, settings, target)


def register(cls: type[PruningMethod]) -> type[PruningMethod]:
    """Class decorator: add a method to the registry under its ``name``."""
    if not dataclasses.is_dataclass(cls.settings):
        raise TypeError(f"{cls.__name__}.settings must be a dataclass")
    _REGISTRY[cls.name] = cls()
    return cls


def methods() -> dict[str, PruningMethod]:
    """Every registered method by name (the built-in ones imported on first use)."""
    for module in BUILTIN:
        importlib.import_module(f"{__name__}.{module}")
    return dict(_REGISTRY)


def get(name: str) -> PruningMethod:
    """The method registered as ``name``."""
    known = methods()
    if name not in known:
        raise ValueError(f"method must be one of {', '.join(known)}; got {name!r}")
    return known[name]


@dataclass(frozen=True)
class Option:
    """A CLI option of one or more methods' settings: the flag, its type, default and help, and the fields it sets."""

    flag: str
    type: type
    default: Any
    help: str
    fields: tuple[tuple[str, str], ...]  # (method name, settings field name)

    @property
    def param(self) -> str:
        """The Python parameter name of the flag."""
        return self.flag.lstrip("-").replace("-", "_")


def _plain_type(hint) -> type:
    """``int | None`` → int."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def options() -> list[Option]:
    """Every CLI option the registered methods' settings declare; one flag shared by several methods (--min-keep)
    sets each of their fields and must have one default."""
    found: dict[str, Option] = {}
    for name, method in methods().items():
        hints = typing.get_type_hints(method.settings)
        for f in dataclasses.fields(method.settings):
            flag = f.metadata.get("option")
            if flag is None:
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            old = found.get(flag)
            if old is not None and old.default != default:
                raise TypeError(f"{flag}: {name} defaults to {default!r}, {old.fields[0][0]} to {old.default!r}")
            fields = (old.fields if old else ()) + ((name, f.name),)
            found[flag] = Option(flag, _plain_type(hints[f.name]), default, f.metadata.get("help", ""), fields)
    return list(found.values())


def settings_from_options(method: str, given: dict[str, Any]):
    """``method``'s settings from CLI option values by parameter name (None: not given, the default); an option
    given for a method it does not apply to is an error, never silently dropped."""
    values = {}
    for opt in options():
        value = given.get(opt.param)
        if value is None:
            continue
        mine = [field for m, field in opt.fields if m == method]
        if not mine:
            users = ", ".join(m for m, _ in opt.fields)
            raise ValueError(f"{opt.flag} applies to {users}, not to --method {method}")
        values.update({field: value for field in mine})
    return get(method).settings(**values)
