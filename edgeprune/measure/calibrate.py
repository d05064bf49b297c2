"""Calibration: measure single layers at sampled widths and whole-network variants into a latency table."""
from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Callable, Iterator

import torch.nn as nn

from edgeprune.formats import export_model
from edgeprune.measure.fleet import Job, check_fleet, run_jobs
from edgeprune.measure.microbench import layer_model_bytes
from edgeprune.measure.sampling import plan_layer_points
from edgeprune.measure.settings import MeasureSettings
from edgeprune.measure.variants import build_variant, design_variant
from edgeprune.measurement import Measurement
from edgeprune.models.layer_space import LayerSpace, architecture_hash
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
    devices: list[str] = field(default_factory=list)
    measured_by: dict[str, int] = field(default_factory=dict)
    lost_devices: dict[str, str] = field(default_factory=dict)
    requeued: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


DESIGN_LOW, NARROW_LOW = 0.2, 0.05  # lowest share of a group's width that design variants draw


def plan_variants(space: LayerSpace, count: int, seed: int = 0,
                  dense_every: int = 10) -> list[tuple[dict[str, int], int]]:
    """(widths, repeat) pairs: the dense model first and again every ``dense_every`` slots (repeat 1, 2, ...),
    so the run-to-run spread of whole-network measurements is known; the rest are design variants (one in four
    drawn down to 5 % of each group's width).
    The same seed gives the same list."""
    dense = space.dense_widths()
    plan: list[tuple[dict[str, int], int]] = []
    seen = {canonical(dense)}
    for i in range(count):
        if i % dense_every == 0:
            plan.append((dense, i // dense_every))
            continue
        for attempt in range(20):  # small models have few distinct variants: avoid measuring one twice
            # A quarter of the variants reach down to 5 % of each group: aggressive budgets land there, and a
            # model fitted only on [20 %, 100 %] under-predicted them by up to 28 % (ResNet-56 at 0.3).
            low = NARROW_LOW if i % 4 == 3 else DESIGN_LOW
            widths = design_variant(space, random.Random(f"{seed}|variant|{i}|{attempt}"), low)
            if canonical(widths) not in seen:
                break
        seen.add(canonical(widths))
        plan.append((widths, 0))
    return plan


def calibrate(device, model_name: str, model: nn.Module, space: LayerSpace, table: LatencyTable,
              runtime: str = "onnxruntime", settings: MeasureSettings = MeasureSettings(),
              points: int = 50, network_variants: int = 10, seed: int = 0,
              progress: Progress | None = None, *, network_passes: int = 1) -> CalibrationResult:
    """Measure what the table lacks on one device or a fleet (list) of one hardware class; resumable.

    ``network_passes`` > 1 sweeps the whole-network variants that many times, one full pass after another, so a
    disturbance (another process, a frequency dip) spoils at most one of a variant's measurements; the cost model
    uses their median. Variants of this architecture that an earlier plan put in the table get the same passes."""
    if network_passes < 1:
        raise ValueError(f"network_passes must be >= 1, got {network_passes}")
    devices = list(device) if isinstance(device, (list, tuple)) else [device]
    names = [d.name for d in devices]
    if len(set(names)) != len(names):
        raise ValueError(f"a device is listed twice: {names}")
    infos = [d.info() for d in devices]
    fid, rversion = check_fleet(names, infos, runtime)
    for name, info in zip(names, infos):
        table.record_device(name, info)
    signatures = space.signatures()
    layer_plan = plan_layer_points(space, points, seed)
    variants = plan_variants(space, network_variants, seed)
    if network_passes > 1:
        variants += earlier_variants(table, architecture_hash(space), fid, runtime, settings.threads, variants)
    result = CalibrationResult(",".join(names), fid, str(table.path), runtime, rversion, settings.threads,
                               len(signatures), sum(len(p) for p in layer_plan.values()),
                               network_variants_planned=len(variants) * network_passes, devices=names)
    common = (fid, runtime, rversion, settings.threads, asdict(settings))
    done = {"layers": 0, "network": 0}
    totals = {"layers": result.points_planned, "network": len(variants) * network_passes}

    def report(phase: str, stored: bool) -> None:
        done[phase] += 1
        if progress:
            progress(phase, done[phase], totals[phase], stored)

    def stored_row(job: Job, stored: bool) -> None:
        if job.phase == "layers":
            result.points_measured += int(stored)
        else:
            result.network_variants_measured += int(stored)
        report(job.phase, stored)

    def layer_jobs() -> Iterator[Job]:
        existing = table.existing_keys("layer")
        for sig_key, pairs in layer_plan.items():
            sig = signatures[sig_key]
            for c_in, c_out in pairs:
                key = point_key("layer", *common, sig_key, c_in, c_out)
                if key in existing:
                    result.points_skipped += 1
                    report("layers", False)
                    continue
                shape = [1, c_in] if sig.op == "linear" else [1, c_in, *sig.in_hw]

                def store(name: str, measured: Measurement, sig=sig, sig_key=sig_key, c_in=c_in, c_out=c_out,
                          key=key, shape=shape) -> bool:
                    _note_energy(result, measured)
                    prov = {"device_name": name, "fingerprint_id": fid, "input_shape": shape}
                    return table.add_layer(key, prov, asdict(sig), sig_key, c_in, c_out, measured)

                yield Job("layers", key, partial(layer_model_bytes, sig, c_in, c_out, runtime), store)

    arch = architecture_hash(space)

    def network_jobs() -> Iterator[Job]:
        existing = table.existing_keys("network")
        for pass_ in range(network_passes):
            for widths, repeat in variants:
                # Repeats and passes of the same widths need their own key; repeat 0, pass 0 keeps the plain key.
                key = point_key("network", *common, arch, widths, *([repeat] if repeat else []),
                                *([["pass", pass_]] if pass_ else []))
                if key in existing:
                    result.network_variants_skipped += 1
                    report("network", False)
                    continue
                yield network_job(key, widths, {"repeat": repeat, "pass": pass_})

    def network_job(key: str, widths: dict[str, int], plan: dict) -> Job:
        def store(name: str, measured: Measurement) -> bool:
            _note_energy(result, measured)
            prov = {"device_name": name, "fingerprint_id": fid, "input_shape": list(space.input_shape)}
            # The plan slot goes with the result, so repeats of the dense model stay apart from passes.
            return table.add_network(key, prov, model_name, arch, widths, measured.annotated(plan=plan))

        def build() -> bytes:
            return export_model(build_variant(model, space, widths), space.input_shape, runtime)

        return Job("network", key, build, store)

    for jobs in (layer_jobs(), network_jobs()):
        stats = run_jobs(devices, jobs, runtime, settings, stored_row)
        for name, count in stats.measured_by.items():
            result.measured_by[name] = result.measured_by.get(name, 0) + count
        result.lost_devices.update(stats.lost)
        result.requeued += stats.requeued
        devices = [d for d in devices if d.name not in stats.lost]
    return result


def earlier_variants(table: LatencyTable, arch: str, fingerprint_id: str, runtime: str, threads: int,
                     planned: list[tuple[dict[str, int], int]]) -> list[tuple[dict[str, int], int]]:
    """Variants of this architecture measured for an earlier plan (another seed, count or design) on this device,
    runtime and thread count, and not in ``planned``."""
    seen = {canonical(w) for w, _ in planned}
    out = []
    for row in table.rows("network", architecture_hash=arch, fingerprint_id=fingerprint_id, runtime=runtime,
                          threads=threads):
        if row["widths_json"] not in seen:
            seen.add(row["widths_json"])
            out.append((json.loads(row["widths_json"]), 0))
    return out


def _note_energy(result: CalibrationResult, measured: Measurement) -> None:
    if measured.energy is not None:
        result.energy_source, result.energy_kind = measured.energy.source, measured.energy.kind
