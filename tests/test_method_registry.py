"""The pruning-method registry: every method honours round-to (selecting and re-selecting), and the CLI's options
are built from the methods' settings so none can be dropped on the way."""
import dataclasses
import random

import pytest
import torch
import typer

from edgeprune.costmodel.macs import network_macs
from edgeprune.costmodel.model import CostModel
from edgeprune.data import load_data
from edgeprune.measure.variants import random_widths
from edgeprune.models.layer_space import build_layer_space
from edgeprune.models.zoo import build_model
from edgeprune.prune.methods import Context, methods, options, settings_from_options
from edgeprune.structure.physical import allowed_widths

ROUND_TO = 8
# Settings small enough for seconds per method; round-to is the shared one the registry must carry to every method.
FAST = {"ecc": {"strength_batches": 1}, "halp": {"steps": 2, "tune_steps": 2, "criterion_batches": 1},
        "netadapt": {"tune_steps": 1, "step": 0.2},
        "joint": {"sparse_epochs": 1, "max_steps_per_epoch": 5}}


@pytest.fixture(scope="module")
def setup():
    """demo_cnn with widths that are not multiples of 8 (so dense is no escape), digits, a real fitted cost model."""
    torch.manual_seed(0)
    model, shape = build_model("demo_cnn", widths=(12, 20, 28))
    space = build_layer_space(model, shape)
    rng = random.Random(0)
    widths = [random_widths(space, rng, 0.05) for _ in range(40)] + [space.dense_widths()]
    y = [0.2 + network_macs(space, w) * 1e-5 * (1 + 0.02 * rng.random()) for w in widths]
    cost_model = CostModel(source="network").fit(space, network_widths=widths, network_y=y)
    return model, space, cost_model, load_data("digits", batch_size=64, limit=400)


def test_every_method_is_registered():
    assert set(methods()) == {"ecc", "halp", "netadapt", "uniform", "global", "joint"}


@pytest.mark.parametrize("name", sorted(methods()))
def test_method_honours_round_to_when_selecting_and_reselecting(setup, name, tmp_path):
    model, space, cost_model, data = setup
    method = methods()[name]
    ctx = Context(model=__import__("copy").deepcopy(model), space=space, cost_model=cost_model, data=data,
                  round_to=ROUND_TO, criterion=method.criterion(None, "oneshot"), criterion_batches=1,
                  prune_epochs=0.05, work_dir=tmp_path)
    settings = method.prepare(method.settings(**FAST.get(name, {})), ctx)
    dense = space.dense_widths()
    budget = 0.6 * ctx.cost({})
    result, state = method.select(ctx, settings, budget)
    again = method.reselect(ctx, settings, 0.85 * result.predicted_cost, result, state)
    assert again is not None, f"{name} could not re-select at a lower target"
    for chosen in (result, again[0]):
        assert chosen.widths and chosen.predicted_cost <= budget + 1e-9
        for group, width in chosen.widths.items():
            assert width in allowed_widths(dense[group], ROUND_TO, space.divisors().get(group, 1)), \
                f"{name}: {group} has width {width}, not a multiple of {ROUND_TO} (or dense {dense[group]})"
            assert len(chosen.kept[group]) == width
    assert any(w < dense[g] for g, w in result.widths.items())


def test_cli_compress_options_come_from_every_methods_settings():
    from edgeprune.cli.main import load_command

    command = load_command("compress")
    flags = {flag for param in command.params for flag in param.opts}
    declared = {f.metadata["option"]: (name, f.name) for name, m in methods().items()
                for f in dataclasses.fields(m.settings) if "option" in f.metadata}
    assert declared and set(declared) <= flags
    assert {"--min-keep", "--halp-steps", "--polar-lambda", "--max-blocks", "--round-to"} <= flags


def test_cli_option_values_reach_the_methods_settings_and_are_never_dropped():
    halp = settings_from_options("halp", {"halp_steps": 2, "min_keep": 0.3})
    assert (halp.steps, halp.min_keep) == (2, 0.3)
    assert settings_from_options("ecc", {"min_keep": 0.4}).min_keep == 0.4
    assert settings_from_options("netadapt", {"min_keep": 0.1}).min_keep == 0.1
    assert settings_from_options("global", {"min_keep": 0.15}).min_keep == 0.15
    assert settings_from_options("joint", {"max_blocks": 0}).max_blocks == 0
    with pytest.raises(ValueError, match="--halp-steps applies to halp, not to --method ecc"):
        settings_from_options("ecc", {"halp_steps": 2})
    shared = {o.flag: o for o in options()}["--min-keep"]
    assert {m for m, _ in shared.fields} == {"ecc", "halp", "netadapt", "global"}


def test_cli_rejects_an_option_of_another_method_before_any_work():
    from conftest import run_cli

    proc = run_cli("compress", "--method", "ecc", "--halp-steps", "2", "--json", check=False, timeout=120)
    assert proc.returncode != 0 and "--halp-steps applies to halp, not to --method ecc" in proc.stdout


class _Recorder:
    """A Progress that keeps what it was told."""

    def __init__(self):
        self.events = []

    def start(self, phase, total):
        self.events.append(("start", phase, total))

    def advance(self, steps=1):
        self.events.append(("advance", steps))

    def finish(self):
        self.events.append(("finish",))


def test_netadapt_shows_a_bar_of_the_cost_reduction_done(setup, tmp_path):
    model, space, cost_model, data = setup
    method, recorder = methods()["netadapt"], _Recorder()
    ctx = Context(model=__import__("copy").deepcopy(model), space=space, cost_model=cost_model, data=data,
                  criterion_batches=1, work_dir=tmp_path, reporter=recorder)
    method.select(ctx, method.prepare(method.settings(**FAST["netadapt"]), ctx), 0.6 * ctx.cost({}))
    assert recorder.events[0][0] == "start" and recorder.events[0][2] == 100 and recorder.events[-1] == ("finish",)
    steps = [e[1] for e in recorder.events if e[0] == "advance"]
    assert len(steps) >= 2 and all(s >= 0 for s in steps) and sum(steps) == 100
