"""measure_model end to end with real runtimes and sensors."""
import hashlib
import json
from datetime import datetime

import pytest

from agent_fixtures import conv_model, tflite_model  # noqa: F401 (fixtures)
from edgeprune_agent import ModelInvalid, measure_model
from edgeprune_agent.fingerprint import fingerprint_id
from edgeprune_agent.sensors import open_sensor

RESULT_KEYS = {"schema", "latency_ms", "reference", "energy_mj", "runtime", "settings", "inputs", "model_sha256",
               "conditions_before", "conditions_after", "device", "started_at", "finished_at", "wall_s"}
LATENCY_KEYS = {"median", "mean", "p10", "p90", "std", "min", "n", "cv", "run_cv"}
FAST = {"warmup": 2, "min_repeats": 12, "min_duration_s": 0.05}


def test_onnxruntime_result_schema_and_estimate_energy(conv_model):
    result = measure_model(conv_model, sensor=open_sensor("estimate"), **FAST)
    assert set(result) == RESULT_KEYS
    assert result["schema"] == 1
    lat = result["latency_ms"]
    assert set(lat) == LATENCY_KEYS
    assert lat["n"] >= 12 and lat["median"] > 0 and lat["min"] <= lat["median"] <= lat["p90"]
    energy = result["energy_mj"]
    assert set(energy) == {"per_inference", "source", "kind", "method", "params"}
    assert (energy["kind"], energy["source"], energy["method"]) == ("estimate", "estimate", "cpu_time_x_power")
    assert energy["params"]["watts_per_busy_core"] == 10.0
    # the reference workload's runs are interleaved: only the model's share of the CPU time is charged
    share = energy["params"]["model_time_share"]
    assert 0 < share < 1 and result["reference"]["ratio"] > 0
    expected_mj = energy["params"]["cpu_time_s"] * 10.0 * share / lat["n"] * 1000
    assert energy["per_inference"] == pytest.approx(expected_mj)
    assert energy["per_inference"] > 0
    assert result["runtime"]["name"] == "onnxruntime" and result["runtime"]["threads"] == 1
    assert result["settings"] == {"warmup": 2, "min_repeats": 12, "min_duration_s": 0.05, "max_duration_s": 60.0}
    assert result["inputs"] == {"x": {"shape": [1, 3, 16, 16], "dtype": "float32"}}
    assert result["model_sha256"] == hashlib.sha256(conv_model).hexdigest()
    assert result["device"]["fingerprint_id"] == fingerprint_id()
    started = datetime.fromisoformat(result["started_at"])
    finished = datetime.fromisoformat(result["finished_at"])
    assert started.utcoffset().total_seconds() == 0 and finished > started
    assert result["wall_s"] >= 0.05
    json.dumps(result, allow_nan=False)


def test_without_sensor_energy_is_null(conv_model):
    result = measure_model(conv_model, threads=2, **FAST)
    assert result["energy_mj"] is None and result["runtime"]["threads"] == 2


def test_litert_measurement(tflite_model):
    result = measure_model(tflite_model, runtime="litert", **FAST)
    assert result["runtime"]["name"] == "litert" and result["runtime"]["version"]
    assert result["latency_ms"]["n"] >= 12
    assert result["inputs"]["serving_default_args_0"]["shape"] == [1, 3, 16, 16]


def test_min_duration_keeps_it_running(conv_model):
    result = measure_model(conv_model, warmup=0, min_repeats=1, min_duration_s=0.2)
    assert result["latency_ms"]["n"] > 1
    assert result["latency_ms"]["mean"] * result["latency_ms"]["n"] >= 200 * 0.95


@pytest.mark.parametrize("kwargs, message", [
    ({"threads": 0}, "threads"), ({"threads": 1.5}, "threads"), ({"warmup": -1}, "warmup"),
    ({"min_repeats": 0}, "min_repeats"), ({"min_duration_s": 0}, "min_duration_s"),
    ({"max_duration_s": -1.0}, "max_duration_s"), ({"max_duration_s": float("inf")}, "max_duration_s"),
    ({"min_duration_s": 5.0, "max_duration_s": 1.0}, "max_duration_s"),
])
def test_bad_settings_raise_value_error(conv_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        measure_model(conv_model, **kwargs)


def test_empty_model_is_invalid():
    with pytest.raises(ModelInvalid, match="empty"):
        measure_model(b"")
