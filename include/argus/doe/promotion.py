"""Whether a sweep's confirmed optimum may replace the streaming job's settings."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from argus.doe.model import clean
from argus.doe.spec import RESPONSES
from argus.doe.sweep import PROMOTION_FILE, Sweep, write_atomic, utc_now

@dataclass(frozen=True)
class Promotion:
    """Whether a sweep's optimum may replace the streaming job's settings.

    :param promote: the optimum meets the target as predicted and every confirmation agrees.
    :param reasons: why not (empty when promoted).
    :param value: what to promote: ``executors``, ``batch_size``, ``decoding_rate``, the sweep
        id, the predicted and confirmed responses, the report and the time (also when refused,
        for the record).
    """

    promote: bool
    reasons: tuple[str, ...]
    value: dict

    def to_dict(self) -> dict:
        return clean({"promote": self.promote, "reasons": list(self.reasons), "value": self.value})


def decide_promotion(analysis: Mapping, latency_target: float | None = None, *, now: str | None = None) -> Promotion:
    """Promote only a confirmed optimum: it is predicted to meet ``processing_time <= target``,
    every confirmed response's observed mean lies in its prediction interval, and the observed
    processing time meets the target too.

    :param analysis: ``analysis.json`` of an analysed sweep (with its ``confirmation``).
    :param latency_target: default the one the analysis was made with.
    """
    target = float(latency_target if latency_target is not None else analysis["latency_target"])
    optimum = analysis.get("optimum") or {}
    confirmation = analysis.get("confirmation") or {}
    reasons = []
    if not optimum:
        reasons.append("the analysis found no optimum")
    elif not optimum.get("feasible", False):
        predicted = optimum["predictions"]["processing_time"]["mean"]
        reasons.append(f"no setting is predicted to meet processing_time <= {target:g} s "
                       f"(least infeasible predicts {predicted:.4g} s)")
    missing = [r for r in RESPONSES if r not in confirmation]
    if missing:
        reasons.append(f"no confirmation run for {', '.join(missing)}")
    for name, check in confirmation.items():
        if not check["agrees"]:
            lo, hi = check["interval"]
            reasons.append(f"confirmation disagrees on {name}: observed {check['observed']:.4g}, "
                           f"predicted {check['predicted']:.4g} (prediction interval {lo:.4g} .. {hi:.4g})")
    observed_time = confirmation.get("processing_time", {}).get("observed")
    if observed_time is not None and observed_time > target:
        reasons.append(f"the confirmation run's processing_time {observed_time:.4g} s exceeds the target {target:g} s")
    settings = {**(analysis.get("fixed") or {}), **(optimum.get("settings") or {})}
    value = {
        "executors": settings.get("executors"), "batch_size": settings.get("batch_size"),
        "decoding_rate": settings.get("decoding_rate"),
        "sweep_id": analysis.get("sweep_id"), "mode": analysis.get("mode"), "model": analysis.get("model"),
        "latency_target_s": target,
        "predicted": {k: p["mean"] for k, p in (optimum.get("predictions") or {}).items()},
        "prediction_interval": {k: p["prediction"] for k, p in (optimum.get("predictions") or {}).items()},
        "confirmed": {k: c["observed"] for k, c in confirmation.items()},
        "promoted_at": now or utc_now(),
    }
    return Promotion(not reasons, tuple(reasons), clean(value))


def promote(sweep_dir: str | Path, latency_target: float | None = None) -> Promotion:
    """:func:`decide_promotion` on the sweep's analysis; writes ``promotion.json``. Storing the
    promoted settings where the streaming job reads them is the caller's (an Airflow Variable)."""
    sweep = Sweep(sweep_dir)
    decision = decide_promotion(sweep.analysis(), latency_target)
    value = {**decision.value, "report": str(sweep.report_path)}
    decision = Promotion(decision.promote, decision.reasons, value)
    write_atomic(sweep.path / PROMOTION_FILE, json.dumps(decision.to_dict(), indent=2) + "\n")
    return decision
