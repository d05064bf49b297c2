import sqlite3

import pytest

from edgeprune.measurement import Measurement
from edgeprune.tables.store import LatencyTable, TableError, point_key


def _result(median=1.0):
    return Measurement.from_result({
        "latency_ms": {"median": median, "mean": median, "p10": median, "p90": median, "std": 0.0,
                       "min": median, "n": 30, "cv": 0.0, "run_cv": 0.0},
        "energy_mj": {"per_inference": 0.5, "source": "estimate", "kind": "estimate",
                      "method": "cpu_time_x_power", "params": {}},
        "runtime": {"name": "onnxruntime", "version": "1.0", "threads": 1},
        "settings": {"warmup": 1}, "conditions_after": {"temperature_c": 40.0, "throttled": None},
        "model_sha256": "abc", "finished_at": "2026-01-01T00:00:00Z"})


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


def _damaged_table(path):
    """A real table with a few hundred rows whose middle pages are then overwritten with garbage."""
    with LatencyTable(path) as t:
        for i in range(300):
            t.add_network(point_key("net", i), PROV, "demo_cnn", "a" * 16, {"conv1": i}, _result(float(i + 1)))
    page = sqlite3.connect(path).execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(path.read_bytes())
    assert len(data) > 12 * page
    for n in range(4, 10):
        data[n * page:(n + 1) * page] = bytes((i * 37 + n) % 251 for i in range(page))
    path.write_bytes(bytes(data))
    return bytes(data)


def test_damaged_pages_are_detected_before_anything_is_written(tmp_path):
    path = tmp_path / "t.sqlite"
    before = _damaged_table(path)
    with pytest.raises(TableError, match="is damaged.*nothing was written to it.*backup"):
        LatencyTable(path)
    assert path.read_bytes() == before


def test_calibrate_and_fit_on_a_damaged_table_give_one_line(tmp_path):
    from conftest import run_cli

    path = tmp_path / "t.sqlite"
    before = _damaged_table(path)
    import json

    for command in (["calibrate", "--device", "local", "--model", "demo_cnn", "--points", "1",
                     "--network-variants", "0", "--warmup", "1", "--min-repeats", "3", "--min-duration", "0.01"],
                    ["fit", "--device", "local", "--model", "demo_cnn"]):
        done = run_cli(*command, "--table", path, "--json", check=False)
        assert done.returncode != 0 and "Traceback" not in done.stderr
        error = json.loads(done.stdout)["error"]
        assert "is damaged" in error and "\n" not in error
        assert path.read_bytes() == before
