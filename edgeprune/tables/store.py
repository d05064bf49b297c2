"""Durable latency tables: one SQLite row per measurement, with its provenance."""
from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from edgeprune.errors import EdgepruneError
from edgeprune.measurement import Measurement

SCHEMA_VERSION = 2

_STAT_COLUMNS = """
    latency_median_ms REAL NOT NULL, latency_mean_ms REAL, latency_p10_ms REAL, latency_p90_ms REAL,
    latency_std_ms REAL, latency_min_ms REAL, repeats INTEGER, cv REAL, run_cv REAL,
    reference_ms REAL, reference_ratio REAL,
    energy_mj REAL, energy_source TEXT, energy_kind TEXT,
    temperature_c REAL, throttled INTEGER,
    device_name TEXT NOT NULL, fingerprint_id TEXT NOT NULL, runtime TEXT NOT NULL, runtime_version TEXT,
    threads INTEGER NOT NULL, settings_json TEXT NOT NULL, input_shape TEXT NOT NULL,
    model_sha256 TEXT, measured_at TEXT NOT NULL, result_json TEXT NOT NULL, provenance TEXT
"""

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    fingerprint_id TEXT PRIMARY KEY, name TEXT NOT NULL, info_json TEXT NOT NULL, recorded_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS layer_measurements (
    id INTEGER PRIMARY KEY, point_key TEXT NOT NULL UNIQUE,
    signature_key TEXT NOT NULL, signature_json TEXT NOT NULL, c_in INTEGER NOT NULL, c_out INTEGER NOT NULL,
    {_STAT_COLUMNS});
CREATE TABLE IF NOT EXISTS network_measurements (
    id INTEGER PRIMARY KEY, point_key TEXT NOT NULL UNIQUE,
    model TEXT NOT NULL, architecture_hash TEXT NOT NULL, widths_json TEXT NOT NULL,
    {_STAT_COLUMNS});
CREATE INDEX IF NOT EXISTS layer_sig ON layer_measurements (fingerprint_id, runtime, threads, signature_key);
CREATE INDEX IF NOT EXISTS network_arch ON network_measurements (fingerprint_id, runtime, threads, architecture_hash);
"""


class TableError(EdgepruneError):
    """The table file is unusable (corrupt, or written by a newer edgeprune)."""


def canonical(obj: Any) -> str:
    """Deterministic JSON text, for hashing and storage."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def point_key(*parts: Any) -> str:
    """Identity of one measurement point: same key means the same thing measured the same way."""
    return hashlib.sha256(canonical(parts).encode()).hexdigest()


class LatencyTable:
    """A SQLite file of layer and whole-network measurements (WAL, one transaction per row)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._check_intact()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._check_version()
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise TableError(f"{self.path} is not a usable edgeprune table: {exc}") from exc

    def _check_intact(self) -> None:
        """Refuse a damaged file before anything is written to it (PRAGMA quick_check)."""
        try:
            problems = [r[0] for r in self._db.execute("PRAGMA quick_check(5)")]
        except sqlite3.DatabaseError as exc:
            problems = [str(exc)]
        if problems != ["ok"]:
            self._db.close()
            lines = [ln.strip() for p in problems for ln in p.splitlines() if ln.strip() and "***" not in ln]
            more = f" and {len(lines) - 1} more problems" if len(lines) > 1 else ""
            raise TableError(f"{self.path} is damaged, not a usable edgeprune table ({lines[0]}{more}); nothing "
                             "was written to it. Restore it from a backup, or move it aside and re-run calibrate "
                             "to measure again")

    def _check_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row["value"]) > SCHEMA_VERSION:
            raise TableError(f"{self.path} has schema {row['value']}, newer than this edgeprune "
                             f"({SCHEMA_VERSION}); upgrade edgeprune")

    def _migrate(self) -> None:
        """Add columns introduced after a table was created (schema 1 → 2: drift reference; provenance, NULL
        for rows measured by edgeprune itself, 'imported' for measurements made elsewhere)."""
        for table in ("layer_measurements", "network_measurements"):
            have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
            for col, kind in (("reference_ms", "REAL"), ("reference_ratio", "REAL"), ("provenance", "TEXT")):
                if col not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {col} {kind}")
        self._db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "LatencyTable":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All rows written inside go in together, or none of them (on any exception)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def record_device(self, name: str, info: dict) -> None:
        """Remember the device fingerprint the rows refer to (latest info wins)."""
        self._db.execute("INSERT OR REPLACE INTO devices VALUES (?, ?, ?, datetime('now'))",
                         (info["fingerprint_id"], name, canonical(info)))

    def device_info(self, fingerprint_id: str) -> dict | None:
        """The recorded info of a device, or None."""
        row = self._db.execute("SELECT info_json FROM devices WHERE fingerprint_id=?", (fingerprint_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def fingerprint_of(self, name: str) -> str | None:
        """Fingerprint most recently recorded for a device name."""
        row = self._db.execute("SELECT fingerprint_id FROM devices WHERE name=? ORDER BY recorded_at DESC LIMIT 1",
                               (name,)).fetchone()
        return row[0] if row else None

    def has(self, kind: str, key: str) -> bool:
        """Whether a point with this key is already stored."""
        return self._db.execute(f"SELECT 1 FROM {_table(kind)} WHERE point_key=?", (key,)).fetchone() is not None

    def existing_keys(self, kind: str) -> set[str]:
        return {r[0] for r in self._db.execute(f"SELECT point_key FROM {_table(kind)}")}

    def add_layer(self, key: str, provenance: dict, signature: dict, signature_key: str,
                  c_in: int, c_out: int, result: Measurement) -> bool:
        """Store one single-layer measurement; False if the point was already there."""
        extra = {"signature_key": signature_key, "signature_json": canonical(signature), "c_in": c_in,
                 "c_out": c_out}
        return self._insert("layer", key, provenance, extra, result)

    def add_network(self, key: str, provenance: dict, model: str, architecture_hash: str,
                    widths: dict[str, int], result: Measurement) -> bool:
        """Store one whole-network measurement; False if the point was already there."""
        extra = {"model": model, "architecture_hash": architecture_hash, "widths_json": canonical(widths)}
        return self._insert("network", key, provenance, extra, result)

    def _insert(self, kind: str, key: str, prov: dict, extra: dict, m: Measurement) -> bool:
        lat, energy, after = m.latency, m.energy, m.conditions_after
        row = {
            "point_key": key, **extra,
            "latency_median_ms": lat.median, "latency_mean_ms": lat.mean, "latency_p10_ms": lat.p10,
            "latency_p90_ms": lat.p90, "latency_std_ms": lat.std, "latency_min_ms": lat.min,
            "repeats": lat.n, "cv": lat.cv, "run_cv": lat.run_cv,
            "reference_ms": m.reference_ms, "reference_ratio": m.reference_ratio,
            "energy_mj": energy and energy.per_inference, "energy_source": energy and energy.source,
            "energy_kind": energy and energy.kind,
            "temperature_c": after.get("temperature_c"),
            "throttled": None if after.get("throttled") is None else int(bool(after["throttled"])),
            "device_name": prov["device_name"], "fingerprint_id": prov["fingerprint_id"],
            "runtime": m.runtime, "runtime_version": m.runtime_version,
            "threads": m.threads, "settings_json": canonical(m.result["settings"]),
            "input_shape": canonical(prov["input_shape"]), "model_sha256": m.result.get("model_sha256"),
            "measured_at": m.result["finished_at"], "result_json": canonical(m.result),
            "provenance": prov.get("provenance"),
        }
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        cur = self._db.execute(f"INSERT OR IGNORE INTO {_table(kind)} ({cols}) VALUES ({marks})",
                               tuple(row.values()))
        return cur.rowcount == 1

    def rows(self, kind: str, **where: Any) -> Iterator[sqlite3.Row]:
        """Rows of ``layer`` or ``network`` measurements, filtered by column equality."""
        clause = " AND ".join(f"{col}=?" for col in where) or "1"
        yield from self._db.execute(f"SELECT * FROM {_table(kind)} WHERE {clause} ORDER BY id",
                                    tuple(where.values()))

    def count(self, kind: str) -> int:
        return self._db.execute(f"SELECT COUNT(*) FROM {_table(kind)}").fetchone()[0]


def _table(kind: str) -> str:
    if kind == "layer":
        return "layer_measurements"
    if kind == "network":
        return "network_measurements"
    raise ValueError(f"kind must be 'layer' or 'network', got {kind!r}")
