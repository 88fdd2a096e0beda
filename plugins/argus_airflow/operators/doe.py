"""Operators of the design-of-experiments sweep (``argus_doe_nightly``): plan, run a point,
analyse, confirm, promote. Each is a thin wrapper around the engine's sweep steps
(:mod:`argus.doe.spec`, ``sweep``, ``points``, ``analysis``, ``promotion``); they find their
sweep's folder from the run id, so no task hands paths to another."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator, BaseOperatorLink
from airflow.sdk.exceptions import AirflowFailException

from argus.doe.sweep import Sweep, sweep_id_for, sweeps_dir
from argus_airflow.doe_reports import report_url


class DoeReportLink(BaseOperatorLink):
    """The "DOE report" button of a sweep's tasks: the report page served by the api-server."""

    name = "DOE report"

    def get_link(self, operator: BaseOperator, *, ti_key) -> str:
        sweep_id = getattr(operator, "sweep_id", None)
        if not isinstance(sweep_id, str) or "{{" in sweep_id:
            sweep_id = ti_key.run_id
        return report_url(sweep_id_for(sweep_id))


class _SweepOperator(BaseOperator):
    """:param sweep_id: the sweep's id (its folder under ``<state>/doe``); default the run id."""

    template_fields: Sequence[str] = ("sweep_id",)
    ui_color = "#f3e8fd"

    def __init__(self, *, sweep_id: str = "{{ run_id }}", **kwargs: Any):
        super().__init__(**kwargs)
        self.sweep_id = sweep_id

    def sweep(self) -> Sweep:
        return Sweep(sweeps_dir() / sweep_id_for(self.sweep_id))


class DoePlanOperator(_SweepOperator):
    """Makes the design and the sweep's folder; returns the point indices to map over.

    :param spec: the sweep's settings, named like the DAG's params
        (:func:`argus_airflow.doe.doe_params`); default the DAG run's params.
    """

    def __init__(self, *, spec: Mapping[str, Any] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.spec = spec

    def execute(self, context) -> list[int]:
        from argus.doe.designs import DesignError
        from argus.doe.spec import SweepError, SweepSpec

        values = self.spec if self.spec is not None else context["params"]
        try:
            spec = SweepSpec.from_params({k: values[k] for k in values})
            sweep = Sweep.create(self.sweep().path, spec)
        except (DesignError, SweepError) as exc:  # a retry would fail the same way
            raise AirflowFailException(f"invalid sweep: {exc}") from exc
        spec, points = sweep.spec, sweep.points
        self.log.info("sweep %s in %s: %s design, %d runs, seed %d, %s mode, %g s per run, factors %s, fixed %s",
                      sweep.id, sweep.path, spec.kind, len(points), spec.seed, spec.mode, spec.seconds,
                      ", ".join(f"{f.name} {f.low:g}..{f.high:g}" for f in spec.factors), spec.fixed_settings())
        for p in points:
            self.log.info("point %d (%s): %s", p["index"], p["point"], p["settings"])
        return [p["index"] for p in points]


class DoePointOperator(_SweepOperator):
    """Runs one design point's benchmark and records it (map it over the plan's indices, one
    at a time). A point already recorded is not run again.

    :param index: the point's index in run order.
    """

    template_fields: Sequence[str] = ("sweep_id", "index")

    def __init__(self, *, index: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.index = index
        self._proc: subprocess.Popen | None = None

    def _started(self, proc: subprocess.Popen) -> None:
        self._proc = proc

    def execute(self, context) -> dict:
        from argus.doe.points import run_design_point

        sweep = self.sweep()
        point = sweep.point(int(self.index))
        self.log.info("sweep %s point %d (%s): %s", sweep.id, point["index"], point["point"], point["settings"])
        row, ran = run_design_point(sweep, int(self.index), on_start=self._started)
        self.log.info("%s: throughput %.4g frames/s, processing_time %.4g s",
                      "measured" if ran else "already recorded", row["throughput"], row["processing_time"])
        return row

    def on_kill(self) -> None:
        from argus.doe.points import stop_point

        stop_point(self._proc)


class DoeAnalyseOperator(_SweepOperator):
    """Fits the response surfaces, finds the optimum under the latency target and writes the
    report (linked from the task as "DOE report")."""

    operator_extra_links = (DoeReportLink(),)

    def execute(self, context) -> dict:
        from argus.doe.analysis import analyse

        sweep = self.sweep()
        summary = analyse(sweep.path)
        for name, fit in summary["fits"].items():
            self.log.info("%s: R² %.4g, adjusted %.4g, predicted %s, RMSE %.4g", name, fit["r2"], fit["adj_r2"],
                          "n/a" if fit["pred_r2"] is None else f"{fit['pred_r2']:.4g}", fit["rmse"])
        optimum = summary["optimum"]
        self.log.info("optimum %s (%s): %s", optimum["settings"], "feasible" if optimum["feasible"] else
                      "NO setting meets the latency target; least infeasible", {
                          k: round(p["mean"], 4) for k, p in optimum["predictions"].items()})
        self.log.info("report: %s (%s)", summary["report"], report_url(sweep.id))
        return summary


class DoeConfirmOperator(_SweepOperator):
    """Runs the optimum (the spec's ``confirm_runs`` times), compares the results with the
    prediction intervals and rewrites the report with the confirmation."""

    operator_extra_links = (DoeReportLink(),)

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._proc: subprocess.Popen | None = None

    def _started(self, proc: subprocess.Popen) -> None:
        self._proc = proc

    def execute(self, context) -> dict:
        from argus.doe.analysis import analyse, optimum_settings
        from argus.doe.points import run_design_point

        sweep = self.sweep()
        self.log.info("confirming %s at %s", sweep.id, optimum_settings(sweep))
        rows = [run_design_point(sweep, i, confirmation=True, on_start=self._started)[0]
                for i in range(sweep.spec.confirm_runs)]
        summary = analyse(sweep.path)
        for name, check in (summary["confirmation"] or {}).items():
            lo, hi = check["interval"]
            self.log.info("%s: observed %.4g, predicted %.4g, prediction interval %.4g .. %.4g: %s", name,
                          check["observed"], check["predicted"], lo, hi, "agrees" if check["agrees"] else "DISAGREES")
        self.log.info("report: %s (%s)", summary["report"], report_url(sweep.id))
        return {"runs": rows, "confirmation": summary["confirmation"], "report": summary["report"]}

    def on_kill(self) -> None:
        from argus.doe.points import stop_point

        stop_point(self._proc)


class DoePromoteOperator(_SweepOperator):
    """Stores the confirmed optimum in an Airflow Variable for the streaming DAG, only when the
    confirmation agrees with the prediction (:func:`argus.doe.promotion.decide_promotion`);
    otherwise logs why and leaves the Variable as it is. Returns the decision.

    :param variable: the Variable (default :data:`argus_airflow.doe.STREAM_SETTINGS_VARIABLE`).
    """

    operator_extra_links = (DoeReportLink(),)

    def __init__(self, *, variable: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.variable = variable

    def execute(self, context) -> dict:
        from argus.doe.promotion import promote

        from argus_airflow.doe import STREAM_SETTINGS_VARIABLE, store_promoted

        variable = self.variable or STREAM_SETTINGS_VARIABLE
        decision = promote(self.sweep().path)
        if decision.promote:
            store_promoted(decision.value, variable)
            self.log.info("promoted to Variable %s: executors=%s batch_size=%s (decoding_rate=%s) from sweep %s",
                          variable, decision.value["executors"], decision.value["batch_size"],
                          decision.value["decoding_rate"], decision.value["sweep_id"])
        else:
            self.log.warning("not promoted, Variable %s left as it is: %s", variable, "; ".join(decision.reasons))
        return {**decision.to_dict(), "variable": variable}
