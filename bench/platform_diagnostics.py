"""Measurement diagnostics of the platform benchmark: pass noise, re-measurement agreement, the machine state."""
from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np

from platform_remeasure import key


def against_original(nets: list[dict]) -> dict | None:
    """How re-measured networks (records carrying ``original_ms``) compare with their first, loaded-machine
    measurement: raw time ratios, so the two machines' reference speeds do not enter."""
    pairs = [(r["raw_ms"], r["original_ms"]) for r in nets if "original_ms" in r]
    if not pairs:
        return None
    ratio = np.array([o / n for n, o in pairs])
    return {"n": len(pairs), "median_original_over_new": float(np.median(ratio)),
            "share_original_over_2x": float(np.mean(ratio > 2 * np.median(ratio))),
            "share_original_over_5x": float(np.mean(ratio > 5 * np.median(ratio)))}


def reproducibility(nets: list[dict], check: Path, load, beta: float) -> dict | None:
    """Agreement of an independent re-measurement (``check``, e.g. the settle run, read by ``load``) with these
    measurements, both corrected with ``beta``: the ceiling the measurements put on any model's ±5/±10 % figures. A perfect model
    errs by one measurement's noise, a repeat pair differs by two, so ``perfect_model_*`` counts pairs within
    √2 × the band (independent, equal noise)."""
    if not check.is_file():
        return None
    other, _ = load(check, beta)
    ratio = {key(r): r["latency_ms"] / r["ref_median_ms"] for r in other}
    diff = np.abs([(r["latency_ms"] / r["ref_median_ms"]) / ratio[key(r)] - 1 for r in nets if key(r) in ratio])
    return {"file": check.name, "n": int(len(diff)), "drift_exponent": beta, "median_abs_diff": float(np.median(diff)),
            "within_5": float(np.mean(diff <= 0.05)), "within_10": float(np.mean(diff <= 0.10)),
            "perfect_model_within_5": float(np.mean(diff <= 0.05 * np.sqrt(2))),
            "perfect_model_within_10": float(np.mean(diff <= 0.10 * np.sqrt(2)))}


def noise_figures(nets: list[dict], probes: list[dict]) -> dict:
    """Spread of the passes of one network, and of the dense ResNet-20 re-measured through the run."""
    cvs = [r["pass_cv"] for r in nets]
    probe, raw = [r["latency_ms"] for r in probes], [r["raw_ms"] for r in probes]
    cv = lambda v: statistics.pstdev(v) / statistics.mean(v) if len(v) > 1 else None  # noqa: E731
    return {"median_pass_cv": statistics.median(cvs), "p90_pass_cv": float(np.percentile(cvs, 90)),
            "probe_n": len(probe), "probe_cv": cv(probe), "probe_cv_raw": cv(raw), "probe_ms": probe,
            "latency": "median of the drift-corrected passes (pass × (reference median / its reference)^beta)"}


def pass_noise_ceiling(recs: list[dict]) -> dict:
    """Share of a perfect model's predictions expected within ±5/±10 % from pass-to-pass noise alone: each
    network's latency (median of n passes) taken as normal around the truth with sd 1.25 · pass_cv / √n. State
    changes between measurement sessions are not in it (see the re-measurement agreement)."""
    from scipy.stats import norm

    sd = np.array([1.2533 * max(r["pass_cv"], 1e-6) / np.sqrt(len(r["passes_ms"])) for r in recs])
    return {"n": len(recs), "within_5": float(np.mean(2 * norm.cdf(0.05 / sd) - 1)),
            "within_10": float(np.mean(2 * norm.cdf(0.10 / sd) - 1))}


def state_effect(recs: list[dict], pred: np.ndarray) -> dict:
    """Per family: Spearman of the model's log error with the network's median reference time (the machine state
    it was measured in, after drift correction) and the share within ±10 % once a per-family linear trend of the log
    error on the log reference time is removed — a diagnostic of the measurement, never used by the model."""
    from scipy.stats import spearmanr

    out = {}
    for fam in sorted({r["spec"]["family"] for r in recs}):
        idx = [i for i, r in enumerate(recs) if r["spec"]["family"] == fam]
        res = np.log([recs[i]["latency_ms"] / pred[i] for i in idx])
        ref = np.log([statistics.median(recs[i]["reference_ms"]) for i in idx])
        slope = float(np.polyfit(ref - ref.mean(), res, 1)[0])
        adjusted = res - slope * (ref - ref.mean())
        out[fam] = {"n": len(idx), "spearman_error_vs_reference": float(spearmanr(res, ref)[0]), "slope": slope,
                    "within_10": float(np.mean(np.abs(np.expm1(-res)) <= 0.1)),
                    "within_10_state_trend_removed": float(np.mean(np.abs(np.expm1(-adjusted)) <= 0.1))}
    return out
