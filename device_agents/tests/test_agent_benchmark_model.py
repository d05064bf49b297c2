"""TFLite benchmark_model output: per-op table by header names (both layouts), run statistics, layer mapping."""
import pytest

from agent_testlib import FIXTURES
from edgeprune_agent.benchmark_model import (BenchmarkOutputError, latency_from_run, map_ops_to_layers,
                                             parse_benchmark_output)

CURRENT = "tflite_benchmark_model_op_profiling.txt"
LEGACY = "tflite_benchmark_model_op_profiling_legacy.txt"


def _mobilenet_v1_layers():
    """(name, op) of MobileNet v1's conv/linear layers in execution order."""
    layers = [("conv0", "conv")]
    for i in range(1, 14):
        layers += [(f"dw{i}", "dwconv"), (f"pw{i}", "conv")]
    return layers + [("logits", "conv")]


@pytest.mark.parametrize("fixture", [CURRENT, LEGACY])
def test_regular_run_table_only(fixture):
    parsed = parse_benchmark_output((FIXTURES / fixture).read_text())
    ops = parsed["ops"]
    assert len(ops) == 31 and all(op["node_type"] != "AllocateTensors" for op in ops)  # init table ignored
    assert ops[0] == {**ops[0], "node_type": "CONV_2D", "avg_ms": 1.312, "first_ms": 1.381, "percent": 4.202,
                      "times_called": 1, "name": "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]:0"}
    assert ops[-1]["node_type"] == "SOFTMAX" and ops[-1]["cdf_percent"] == 100.0
    assert sum(op["avg_ms"] for op in ops) == pytest.approx(31.217, abs=0.01)
    assert parsed["run"] == {"count": 50, "first_us": 31590.0, "curr_us": 31289.0, "min_us": 31077.0,
                             "max_us": 32491.0, "avg_us": 31772.5, "std_us": 373.0}
    assert parsed["warmup"]["count"] == 15 and parsed["timings_us"]["Init"] == 3871.0


def test_layouts_agree_except_the_start_column():
    current = parse_benchmark_output((FIXTURES / CURRENT).read_text())
    legacy = parse_benchmark_output((FIXTURES / LEGACY).read_text())
    assert (current["layout"], legacy["layout"]) == ("current", "legacy (with [start])")
    assert [{k: v for k, v in op.items() if k != "start_ms"} for op in legacy["ops"]] == current["ops"]
    assert legacy["ops"][1]["start_ms"] == 1.316 and "start_ms" not in current["ops"][1]


def test_ops_map_back_to_layers_in_order():
    ops = parse_benchmark_output((FIXTURES / CURRENT).read_text())["ops"]
    mapped = map_ops_to_layers(ops, _mobilenet_v1_layers())
    assert mapped["exact"] and mapped["problems"] == []
    assert mapped["layers"]["pw3"] == {"avg_ms": 2.601, "node_type": "CONV_2D",
                                       "node": "[MobilenetV1/MobilenetV1/Conv2d_3_pointwise/Relu6]:6"}
    assert mapped["layers"]["dw1"]["node_type"] == "DEPTHWISE_CONV_2D"
    assert mapped["other_ops_ms"] == pytest.approx(0.021 + 0.002 + 0.011)
    wrong = map_ops_to_layers(ops, [("fc", "linear")] + _mobilenet_v1_layers()[1:])
    assert not wrong["exact"] and "fc (linear) met CONV_2D" in wrong["problems"][0]


def test_latency_is_flagged_as_mean_only():
    latency = latency_from_run(parse_benchmark_output((FIXTURES / CURRENT).read_text())["run"])
    assert latency["median"] == latency["mean"] == pytest.approx(31.7725) and latency["n"] == 50
    assert latency["p10"] is None and "median is the mean" in latency["note"]


def test_failed_run_is_an_error():
    with pytest.raises(BenchmarkOutputError, match="no timings"):
        parse_benchmark_output("ERROR: Could not open 'x.tflite'.\nAborted\n")
