import sqlite3

import pytest

from edgeprune.tables.store import LatencyTable, TableError, point_key


def _result(median=1.0):
    return {"latency_ms": {"median": median, "mean": median, "p10": median, "p90": median, "std": 0.0,
                           "min": median, "n": 30, "cv": 0.0, "run_cv": 0.0},
            "energy_mj": {"per_inference": 0.5, "source": "estimate", "kind": "estimate",
                          "method": "cpu_time_x_power", "params": {}},
            "runtime": {"name": "onnxruntime", "version": "1.0", "threads": 1},
            "settings": {"warmup": 1}, "conditions_after": {"temperature_c": 40.0, "throttled": None},
            "model_sha256": "abc", "finished_at": "2026-01-01T00:00:00Z"}


PROV = {"device_name": "local", "fingerprint_id": "f" * 16, "input_shape": [1, 3, 8, 8]}


def test_rows_are_unique_by_point_key(tmp_path):
    with LatencyTable(tmp_path / "t.sqlite") as t:
        key = point_key("layer", "x", 1)
        assert t.add_layer(key, PROV, {"op": "conv"}, "conv|k", 3, 4, _result())
        assert not t.add_layer(key, PROV, {"op": "conv"}, "conv|k", 3, 4, _result(2.0))
        assert t.count("layer") == 1
        row = next(t.rows("layer", c_in=3))
        assert row["latency_median_ms"] == 1.0 and row["energy_kind"] == "estimate"
        assert row["temperature_c"] == 40.0 and row["throttled"] is None
        assert t.has("layer", key) and not t.has("network", key)
    db = sqlite3.connect(tmp_path / "t.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_corrupt_file_gives_clear_error(tmp_path):
    path = tmp_path / "bad.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(TableError, match="not a usable edgeprune table"):
        LatencyTable(path)
    assert path.read_bytes().startswith(b"this is not")  # nothing overwritten


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "t.sqlite"
    LatencyTable(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.commit()
    db.close()
    with pytest.raises(TableError, match="newer"):
        LatencyTable(path)


def test_bad_kind(tmp_path):
    with LatencyTable(tmp_path / "t.sqlite") as t, pytest.raises(ValueError):
        t.count("layers")
