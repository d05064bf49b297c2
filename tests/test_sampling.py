from edgeprune.measure.sampling import plan_layer_points
from edgeprune.models import build_model
from edgeprune.models.layer_space import build_layer_space


def _space(name):
    model, shape = build_model(name)
    return build_layer_space(model, shape)


def test_plan_is_deterministic_distinct_and_in_range():
    space = _space("resnet20")
    plan = plan_layer_points(space, 40, seed=1)
    assert plan == plan_layer_points(space, 40, seed=1)
    assert set(plan) == set(space.signatures())
    layers_by_sig = {}
    for l in space.layers:
        layers_by_sig.setdefault(l.signature.key(), []).append(l)
    for key, pts in plan.items():
        assert len(pts) == len(set(pts)) and 1 <= len(pts) <= 40
        max_in = max(l.c_in for l in layers_by_sig[key])
        max_out = max(l.c_out for l in layers_by_sig[key])
        assert all(1 <= i <= max_in and 1 <= o <= max_out for i, o in pts)
        # every real layer's dense point is measured
        assert {(l.c_in, l.c_out) for l in layers_by_sig[key]} <= set(pts)


def test_fixed_layer_gets_single_point_and_lines_are_covered():
    space = _space("resnet20")
    plan = plan_layer_points(space, 40)
    stem = next(l for l in space.layers if l.name == "conv1")
    linear = next(l for l in space.layers if l.name == "linear")
    assert (3, 16) in plan[stem.signature.key()]
    # the linear layer's c_in follows the stage-3 residual stream; its c_out (the classes) is fixed
    assert {o for _, o in plan[linear.signature.key()]} == {10}
    assert len(plan[linear.signature.key()]) >= 10
    assert any(i == 3 and o < 16 for i, o in plan[stem.signature.key()])  # the stem's line: c_in fixed at 3


def test_depthwise_points_are_diagonal():
    space = _space("mobilenetv2")
    plan = plan_layer_points(space, 12)
    for key, pts in plan.items():
        if key.startswith("dwconv"):
            assert all(i == o for i, o in pts) and len(pts) <= 12
