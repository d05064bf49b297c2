"""Read what `edgeprune compress` left in its --out directory, plus the cost model and a verify result."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edgeprune.errors import EdgepruneError

SUMMARY = "summary.json"
VERIFY = "verify.json"
SUMMARY_KEYS = ("model", "method", "metric", "unit", "budget", "budget_abs", "device", "dense", "compressed",
                "predicted_cost", "measured_cost", "cost_source", "predicted_by", "closed_loop")


class ReportError(EdgepruneError):
    """A run directory (or a file named for the report) cannot be read."""


@dataclass
class Run:
    """Everything the report shows, and why a part is missing when it is."""

    path: Path
    summary: dict
    cost_model: dict | None  # the cost model's JSON (provenance and fit report)
    cost_model_note: str | None  # why cost_model is None or has no held-out rows
    verify: dict | None
    verify_note: str | None  # why verify is None, or what to keep in mind about it


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path} cannot be read as {what}: {exc}") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path} holds a JSON {type(data).__name__}, not {what}")
    return data


def _summary(run_dir: Path) -> dict:
    path = run_dir / SUMMARY
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir} is not a directory; give the --out directory of `edgeprune compress`")
    if not path.is_file():
        raise ReportError(f"{path} not found; is {run_dir} the --out directory of `edgeprune compress`? (runs made "
                          "before compress wrote summary.json need re-running)")
    summary = _read_json(path, "a compress summary")
    missing = [k for k in SUMMARY_KEYS if k not in summary]
    if missing:
        raise ReportError(f"{path} lacks {', '.join(missing)}; it was not written by `edgeprune compress`")
    return summary


def _cost_model(summary: dict) -> tuple[dict | None, str | None]:
    path = Path(summary["predicted_by"])
    if not path.is_file():
        return None, (f"the cost model {path} that priced this run is not there any more (or was given relative to "
                      "another directory), so neither its provenance nor its held-out set can be shown")
    try:
        meta = _read_json(path, "a cost model")
    except ReportError as exc:
        return None, str(exc)
    if not (meta.get("fit") or {}).get("heldout_rows"):
        return meta, (f"{path} stores no per-variant held-out predictions (a platform model, a fit with fewer than 3 "
                      "held-out variants, or one made before fit stored them): re-run `edgeprune fit` to get them")
    return meta, None


def _verify(run_dir: Path, verify_path: Path | None) -> tuple[dict | None, str | None]:
    path = verify_path or run_dir / VERIFY
    if not path.is_file():
        if verify_path is not None:
            raise ReportError(f"{verify_path} not found; write it with `edgeprune verify ARTIFACT --json > FILE`")
        return None, (f"no verify result in {run_dir} (none of {VERIFY}): run `edgeprune verify "
                      f"{run_dir / 'model.onnx'} --json > {path}` for the per-layer measured vs predicted breakdown")
    result = _read_json(path, "a verify result")
    if "error" in result:
        return None, f"{path} records a failed verify: {result['error']}"
    if "measured" not in result or "provenance" not in result:
        raise ReportError(f"{path} is not the output of `edgeprune verify --json` (no measured/provenance fields)")
    artifact = Path(result.get("artifact", ""))
    if artifact.is_file() and artifact.stat().st_mtime > path.stat().st_mtime:
        return result, f"{artifact} changed after {path} was written: this verify result may be of an older model"
    return result, None


def load_run(run_dir: str | Path, verify_path: str | Path | None = None) -> Run:
    """The run's summary, the cost model that priced it and a verify result, each when there is one."""
    run_dir = Path(run_dir)
    summary = _summary(run_dir)
    cost_model, cm_note = _cost_model(summary)
    verify, verify_note = _verify(run_dir, Path(verify_path) if verify_path else None)
    return Run(run_dir, summary, cost_model, cm_note, verify, verify_note)
