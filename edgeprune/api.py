"""The Python API: calibrate → fit → compress → export → verify, models as nn.Module (or zoo / file.py:fn specs)
and data as torch Datasets or DataLoaders. The CLI's commands are a thin layer over these functions."""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from torch import nn

from edgeprune.compress_config import CompressConfig, check_config
from edgeprune.pipeline import run
from edgeprune.costmodel.dataset import Selection
from edgeprune.costmodel.fit import FitError, fit_from_table
from edgeprune.costmodel.store import default_model_path
from edgeprune.costmodel.model import CostModel
from edgeprune.data import DataBundle, load_data
from edgeprune.data.python import python_bundle
from edgeprune.files import atomic_write
from edgeprune.models import build_model
from edgeprune.models.layer_space import build_layer_space
from edgeprune.paths import default_table
from edgeprune.prune.artifact import CHANNELS, WEIGHTS, load_compressed
from edgeprune.tables.store import LatencyTable

_OWN = {"model", "data", "device", "budget", "method", "cost_model"}  # compress() arguments, not **options


def _named_model(model, example_input=None, name: str | None = None, weights=None):
    """(nn.Module, input shape, name) of a zoo name / file.py:fn spec or of an nn.Module with its example input."""
    shape = None if example_input is None else tuple(getattr(example_input, "shape", example_input))
    if isinstance(model, str):
        net, shape = build_model(model, weights, input_shape=shape)
        return net, shape, name or model
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module or a model spec string, got {type(model).__name__}")
    if shape is None:
        raise ValueError("an nn.Module needs example_input (a tensor like torch.zeros(1, 3, 32, 32), or its shape)")
    return model.eval(), shape, name or type(model).__name__


def calibrate(model, example_input=None, device: str | list[str] = "local", *, name: str | None = None,
              weights=None, runtime: str = "onnxruntime", threads: int = 1, points: int = 32,
              network_variants: int = 40, network_passes: int = 1, seed: int = 0, table=None, measure=None,
              sensor: str = "auto", on_point: Callable | None = None):
    """Measure single layers at sampled widths and whole-network variants on a device (or a fleet: a list) into
    its latency table; resumable. ``measure``: a MeasureSettings (default: ``threads`` runtime threads)."""
    from edgeprune.measure.calibrate import calibrate as measure_layers
    from edgeprune.measure.devices import DeviceUnavailable
    from edgeprune.measure.registry import expand_devices, open_device
    from edgeprune.measure.settings import MeasureSettings

    if points < 1 or network_variants < 0:
        raise ValueError("points must be >= 1 and network_variants >= 0")
    net, shape, name = _named_model(model, example_input, name, weights)
    space = build_layer_space(net, shape)
    given = [device] if isinstance(device, str) else list(device)
    devs = [open_device(n, sensor=sensor) for n in expand_devices(given)]
    path = table or default_table(given[0])
    with LatencyTable(path) as tbl:
        try:
            return measure_layers(devs if len(devs) > 1 else devs[0], name, net, space, tbl, runtime,
                                  measure or MeasureSettings(threads=threads), points, network_variants, seed,
                                  on_point, network_passes=network_passes)
        except DeviceUnavailable as exc:
            raise DeviceUnavailable(f"{exc}. Everything measured so far is in {path}; run the same calibration "
                                    "again to resume") from exc


@dataclass
class FittedCostModel:
    """A device's fitted cost model for one architecture: ``predict(widths)``, its provenance and fit report."""

    model: CostModel
    provenance: dict
    report: dict = field(default_factory=dict)
    path: Path | None = None

    def predict(self, widths: dict[str, int] | None = None) -> float:
        """Predicted cost (ms or mJ) at per-group ``widths`` (missing groups dense; None: the dense model)."""
        return float(self.model.predict([widths or {}])[0])


def fit(model, example_input=None, device: str = "local", *, name: str | None = None, metric: str = "latency",
        source: str = "auto", runtime: str = "onnxruntime", threads: int = 1, table=None, out=None) -> FittedCostModel:
    """Fit the device's cost model for this architecture from its calibrated table; saved (default: the models
    folder) so compress finds it, and returned."""
    net, shape, name = _named_model(model, example_input, name)
    space = build_layer_space(net, shape)
    path = Path(table or default_table(device))
    if not path.is_file():
        raise FitError(f"no latency table at {path}; calibrate first: edgeprune.calibrate(...) or `edgeprune "
                       f"calibrate --device {device} --model {name}`")
    with LatencyTable(path) as tbl:
        fid = tbl.fingerprint_of(device)
        if fid is None:
            raise FitError(f"{path} has no measurements from device {device!r}; calibrate on it first")
        result = fit_from_table(tbl, device, name, space, Selection(fid, runtime, threads), metric, source)
    saved = result.model.save(out or default_model_path(device, name, runtime, threads, metric, shape),
                              result.provenance)
    return FittedCostModel(result.model, {**result.provenance, "path": str(saved)}, result.report, saved)


def load_cost_model(path) -> FittedCostModel:
    """A cost model saved by ``fit``."""
    model, meta = CostModel.load(path)
    return FittedCostModel(model, {**meta, "path": str(path)}, meta.get("fit", {}), Path(path))


@dataclass
class CompressResult:
    """The compressed model and where its numbers come from (``summary``: what `compress --json` prints)."""

    model: nn.Module
    widths: dict[str, int]
    predicted: float
    measured: float
    accuracy: float
    summary: dict
    directory: Path
    base: nn.Module | None = field(default=None, repr=False)  # the dense module, when given as an object
    data: DataBundle | None = field(default=None, repr=False)

    def save(self, directory) -> Path:
        """Copy the compressed model (channels.json, weights.pt, model.onnx) and summary.json into ``directory``."""
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        if target.resolve() == self.directory.resolve():
            return target
        for file in (CHANNELS, WEIGHTS, "model.onnx", "summary.json"):
            atomic_write(target / file, (self.directory / file).read_bytes())
        return target


def _cost_pair(cost_model):
    """(CostModel, provenance) from a FittedCostModel, a saved cost model's path, or such a pair; None stays."""
    if cost_model is None or isinstance(cost_model, tuple):
        return cost_model
    if isinstance(cost_model, (str, Path)):
        cost_model = load_cost_model(cost_model)
    if not isinstance(cost_model, FittedCostModel):
        raise TypeError(f"cost_model must come from edgeprune.fit or be a saved cost model's path, got "
                        f"{type(cost_model).__name__}")
    return cost_model.model, cost_model.provenance


def _identity(net: nn.Module, data: DataBundle) -> str:
    """A digest of the given module's weights and the first validation batch, so a saved selection is resumed only
    for the same inputs."""
    digest = hashlib.sha256()
    for key, tensor in net.state_dict().items():
        digest.update(key.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    x = next(iter(data.val))[0]
    digest.update(x.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def compress(model, train=None, val=None, *, data: str | None = None, device: str = "local", cost_model=None,
             budget: str = "0.5", method: str = "ecc", loss_fn=None, eval_fn=None, name: str | None = None,
             say: Callable[[str], None] | None = None, progress=None, **options) -> CompressResult:
    """Prune ``model`` (nn.Module, or a spec) to a measured latency/energy ``budget`` ("3ms", "4.2mJ", 0.5 of
    dense) with ``method``, fine-tune on ``train``, check on ``val`` (Datasets or DataLoaders; or ``data``, a
    source spec such as "digits"), export ONNX and measure it on ``device``. ``cost_model``: from ``fit`` (default:
    the device's saved one, calibrated and fitted when missing). ``loss_fn(outputs, targets)`` and
    ``eval_fn(model, batches) -> float`` make any task (tuple/dict outputs) trainable and judged. ``options``: any
    other CompressConfig field (epochs, out, round_to, settings=<the method's settings dataclass>, lr, ...)."""
    known = {f.name for f in dataclasses.fields(CompressConfig)} - _OWN
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"compress() got unknown option(s) {unknown}; known: {sorted(known)}")
    cfg = CompressConfig(device=device, budget=str(budget), method=method, **options)
    if cost_model in ("device", "platform"):  # which saved cost model to use (the CLI's --cost-model)
        cfg, cost_model = dataclasses.replace(cfg, cost_model=cost_model), None
    check_config(cfg)  # every setting, before the data is loaded
    if train is not None:
        if data is not None or cfg.data_limit is not None:
            raise ValueError("give train=/val= or data= (with data_limit), not both")
        bundle = python_bundle(train, val, cfg.batch_size, loss_fn, eval_fn)
    elif data is None:
        raise ValueError("give train= and val= (Datasets or DataLoaders), or data= (a source such as 'digits')")
    else:
        bundle = load_data(data, batch_size=cfg.batch_size, limit=cfg.data_limit)
        bundle = dataclasses.replace(bundle, loss_fn=loss_fn, eval_fn=eval_fn)
    net, identity = None, ""
    if isinstance(model, str):
        cfg = dataclasses.replace(cfg, model=model, data=data or bundle.name)
    else:
        if cfg.weights is not None:
            raise ValueError("weights= loads a checkpoint into a model spec; load it into your nn.Module instead")
        net = _named_model(model, (1, *bundle.input_shape[1:]), name)[0]
        cfg = dataclasses.replace(cfg, model=name or type(model).__name__, data=data or bundle.name)
        identity = _identity(net, bundle)
    from edgeprune.progress import SILENT

    outcome = run(cfg, say or (lambda _: None), progress or SILENT, net=net, data=bundle,
                  cost_model=_cost_pair(cost_model), identity=identity)
    s = outcome.summary
    return CompressResult(outcome.model, s["compressed"]["widths"], s["predicted_cost"], s["measured_cost"],
                          s["compressed"]["accuracy"], s, Path(s["artifacts"]["model_dir"]), net, bundle)


def load(directory, base: nn.Module | None = None) -> tuple[nn.Module, dict]:
    """(compressed model, its channels.json) from a directory compress or ``CompressResult.save`` wrote; ``base``:
    the dense nn.Module it was pruned from, when it was given as an object rather than a spec."""
    return load_compressed(directory, base=base)


def export(compressed, out=None, *, fmt: str = "onnx", int8: bool = False, data: str | None = None,
           base: nn.Module | None = None, samples: int = 64, nhwc: bool = False, parity: bool = True,
           data_limit: int | None = None) -> dict:
    """Export a CompressResult or a compressed-model directory to ONNX or TFLite (fp32 or int8), checked against
    torch on real samples; returns the artifact's path, size, parity and (int8) accuracy change."""
    from edgeprune.export.artifact import export_artifact

    bundle: Any = None
    if isinstance(compressed, CompressResult):
        directory, base, bundle = compressed.directory, compressed.base, compressed.data if data is None else None
    else:
        directory = Path(compressed)
    return export_artifact(directory, fmt, int8, data, out, samples, nhwc, parity, data_limit, base=base,
                           bundle=bundle)


def verify(artifact, device: str = "local", *, budget: str | None = None, metric: str = "latency",
           tolerance: float = 0.03, cost_model=None, threads: int = 1, measure=None) -> dict:
    """Measure an .onnx/.tflite artifact on ``device``: measured vs the cost model's prediction (from the
    channels.json beside it) vs ``budget``, with per-layer times for ONNX."""
    from edgeprune.verify import verify as measure_artifact

    path = cost_model if isinstance(cost_model, (str, Path)) else None
    given = _cost_pair(cost_model) if cost_model is not None and path is None else None
    return measure_artifact(device, artifact, budget, metric, tolerance, path, threads, measure, cost_model=given)
