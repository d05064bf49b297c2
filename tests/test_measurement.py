"""One typed Measurement: what every device returns, what tables store, what compress and verify compare."""
import json

import pytest
import torch.nn as nn

from edgeprune.formats import to_onnx_bytes
from edgeprune.measure.devices import LocalDevice, MeasurementRejected, parse_result
from edgeprune.measure.settings import MeasureSettings
from edgeprune.measurement import Measurement, NoEnergy
from edgeprune.tables.store import LatencyTable

QUICK = MeasureSettings(warmup=1, min_repeats=5, min_duration_s=0.02)


def _result(median=2.0, ratio=None, energy=None) -> dict:
    """A schema-1 result as benchmark_model-backed devices send it (no percentiles)."""
    return {"schema": 1, "latency_ms": {"median": median, "mean": median, "p10": None, "p90": None, "std": 0.1,
                                        "min": 1.9, "n": 40, "cv": 0.05, "run_cv": None},
            "reference": None if ratio is None else {"name": "ref", "median_ms": 0.5, "n": 40, "ratio": ratio},
            "energy_mj": energy, "runtime": {"name": "litert", "version": "2.16", "threads": 1},
            "settings": {"warmup": 1}, "conditions_after": {"temperature_c": 41.0, "throttled": False},
            "device": {"serial": "S"}, "finished_at": "2026-12-02T00:00:00+00:00"}


@pytest.fixture(scope="module")
def local_measurement():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    return LocalDevice(sensor="estimate").measure(to_onnx_bytes(model, (1, 3, 16, 16)), "onnxruntime", QUICK)


def test_the_local_device_returns_a_typed_measurement_of_the_agents_json(local_measurement):
    m = local_measurement
    assert isinstance(m, Measurement) and m.runtime == "onnxruntime" and m.threads == 1
    assert m.latency.median > 0 and m.latency.n >= 5 and m.latency.p10 <= m.latency.p90
    assert m.reference_ratio == pytest.approx(m.latency.median / m.reference_ms)
    assert m.energy is not None and m.energy.kind == "estimate" and m.energy.per_inference > 0
    assert m.energy.label.startswith("estimate (") and m.fingerprint_id
    assert m.result["schema"] == 1 and m.result["latency_ms"]["median"] == m.latency.median  # JSON kept as sent


def test_drift_correction_and_prediction_error_are_one_computation():
    m = Measurement.from_result(_result(median=2.0, ratio=4.2))
    assert m.drift_corrected("latency", 0.5) == pytest.approx(2.1)
    assert m.prediction_error(2.0, "latency", 0.5) == pytest.approx(0.05)  # 2.1 / 2.0 - 1, not 2.0 / 2.0 - 1
    assert m.prediction_error(2.0, "latency", None) == pytest.approx(0.0)  # no reference speed: as measured
    assert m.drift_corrected("energy", 0.5) is None and m.prediction_error(None, "latency", 0.5) is None
    plain = Measurement.from_result(_result(median=2.0))
    assert plain.drift_corrected("latency", 0.5) is None and plain.comparable("latency", 0.5) == 2.0


def test_energy_value_kind_and_source():
    sensor = Measurement.from_result(_result(energy={"per_inference": 3.5, "source": "ina3221", "kind": "measured"}))
    assert sensor.value("energy") == 3.5 and sensor.source("energy", "pi") == "ina3221 sensor (measured)"
    assert sensor.source("latency", "pi") == "pi litert timer (measured)"
    with pytest.raises(NoEnergy, match="no energy"):
        Measurement.from_result(_result()).value("energy")
    with pytest.raises(ValueError, match="metric"):
        sensor.value("watts")


def test_a_malformed_result_is_rejected_naming_the_device():
    with pytest.raises(ValueError, match="not a measurement result"):
        Measurement.from_result({"latency_ms": {"median": 1.0}})  # no runtime
    bad = _result()
    bad["latency_ms"]["median"] = "fast"
    with pytest.raises(MeasurementRejected, match="'phone' sent a malformed result"):
        parse_result("phone", bad)


def test_tables_store_the_measurement_and_its_json_unchanged(tmp_path):
    m = Measurement.from_result(_result(median=2.0, ratio=4.0)).annotated(plan=3)
    prov = {"device_name": "phone", "fingerprint_id": "f" * 16, "input_shape": [1, 3, 8, 8]}
    with LatencyTable(tmp_path / "t.sqlite") as table:
        assert table.add_network("k", prov, "demo_cnn", "a" * 16, {"conv1:out": 4}, m)
        row = next(table.rows("network"))
    assert (row["latency_median_ms"], row["latency_p10_ms"], row["reference_ratio"]) == (2.0, None, 4.0)
    assert (row["runtime"], row["runtime_version"], row["temperature_c"], row["throttled"]) == ("litert", "2.16",
                                                                                                  41.0, 0)
    assert row["energy_mj"] is None and json.loads(row["result_json"]) == {**_result(2.0, 4.0), "plan": 3}
