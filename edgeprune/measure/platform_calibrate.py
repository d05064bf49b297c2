"""``calibrate --platform``: measure single-op micro-benchmarks and random networks of several families."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

from edgeprune.formats import export_model
from edgeprune.measure.fleet import Job, check_fleet, run_jobs
from edgeprune.measure.graph_features import FEATURES_VERSION, graph_digest
from edgeprune.measure.importing import features_for
from edgeprune.measure.platform_plan import FAMILIES, NetworkSpec, build_network, plan_networks, plan_ops
from edgeprune.measure.settings import MeasureSettings
from edgeprune.measurement import Measurement
from edgeprune.tables.store import LatencyTable, point_key

Progress = Callable[[str, int, int, bool], None]


@dataclass
class PlatformCalibration:
    """What a platform calibration run did."""

    device: str
    fingerprint_id: str
    table: str
    runtime: str
    threads: int
    planned: int
    measured: int = 0
    skipped: int = 0
    by_family: dict[str, int] = field(default_factory=dict)
    lost_devices: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def platform_plan(op_points: int, networks: int, seed: int, families: tuple[str, ...] = FAMILIES) -> list[NetworkSpec]:
    """Op micro-benchmarks first (cheap, every op kind), then whole networks, families taking turns."""
    return plan_ops(op_points, seed) + (plan_networks(networks, seed, families) if networks else [])


def calibrate_platform(device, table: LatencyTable, runtime: str = "onnxruntime",
                       settings: MeasureSettings = MeasureSettings(), op_points: int = 8, networks: int = 100,
                       seed: int = 0, passes: int = 1, progress: Progress | None = None,
                       families: tuple[str, ...] = FAMILIES) -> PlatformCalibration:
    """Measure what the table lacks of the plan on one device or a fleet of one hardware class; resumable.
    Each row keeps its network's description and graph features, so `fit --platform` needs no re-export."""
    devices = list(device) if isinstance(device, (list, tuple)) else [device]
    infos = [d.info() for d in devices]
    fid, rversion = check_fleet([d.name for d in devices], infos, runtime)
    for d, info in zip(devices, infos):
        table.record_device(d.name, info)
    plan = platform_plan(op_points, networks, seed, families)
    result = PlatformCalibration(",".join(d.name for d in devices), fid, str(table.path), runtime, settings.threads,
                                 len(plan) * passes)
    existing = table.existing_keys("network")
    common = (fid, runtime, rversion, settings.threads, asdict(settings))

    def jobs():
        for pass_ in range(passes):
            for i, spec in enumerate(plan):
                key = point_key("network", "platform", *common, spec.key(), *([["pass", pass_]] if pass_ else []))
                if key in existing:
                    result.skipped += 1
                    if progress:
                        progress("platform", result.measured + result.skipped, result.planned, False)
                    continue
                yield _job(table, spec, key, runtime, fid, {"pass": pass_, "index": i})

    def stored(job: Job, ok: bool) -> None:
        result.measured += int(ok)
        if progress:
            progress("platform", result.measured + result.skipped, result.planned, ok)

    stats = run_jobs(devices, jobs(), runtime, settings, stored)
    result.lost_devices.update(stats.lost)
    for spec in plan:
        result.by_family[spec.family] = result.by_family.get(spec.family, 0) + passes
    return result


def _job(table: LatencyTable, spec: NetworkSpec, key: str, runtime: str, fid: str, plan: dict) -> Job:
    cache: dict = {}

    def build() -> bytes:
        net, shape = build_network(spec)
        data = export_model(net, shape, runtime)
        cache["features"], cache["shape"] = features_for(runtime, data), list(shape)
        return data

    def store(name: str, measured: Measurement) -> bool:
        prov = {"device_name": name, "fingerprint_id": fid, "input_shape": cache["shape"]}
        extra = {"graph_features": cache["features"], "features_version": FEATURES_VERSION, "kwargs": spec.kwargs,
                 "family": spec.family, "plan": plan}
        return table.add_network(key, prov, spec.model, graph_digest(spec.key().encode())[:16], spec.widths,
                                 measured.annotated(**extra))

    return Job("network", key, build, store)
