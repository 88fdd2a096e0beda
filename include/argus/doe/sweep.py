"""A sweep's folder: its design, the rows of the points run, its analysis and promotion files.

A sweep lives in one folder, ``<state>/doe/<sweep-id>/`` (``ARGUS_DOE_DIR`` moves the parent)::

    design.json        the spec (factors, kind, mode, seconds, target, ...) and the plan in run order
    runs.csv           one row per point run: index, factors as run, responses, what was measured
    confirmation.csv   the confirmation run(s) at the optimum, same columns
    point-NN.log       each point's job log (archive mode)
    report.md, contour_*.png, analysis.json    from :func:`argus.doe.report.write_report`
    promotion.json     the promotion decision and its reasons

Rows are appended once per point index (:meth:`Sweep.append_run`), so a retried point never
adds a second row; files are replaced whole (:func:`write_atomic`), so a killed task never
leaves half a file.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from argus import config
from argus.config import ArgusConfig
from argus.doe.designs import make_design
from argus.doe.model import clean
from argus.doe.spec import SweepError, SweepSpec

DESIGN_FILE, RUNS_FILE, CONFIRMATION_FILE = "design.json", "runs.csv", "confirmation.csv"
ANALYSIS_FILE, REPORT_FILE, PROMOTION_FILE = "analysis.json", "report.md", "promotion.json"


def sweeps_dir(cfg: ArgusConfig | None = None) -> Path:
    """The parent folder of every sweep: ``ARGUS_DOE_DIR``, else ``<state dir>/doe``."""
    return config.doe_dir() or (cfg or ArgusConfig()).state_dir / "doe"


def sweep_id_for(run_id: str) -> str:
    """A folder-safe sweep id from an Airflow run id (or any text): stable, so retries find their sweep."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", run_id).strip("-.") or "sweep"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Sweep:
    """A sweep's folder (see the module's docstring for its layout).

    :param path: the folder, ``<sweeps_dir>/<sweep-id>``.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def id(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, path: str | Path, spec: SweepSpec) -> Sweep:
        """Make the design and write ``design.json``; if the folder already holds this spec's
        sweep (a retried plan task), it is returned as it is, design and runs kept.

        :raises SweepError: the folder holds a sweep of another spec.
        """
        sweep = cls(path)
        if (sweep.path / DESIGN_FILE).exists():
            stored = sweep.spec
            same = {**stored.to_dict(), "seed": None} == {**spec.to_dict(), "seed": None}
            if not same or (spec.seed is not None and spec.seed != stored.seed):
                raise SweepError(f"{sweep.path} holds another sweep ({stored.kind} over "
                                 f"{', '.join(f.name for f in stored.factors)}); use a new sweep id")
            return sweep
        design = make_design(spec.kind, spec.factors, center=spec.center, runs=spec.runs, seed=spec.seed,
                             model=spec.response_model)
        spec = SweepSpec.from_dict({**spec.to_dict(), "seed": design.seed})
        plan = design.to_frame()
        fixed = spec.fixed_settings()
        points = [{"index": i, "run": int(row.run), "point": row.point,
                   "settings": {**{f.name: _number(getattr(row, f.name)) for f in spec.factors}, **fixed}}
                  for i, row in enumerate(plan.itertuples(index=False))]
        sweep.path.mkdir(parents=True, exist_ok=True)
        doc = {"sweep_id": sweep.id, "created": utc_now(), "spec": spec.to_dict(),
               "design": {"kind": design.kind, "runs": design.n_runs, "seed": design.seed, "params": design.params,
                          "log_det": design.log_det(spec.response_model) if design.n_runs else None},
               "points": points}
        write_atomic(sweep.path / DESIGN_FILE, json.dumps(clean(doc), indent=2) + "\n")
        return sweep

    # -- what was planned ------------------------------------------------------------------
    def _design(self) -> dict:
        try:
            return json.loads((self.path / DESIGN_FILE).read_text())
        except FileNotFoundError:
            raise SweepError(f"no sweep in {self.path} ({DESIGN_FILE} missing)") from None

    @property
    def spec(self) -> SweepSpec:
        return SweepSpec.from_dict(self._design()["spec"])

    @property
    def points(self) -> list[dict]:
        """The planned points in run order: ``index``, ``run`` (standard order), ``point``, ``settings``."""
        return self._design()["points"]

    def point(self, index: int) -> dict:
        points = self.points
        if not 0 <= index < len(points):
            raise SweepError(f"sweep {self.id} has points 0..{len(points) - 1}, not {index}")
        return points[index]

    # -- what was run ----------------------------------------------------------------------
    @contextmanager
    def _locked(self):
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _table(self, name: str) -> pd.DataFrame:
        path = self.path / name
        return pd.read_csv(path) if path.exists() and path.stat().st_size else pd.DataFrame()

    def runs(self) -> pd.DataFrame:
        """``runs.csv``: one row per point run, in the order they finished."""
        return self._table(RUNS_FILE)

    def confirmations(self) -> pd.DataFrame:
        """``confirmation.csv``: the confirmation runs."""
        return self._table(CONFIRMATION_FILE)

    def recorded(self, index: int, table: str = RUNS_FILE) -> dict | None:
        """The row recorded for point ``index`` (of ``runs.csv`` or ``confirmation.csv``), if any."""
        frame = self._table(table)
        if frame.empty:
            return None
        rows = frame[frame["index"] == index]
        return clean(rows.iloc[0].to_dict()) if len(rows) else None

    def append_run(self, index: int, row: Mapping, table: str = RUNS_FILE) -> bool:
        """Record point ``index``'s result; a second call for the same index changes nothing.

        :return: whether the row was added (False: the point was already recorded).
        """
        with self._locked():
            frame = self._table(table)
            if not frame.empty and (frame["index"] == index).any():
                return False
            new = pd.DataFrame([{"index": index, **{k: v for k, v in row.items() if k != "index"}}])
            frame = new if frame.empty else pd.concat([frame, new], ignore_index=True)
            write_atomic(self.path / table, frame.to_csv(index=False))
            return True

    def pending(self) -> list[int]:
        """Indices of the planned points not run yet."""
        done = set(self.runs().get("index", pd.Series(dtype=int)).astype(int))
        return [p["index"] for p in self.points if p["index"] not in done]

    @property
    def report_path(self) -> Path:
        return self.path / REPORT_FILE

    def analysis(self) -> dict:
        try:
            return json.loads((self.path / ANALYSIS_FILE).read_text())
        except FileNotFoundError:
            raise SweepError(f"sweep {self.id} has not been analysed ({ANALYSIS_FILE} missing)") from None


def _number(value):
    value = float(value)
    return int(value) if value.is_integer() else value
