"""Experimental designs in coded and natural units, from pyDOE3.

Designs are generated in coded units (-1 = low, 0 = centre, +1 = high) and mapped to the
natural units the system is run in. Integer factors (executors per GPU, batch size) are
rounded to the nearest integer, half up, and the design records what is actually run: its
coded values are recomputed from the rounded natural values, so the fitted model sees the
settings the benchmark used, not the ones the generator asked for.

Kinds (:data:`KINDS`):

* ``fccd``: face-centred central composite, ``pyDOE3.ccdesign(k, center=(c1, c2), face='ccf')``,
  ``2^k`` factorial + ``2k`` axial points on the faces + centre points (the talk's design);
* ``ff2`` / ``ff3``: two- and three-level full factorials (``ff2n``, ``fullfact``), plus
  ``center`` extra centre runs;
* ``lhs``: a maximin Latin hypercube (``pyDOE3.lhs``), space filling;
* ``d-optimal``: ``runs`` points picked from a candidate set by Fedorov's exchange algorithm
  so as to maximise ``det(XᵀX)`` of the quadratic model (points may repeat).

Runs are put in a random order drawn from ``seed``; the seed is recorded (drawn afresh when
none is given) so a plan can be made again.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from argus.doe.terms import log_det_information, model_matrix, model_terms

KINDS = ("fccd", "ff2", "ff3", "lhs", "d-optimal")

#: columns of a plan that are not factors or responses
RUN_COLUMNS = ("order", "run", "block", "point")


class DesignError(ValueError):
    """A design that cannot be made as asked (bad ranges, too few runs, unknown kind)."""


@dataclass(frozen=True)
class Factor:
    """A controllable setting of the system and the range it is studied over.

    :param name: column name in run tables.
    :param low: natural value coded -1.
    :param high: natural value coded +1.
    :param integer: only whole numbers can be run (values are rounded, half up).
    :param unit: for reports, e.g. ``Hz``.
    """

    name: str
    low: float
    high: float
    integer: bool = False
    unit: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.high > self.low):
            raise DesignError(f"factor {self.name!r}: need low < high, got {self.low} .. {self.high}")
        if self.integer and math.floor(self.high) < math.ceil(self.low):
            raise DesignError(f"integer factor {self.name!r} has no whole number in {self.low} .. {self.high}")

    @property
    def center(self) -> float:
        return (self.low + self.high) / 2

    @property
    def half_range(self) -> float:
        return (self.high - self.low) / 2

    def to_coded(self, natural) -> np.ndarray:
        """Natural values to coded units."""
        return (np.asarray(natural, dtype=float) - self.center) / self.half_range

    def to_natural(self, coded) -> np.ndarray:
        """Coded values to natural units, as run: integer factors rounded half up, inside the range."""
        return self.as_run(self.center + np.asarray(coded, dtype=float) * self.half_range)

    def as_run(self, natural) -> np.ndarray:
        """The value a benchmark can actually use for ``natural`` (rounded for integer factors)."""
        values = np.asarray(natural, dtype=float)
        if not self.integer:
            return values
        # half up, not numpy's half-to-even: 2.5 executors means 3 on every platform
        return np.clip(np.floor(values + 0.5), math.ceil(self.low), math.floor(self.high))

    def to_dict(self) -> dict:
        return {"name": self.name, "low": self.low, "high": self.high, "integer": self.integer, "unit": self.unit}


def to_coded(natural: pd.DataFrame, factors: Sequence[Factor]) -> pd.DataFrame:
    """The factor columns of ``natural`` in coded units."""
    return pd.DataFrame({f.name: f.to_coded(natural[f.name]) for f in factors}, index=natural.index)


def to_natural(coded: pd.DataFrame | np.ndarray, factors: Sequence[Factor]) -> pd.DataFrame:
    """Coded runs (a frame with the factor names, or an array in factor order) in natural units, as run."""
    if isinstance(coded, pd.DataFrame):
        return pd.DataFrame({f.name: f.to_natural(coded[f.name]) for f in factors}, index=coded.index)
    coded = np.atleast_2d(np.asarray(coded, dtype=float))
    return pd.DataFrame({f.name: f.to_natural(coded[:, i]) for i, f in enumerate(factors)})


def infer_factors(runs: pd.DataFrame, names: Iterable[str]) -> list[Factor]:
    """Factors whose ranges are the observed minimum and maximum of ``runs``; integer if every value is whole.

    :param runs: a run table with one column per factor.
    :param names: the factor columns.
    """
    factors = []
    for name in names:
        if name not in runs.columns:
            raise DesignError(f"no column {name!r} in the runs (columns: {', '.join(map(str, runs.columns))})")
        values = pd.to_numeric(runs[name], errors="raise").to_numpy(dtype=float)
        integer = bool(np.all(np.isclose(values, np.round(values))))
        factors.append(Factor(name, float(values.min()), float(values.max()), integer=integer))
    return factors


@dataclass(frozen=True)
class Design:
    """A design: its runs in standard order, coded and natural, and the random order to run them in.

    :param kind: one of :data:`KINDS`.
    :param factors: the factors, in column order.
    :param requested: coded matrix as the generator made it, standard order.
    :param natural: runs in natural units as run (integer factors rounded), standard order.
    :param coded: ``natural`` back in coded units (equal to ``requested`` unless rounding moved a point).
    :param points: the kind of each run: ``factorial``, ``axial``, ``center``, ``lhs``, ``d-optimal``.
    :param sequence: standard-order indices in the order the runs are to be made.
    :param seed: the seed of the randomisation (and of LHS / D-optimal generation).
    :param params: what the generator was called with, e.g. ``{"center": [3, 3], "face": "ccf"}``.
    """

    kind: str
    factors: tuple[Factor, ...]
    requested: np.ndarray
    natural: pd.DataFrame
    coded: pd.DataFrame
    points: tuple[str, ...]
    sequence: np.ndarray
    seed: int
    params: dict = field(default_factory=dict)

    @property
    def n_runs(self) -> int:
        return len(self.natural)

    @property
    def rounded(self) -> np.ndarray:
        """Boolean mask of runs that rounding moved away from the requested point."""
        return ~np.all(np.isclose(self.coded.to_numpy(), self.requested), axis=1)

    def log_det(self, model: str = "quadratic") -> float:
        """``log det(XᵀX)`` of the runs as made, for ``model`` (the D-criterion)."""
        return log_det_information(self.coded.to_numpy(), model)

    def to_frame(self, responses: Sequence[str] = ()) -> pd.DataFrame:
        """The plan in run order: ``order``, ``run`` (standard order), ``block``, ``point``, the
        factors in natural units and an empty column per response, to be filled in."""
        idx = self.sequence
        frame = pd.DataFrame({
            "order": np.arange(1, self.n_runs + 1),
            "run": idx + 1,
            "block": 1,
            "point": [self.points[i] for i in idx],
        })
        for f in self.factors:
            values = self.natural[f.name].to_numpy()[idx]
            frame[f.name] = values.astype(int) if f.integer else values
        for name in responses:
            frame[name] = np.nan
        return frame


def _point_kind(row: np.ndarray) -> str:
    nonzero = np.count_nonzero(~np.isclose(row, 0.0))
    if nonzero == 0:
        return "center"
    if np.all(np.isclose(np.abs(row), 1.0)):
        return "factorial"
    return "axial" if nonzero == 1 else "factorial"


def _center_pair(center: int | Sequence[int]) -> tuple[int, int]:
    """pyDOE3 puts ``c1`` centre points after the factorial block and ``c2`` after the axial one."""
    if isinstance(center, int | np.integer):
        if center < 0:
            raise DesignError("center must be >= 0")
        return int(center) // 2, int(center) - int(center) // 2
    c1, c2 = (int(c) for c in center)
    if c1 < 0 or c2 < 0:
        raise DesignError("center must be >= 0")
    return c1, c2


def _extra_centers(center: int | None) -> int:
    if center is None:
        return 0
    if not isinstance(center, int | np.integer) or center < 0:
        raise DesignError("center must be a whole number >= 0 for a full factorial")
    return int(center)


def default_candidates(factors: Sequence[Factor], levels: int = 5, max_integer_levels: int = 21) -> np.ndarray:
    """A grid of candidate points in coded units for D-optimal selection.

    Integer factors with at most ``max_integer_levels`` whole numbers in range offer every one
    of them; other factors offer ``levels`` evenly spaced levels.
    """
    axes = []
    for f in factors:
        whole = np.arange(math.ceil(f.low), math.floor(f.high) + 1)
        if f.integer and len(whole) <= max_integer_levels:
            axes.append(f.to_coded(whole))
        else:
            axes.append(f.to_coded(f.as_run(f.center + np.linspace(-1, 1, levels) * f.half_range)))
    return np.array(list(itertools.product(*[np.unique(a) for a in axes])), dtype=float)


def fedorov_exchange(candidates: np.ndarray, runs: int, rng: np.random.Generator, model: str = "quadratic",
                     starts: int = 8, max_iter: int = 500) -> np.ndarray:
    """Indices of ``runs`` candidate points (repeats allowed) maximising ``det(XᵀX)``: Fedorov's exchange.

    Each start draws a random subset; each step makes the single swap (design point i for
    candidate j) with the largest gain ``Δ(i, j) = d(j) - d(i) - [d(i)d(j) - d(i, j)²]``, where
    ``d(a, b) = x_aᵀ(XᵀX)⁻¹x_b`` (Fedorov 1972), until no swap gains. The best start wins.

    :param candidates: coded candidate points, ``(n_candidates, n_factors)``.
    :param runs: design size; at least the number of model terms.
    :param rng: randomness of the starts.
    :param model: the model whose matrix is used (see :func:`argus.doe.terms.model_terms`).
    :param starts: number of random starts.
    :param max_iter: exchanges per start at most.
    """
    f = model_matrix(candidates, model_terms(candidates.shape[1], model))
    n_terms = f.shape[1]
    if runs < n_terms:
        raise DesignError(f"a {model} model in {candidates.shape[1]} factors has {n_terms} terms: "
                          f"need >= {n_terms} runs")
    if np.linalg.matrix_rank(f) < n_terms:
        raise DesignError(f"the candidate set cannot estimate a {model} model (too few distinct levels)")
    # a tiny ridge keeps a singular random start invertible; the exchanges leave it behind at once
    ridge = 1e-8 * np.trace(f.T @ f) / len(f) * np.eye(n_terms)
    best_idx, best_logdet = None, -np.inf
    for _ in range(starts):
        idx = rng.choice(len(f), size=runs, replace=runs > len(f))
        for _ in range(max_iter):
            x = f[idx]
            m_inv = np.linalg.inv(x.T @ x + ridge)
            cand_m = f @ m_inv
            d_cand = np.einsum("ij,ij->i", cand_m, f)          # d(j) for every candidate
            d_des = d_cand[idx]                                 # d(i) for every design point
            cross = cand_m[idx] @ f.T                           # d(i, j)
            gain = d_cand[None, :] - d_des[:, None] - (d_des[:, None] * d_cand[None, :] - cross ** 2)
            i, j = np.unravel_index(np.argmax(gain), gain.shape)
            if gain[i, j] <= 1e-9:
                break
            idx[i] = j
        sign, logdet = np.linalg.slogdet(f[idx].T @ f[idx])
        if sign > 0 and logdet > best_logdet + 1e-12:
            best_idx, best_logdet = idx.copy(), logdet
    if best_idx is None:
        raise DesignError("no non-singular design found; add runs or candidates")
    # standard order: sorted by the coded settings, so replicates sit together
    return best_idx[np.lexsort(candidates[best_idx].T[::-1])]


def make_design(kind: str, factors: Sequence[Factor], *, center: int | Sequence[int] | None = None,
                runs: int | None = None, seed: int | None = None, randomize: bool = True,
                candidates: pd.DataFrame | None = None, model: str = "quadratic") -> Design:
    """Make a design of ``kind`` over ``factors``.

    :param kind: ``fccd``, ``ff2``, ``ff3``, ``lhs`` or ``d-optimal``.
    :param factors: the factors.
    :param center: centre points: for ``fccd`` an int (split between the two pyDOE3 blocks,
        6 -> ``(3, 3)``) or the pyDOE3 pair itself, default 6; extra centre runs for ``ff2`` /
        ``ff3``, default 0.
    :param runs: number of runs for ``lhs`` (default ``10 k``) and ``d-optimal`` (default twice
        the number of model terms).
    :param seed: seed of the run order and of ``lhs`` / ``d-optimal`` generation; drawn and
        recorded when ``None``.
    :param randomize: put runs in a random order (else standard order).
    :param candidates: ``d-optimal`` only: candidate settings in natural units (one column per
        factor); default a grid (see :func:`default_candidates`).
    :param model: ``d-optimal`` only: the model the design must estimate.
    """
    factors = tuple(factors)
    if not factors:
        raise DesignError("a design needs at least one factor")
    if len({f.name for f in factors}) != len(factors):
        raise DesignError("factor names must be unique")
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % 2**32)
    rng = np.random.default_rng(seed)
    k = len(factors)
    kind = kind.lower()
    params: dict = {}
    points: list[str] | None = None

    if kind == "fccd":
        from pyDOE3 import ccdesign

        if k < 2:
            raise DesignError("a central composite design needs at least 2 factors")
        pair = _center_pair(6 if center is None else center)
        requested = ccdesign(k, center=pair, face="ccf")
        params = {"center": list(pair), "face": "ccf"}
    elif kind == "ff2":
        from pyDOE3 import ff2n

        extra = _extra_centers(center)
        requested = np.vstack([ff2n(k), np.zeros((extra, k))])
        params = {"center": extra}
    elif kind == "ff3":
        from pyDOE3 import fullfact

        extra = _extra_centers(center)
        requested = np.vstack([fullfact([3] * k) - 1.0, np.zeros((extra, k))])
        params = {"center": extra}
    elif kind == "lhs":
        from pyDOE3 import lhs

        n = runs or 10 * k
        requested = 2.0 * lhs(k, samples=n, criterion="maximin", iterations=20, seed=rng) - 1.0
        params = {"runs": n, "criterion": "maximin"}
        points = ["lhs"] * n
    elif kind in ("d-optimal", "dopt"):
        kind = "d-optimal"
        if candidates is None:
            pool = default_candidates(factors)
        else:
            pool = to_coded(pd.DataFrame({f.name: f.as_run(candidates[f.name]) for f in factors}), factors).to_numpy()
        n = runs or 2 * len(model_terms(k, model))
        chosen = fedorov_exchange(pool, n, rng, model=model)
        requested = pool[chosen]
        params = {"runs": n, "model": model, "candidates": len(pool), "algorithm": "fedorov"}
        points = ["d-optimal"] * n
    else:
        raise DesignError(f"unknown design kind {kind!r}; expected one of {', '.join(KINDS)}")

    requested = np.asarray(requested, dtype=float)
    natural = to_natural(requested, factors)
    coded = to_coded(natural, factors)
    if points is None:
        points = [_point_kind(row) for row in requested]
    sequence = rng.permutation(len(requested)) if randomize else np.arange(len(requested))
    return Design(kind=kind, factors=factors, requested=requested, natural=natural, coded=coded,
                  points=tuple(points), sequence=sequence, seed=seed, params=params)


__all__ = ["KINDS", "RUN_COLUMNS", "Design", "DesignError", "Factor", "default_candidates",
           "fedorov_exchange", "infer_factors", "make_design", "to_coded", "to_natural"]
