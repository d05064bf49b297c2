"""Calibration: measure single layers at sampled widths and whole-network variants into a latency table."""
from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass
from typing import Callable

import torch.nn as nn

from edgeprune.measure.devices import MeasurementRejected
from edgeprune.measure.export import export_model
from edgeprune.measure.microbench import layer_model_bytes
from edgeprune.measure.sampling import plan_layer_points
from edgeprune.measure.settings import MeasureSettings
from edgeprune.measure.variants import build_variant, design_variant
from edgeprune.models.layer_space import LayerSpace
from edgeprune.tables.store import LatencyTable, canonical, point_key

# Called after each point: (phase, done, total, stored) with phase "layers" or "network".
Progress = Callable[[str, int, int, bool], None]


@dataclass
class CalibrationResult:
    """What a calibration run did."""

    device: str
    fingerprint_id: str
    table: str
    runtime: str
    runtime_version: str
    threads: int
    signatures: int
    points_planned: int
    points_measured: int = 0
    points_skipped: int = 0
    network_variants_planned: int = 0
    network_variants_measured: int = 0
    network_variants_skipped: int = 0
    energy_source: str | None = None
    energy_kind: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def architecture_hash(space: LayerSpace) -> str:
    """Identity of a model's structure (layers, widths, groups, input shape)."""
    return hashlib.sha256(canonical(space.to_dict()).encode()).hexdigest()[:16]


def plan_variants(space: LayerSpace, count: int, seed: int = 0,
                  dense_every: int = 10) -> list[tuple[dict[str, int], int]]:
    """(widths, repeat) pairs: the dense model first and again every ``dense_every`` slots (repeat 1, 2, ...),
    so the run-to-run spread of whole-network measurements is known; the rest are design variants.
    The same seed gives the same list."""
    dense = space.dense_widths()
    plan: list[tuple[dict[str, int], int]] = []
    seen = {canonical(dense)}
    for i in range(count):
        if i % dense_every == 0:
            plan.append((dense, i // dense_every))
            continue
        for attempt in range(20):  # small models have few distinct variants: avoid measuring one twice
            widths = design_variant(space, random.Random(f"{seed}|variant|{i}|{attempt}"))
            if canonical(widths) not in seen:
                break
        seen.add(canonical(widths))
        plan.append((widths, 0))
    return plan


def calibrate(device, model_name: str, model: nn.Module, space: LayerSpace, table: LatencyTable,
              runtime: str = "onnxruntime", settings: MeasureSettings = MeasureSettings(),
              points: int = 50, network_variants: int = 10, seed: int = 0,
              progress: Progress | None = None) -> CalibrationResult:
    """Measure what the table lacks for this device/runtime/settings; already-stored points are skipped."""
    info = device.info()
    versions = info.get("runtime_versions") or {}
    if not versions.get(runtime):
        raise MeasurementRejected(f"device {device.name!r} has no {runtime} installed (it reports: {versions or 'none'})")
    table.record_device(device.name, info)
    fid, rversion = info["fingerprint_id"], versions[runtime]
    signatures = space.signatures()
    layer_plan = plan_layer_points(space, points, seed)
    variants = plan_variants(space, network_variants, seed)
    result = CalibrationResult(device.name, fid, str(table.path), runtime, rversion, settings.threads,
                               len(signatures), sum(len(p) for p in layer_plan.values()),
                               network_variants_planned=len(variants))
    common = (fid, runtime, rversion, settings.threads, asdict(settings))

    done, total = 0, result.points_planned
    existing = table.existing_keys("layer")
    for sig_key, pairs in layer_plan.items():
        sig = signatures[sig_key]
        for c_in, c_out in pairs:
            key = point_key("layer", *common, sig_key, c_in, c_out)
            stored = False
            if key in existing:
                result.points_skipped += 1
            else:
                data = layer_model_bytes(sig, c_in, c_out, runtime)
                measured = device.measure(data, runtime, settings)
                _note_energy(result, measured)
                shape = [1, c_in] if sig.op == "linear" else [1, c_in, *sig.in_hw]
                prov = {"device_name": device.name, "fingerprint_id": fid, "input_shape": shape}
                stored = table.add_layer(key, prov, asdict(sig), sig_key, c_in, c_out, measured)
                result.points_measured += int(stored)
            done += 1
            if progress:
                progress("layers", done, total, stored)

    arch = architecture_hash(space)
    existing = table.existing_keys("network")
    for i, (widths, repeat) in enumerate(variants):
        # Repeats of the same widths need their own key; repeat 0 keeps the plain key.
        key = point_key("network", *common, arch, widths, *([repeat] if repeat else []))
        stored = False
        if key in existing:
            result.network_variants_skipped += 1
        else:
            data = export_model(build_variant(model, space, widths), space.input_shape, runtime)
            measured = device.measure(data, runtime, settings)
            _note_energy(result, measured)
            prov = {"device_name": device.name, "fingerprint_id": fid, "input_shape": list(space.input_shape)}
            stored = table.add_network(key, prov, model_name, arch, widths, measured)
            result.network_variants_measured += int(stored)
        if progress:
            progress("network", i + 1, len(variants), stored)
    return result


def _note_energy(result: CalibrationResult, measured: dict) -> None:
    energy = measured.get("energy_mj")
    if energy:
        result.energy_source, result.energy_kind = energy["source"], energy["kind"]
