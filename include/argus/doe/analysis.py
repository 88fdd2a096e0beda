"""A sweep's analysis: a response surface per response, the best settings under the
latency target, and the confirmation runs compared with their prediction intervals."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from argus.doe.designs import DesignError, Factor
from argus.doe.model import clean
from argus.doe.spec import RESPONSES, SweepError
from argus.doe.sweep import ANALYSIS_FILE, Sweep, write_atomic

def fit_sweep_response(runs: pd.DataFrame, factors: Sequence[Factor], response: str, model: str = "quadratic"):
    """:func:`argus.doe.model.fit_response`, except that a factor run at two levels only (an
    integer factor such as executors 1..2, whose centre rounds onto a face) has no square
    term: its curvature cannot be estimated, and with it the model matrix would be singular.
    The model is then named e.g. ``quadratic without executors^2``."""
    import numpy as np
    import statsmodels.formula.api as smf

    from argus.doe.designs import to_coded
    from argus.doe.model import ResponseModel, _column, fit_response
    from argus.doe.terms import model_matrix, model_terms

    flat = [i for i, f in enumerate(factors) if runs[f.name].nunique() < 3]
    if model != "quadratic" or not flat:
        return fit_response(runs, factors, response, model=model)
    terms = tuple(t for t in model_terms(len(factors), model) if not (len(t) == 2 and t[0] == t[1] and t[0] in flat))
    names = [f.name for f in factors]
    data = runs[[*names, response]].apply(pd.to_numeric, errors="raise")
    data = data[data[response].notna()].reset_index(drop=True)
    if len(data) <= len(terms):
        raise DesignError(f"{len(data)} runs of {response!r} cannot fit {len(terms)} terms and leave an error estimate")
    x = model_matrix(to_coded(data, factors).to_numpy(), terms)
    if np.linalg.matrix_rank(x) < len(terms):
        raise DesignError("the runs cannot separate all terms of the model (the model matrix is singular)")
    frame = pd.DataFrame(x[:, 1:], columns=[_column(t) for t in terms[1:]])
    frame["y"] = data[response].to_numpy(dtype=float)
    results = smf.ols("y ~ " + " + ".join(frame.columns[:-1]), data=frame).fit()
    label = f"{model} without " + ", ".join(f"{factors[i].name}^2" for i in flat)
    return ResponseModel(response, factors, label, terms, results, data)


def optimum_settings(sweep: Sweep) -> dict:
    """The analysed optimum's settings (factors varied only)."""
    optimum = sweep.analysis().get("optimum")
    if not optimum:
        raise SweepError(f"sweep {sweep.id}'s analysis has no optimum")
    return dict(optimum["settings"])


def analyse(sweep_dir: str | Path, latency_target: float | None = None, *, alpha: float | None = None,
            n_future: int | None = None) -> dict:
    """Fit ``throughput`` and ``processing_time``, find the settings that maximise throughput
    with ``processing_time <= latency_target``, compare the confirmation runs if there are
    any, and write the report.

    :param sweep_dir: the sweep's folder.
    :param latency_target: default the spec's.
    :param alpha: 1 - coverage of the intervals; default the spec's.
    :param n_future: prediction intervals for the mean of this many confirmation runs;
        default the spec's ``confirm_runs``.
    :return: ``sweep_id``, ``report``, ``runs``, ``fits`` (R², adjusted and predicted R², RMSE
        per response), ``optimum`` and ``confirmation`` (None before confirmation runs).
    """
    from argus.doe.optimum import maximize, optimize
    from argus.doe.report import write_report

    sweep = Sweep(sweep_dir)
    spec = sweep.spec
    target = spec.latency_target if latency_target is None else float(latency_target)
    constraint = f"processing_time<={target:g}"
    runs = sweep.runs()
    if runs.empty:
        raise SweepError(f"sweep {sweep.id} has no runs to analyse")
    missing = sweep.pending()
    if missing:
        raise SweepError(f"sweep {sweep.id}: point(s) {missing} not run")
    runs = runs.sort_values("index").reset_index(drop=True)
    models = {r: fit_sweep_response(runs, spec.factors, r, model=spec.response_model) for r in RESPONSES}
    best = optimize(models, spec.factors, objective=maximize("throughput"), constraints=[constraint],
                    alpha=spec.alpha if alpha is None else alpha,
                    n_future=spec.confirm_runs if n_future is None else n_future)
    confirmations = sweep.confirmations()
    checks = None
    if not confirmations.empty:
        checks = best.confirm({r: confirmations[r].astype(float).tolist() for r in RESPONSES})
    report = write_report(sweep.path, models, optimum=best, constraints=[constraint], confirmation=checks,
                          runs=runs, title=f"DOE sweep {sweep.id}",
                          source=f"{len(runs)} {spec.mode} benchmark runs of {spec.model}, {spec.kind} design, "
                                 f"seed {spec.seed}, {spec.seconds:g} s per run; processing_time target {target:g} s")
    analysis = json.loads((sweep.path / ANALYSIS_FILE).read_text())
    analysis.update(sweep_id=sweep.id, latency_target=target, mode=spec.mode, model=spec.model,
                    fixed=spec.fixed_settings(), confirm_runs=spec.confirm_runs)
    write_atomic(sweep.path / ANALYSIS_FILE, json.dumps(clean(analysis), indent=2) + "\n")
    return clean({
        "sweep_id": sweep.id, "report": str(report), "runs": len(runs),
        "fits": {r: {"r2": m.r2, "adj_r2": m.adj_r2, "pred_r2": m.pred_r2, "rmse": m.rmse} for r, m in models.items()},
        "optimum": best.to_dict(),
        "confirmation": analysis.get("confirmation"),
    })
