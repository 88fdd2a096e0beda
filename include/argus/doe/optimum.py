"""The optimum of fitted response surfaces inside the design region, and its confirmation.

Two kinds of objective:

* :class:`Objective`: maximise (or minimise) one response, e.g. throughput, subject to
  :class:`Constraint` s on the others' predicted means, e.g. ``processing_time<=1.0``;
* :class:`Desirability`: the Derringer–Suich overall desirability of several responses,
  ``D = (∏ dᵢ^rᵢ)^(1/∑rᵢ)``, each ``dᵢ`` in [0, 1] by its :class:`Goal`.

The search stays inside the factors' ranges and runs integer factors at whole numbers
(``integer=False`` treats them as continuous). When every factor is an integer and the
grid is small it is enumerated, which is exact; otherwise scipy's differential evolution
(seeded, with its integrality option) searches it and SLSQP polishes continuous factors.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from argus.doe.designs import DesignError, Factor
from argus.doe.model import Prediction, ResponseModel, clean

#: grids of at most this many points are searched exhaustively
ENUMERATION_LIMIT = 200_000

_CONSTRAINT = re.compile(r"^\s*(?P<name>[^<>=]+?)\s*(?P<op><=|>=|=<|=>|<|>)\s*(?P<bound>[-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Constraint:
    """A bound on a response's predicted mean, e.g. ``Constraint("processing_time", "<=", 1.0)``.

    :param response: the response.
    :param op: ``<=`` or ``>=``.
    :param bound: the bound, in the response's units.
    """

    response: str
    op: str
    bound: float

    def __post_init__(self) -> None:
        if self.op not in ("<=", ">="):
            raise DesignError(f"constraint operator must be <= or >=, got {self.op!r}")

    @classmethod
    def parse(cls, text: str) -> Constraint:
        """``"processing_time<=1.0"``, ``"throughput >= 2000"`` (``<`` and ``>`` read as ``<=`` and ``>=``)."""
        match = _CONSTRAINT.match(text)
        if not match:
            raise DesignError(f"cannot read constraint {text!r}; write e.g. 'processing_time<=1.0'")
        op = {"<": "<=", "=<": "<=", ">": ">=", "=>": ">="}.get(match["op"], match["op"])
        return cls(match["name"], op, float(match["bound"]))

    def excess(self, value: np.ndarray) -> np.ndarray:
        """How far ``value`` is past the bound (<= 0 when satisfied)."""
        return value - self.bound if self.op == "<=" else self.bound - value

    def __str__(self) -> str:
        return f"{self.response}{self.op}{self.bound:g}"


@dataclass(frozen=True)
class Objective:
    """Maximise or minimise one response's predicted mean.

    :param response: the response.
    :param sense: ``max`` or ``min``.
    """

    response: str
    sense: str = "max"

    def __post_init__(self) -> None:
        if self.sense not in ("max", "min"):
            raise DesignError(f"objective sense must be max or min, got {self.sense!r}")

    def __str__(self) -> str:
        return f"{'maximize' if self.sense == 'max' else 'minimize'} {self.response}"


def maximize(response: str) -> Objective:
    return Objective(response, "max")


def minimize(response: str) -> Objective:
    return Objective(response, "min")


@dataclass(frozen=True)
class Goal:
    """One response's individual desirability (Derringer & Suich 1980).

    ``max``: 0 below ``low``, 1 above ``high``, ``((y - low)/(high - low))^weight`` between;
    ``min`` mirrors it; ``target``: rises from ``low`` to 1 at ``target`` and falls to 0 at
    ``high``. ``low`` / ``high`` left ``None`` are the observed range of the response.

    :param response: the response.
    :param goal: ``max``, ``min`` or ``target``.
    :param low: the unacceptable (max) / ideal (min) end, or the lower limit (target).
    :param high: the ideal (max) / unacceptable (min) end, or the upper limit (target).
    :param target: the ideal value for ``target``.
    :param weight: the shape exponent; > 1 demands values close to the ideal.
    :param importance: the exponent of this ``d`` in the overall desirability.
    """

    response: str
    goal: str = "max"
    low: float | None = None
    high: float | None = None
    target: float | None = None
    weight: float = 1.0
    importance: float = 1.0

    def __post_init__(self) -> None:
        if self.goal not in ("max", "min", "target"):
            raise DesignError(f"goal must be max, min or target, got {self.goal!r}")
        if self.goal == "target" and self.target is None:
            raise DesignError(f"goal for {self.response!r}: target needs a target value")
        if self.low is not None and self.high is not None and not self.high > self.low:
            raise DesignError(f"goal for {self.response!r}: need low < high")

    @classmethod
    def parse(cls, text: str) -> Goal:
        """``throughput:max[:low:high[:weight[:importance]]]``, ``t:min:...``, ``y:target:low:target:high[...]``."""
        parts = [p.strip() for p in text.split(":")]
        if len(parts) < 2:
            raise DesignError(f"cannot read goal {text!r}; write e.g. 'throughput:max:1800:2500'")
        name, goal, numbers = parts[0], parts[1].lower(), [float(p) for p in parts[2:]]
        if goal == "target":
            if len(numbers) < 3:
                raise DesignError(f"goal {text!r}: target needs low:target:high")
            low, target, high, *rest = numbers
        else:
            if len(numbers) == 1:
                raise DesignError(f"goal {text!r}: give both low and high, or neither")
            low, high, rest, target = (numbers[0], numbers[1], numbers[2:], None) if numbers else (None, None, [], None)
        weight, importance = (rest + [1.0, 1.0])[:2]
        return cls(name, goal, low, high, target, weight, importance)

    def with_range(self, low: float, high: float) -> Goal:
        """This goal with missing limits taken from ``low`` .. ``high``."""
        return Goal(self.response, self.goal, self.low if self.low is not None else low,
                    self.high if self.high is not None else high, self.target, self.weight, self.importance)

    def desirability(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        lo, hi = self.low, self.high
        if lo is None or hi is None:
            raise DesignError(f"goal for {self.response!r} has no limits")
        if self.goal == "max":
            d = (y - lo) / (hi - lo)
        elif self.goal == "min":
            d = (hi - y) / (hi - lo)
        else:
            d = np.where(y <= self.target, (y - lo) / (self.target - lo), (hi - y) / (hi - self.target))
        return np.clip(d, 0.0, 1.0) ** self.weight

    def __str__(self) -> str:
        middle = f"{self.target:g}.." if self.goal == "target" else ""
        limits = f"{self.low:g}..{middle}{self.high:g}"
        return f"{self.goal} {self.response} ({limits})"


@dataclass(frozen=True)
class Desirability:
    """Maximise the overall desirability of several :class:`Goal` s."""

    goals: tuple[Goal, ...]

    def __post_init__(self) -> None:
        if not self.goals:
            raise DesignError("a desirability needs at least one goal")

    def individual(self, predicted: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {g.response: g.desirability(predicted[g.response]) for g in self.goals}

    def overall(self, predicted: Mapping[str, np.ndarray]) -> np.ndarray:
        d = self.individual(predicted)
        total = sum(g.importance for g in self.goals)
        logs = sum(g.importance * np.log(np.maximum(d[g.response], 1e-300)) for g in self.goals)
        out = np.exp(logs / total)
        return np.where(np.any([d[g.response] <= 0 for g in self.goals], axis=0), 0.0, out)

    def __str__(self) -> str:
        return "desirability of " + ", ".join(str(g) for g in self.goals)


@dataclass(frozen=True)
class Confirmation:
    """Whether a confirmation run agrees with the prediction.

    :param agrees: the observed value (mean of the observations) lies inside the interval.
    :param details: ``predicted``, ``interval``, ``observed`` (the mean), ``n_observed``,
        ``error`` (observed - predicted) and ``relative_error``.
    """

    agrees: bool
    details: dict


def confirm(predicted: float, interval: tuple[float, float], observed: float | Sequence[float]) -> Confirmation:
    """Compare a confirmation run with its prediction.

    :param predicted: predicted mean at the settings run.
    :param interval: the prediction interval for it (see :meth:`ResponseModel.predict`; for the
        mean of m runs use ``n_future=m``).
    :param observed: the observed value, or several (their mean is compared).
    """
    values = np.atleast_1d(np.asarray(observed, dtype=float))
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise DesignError("confirmation needs finite observed value(s)")
    lo, hi = float(min(interval)), float(max(interval))
    mean = float(values.mean())
    details = {"predicted": float(predicted), "interval": [lo, hi], "observed": mean, "n_observed": int(values.size),
               "error": mean - float(predicted),
               "relative_error": (mean - float(predicted)) / abs(predicted) if predicted else None}
    return Confirmation(lo <= mean <= hi, details)


@dataclass(frozen=True)
class Optimum:
    """The best settings found and what the models predict there.

    :param objective: what was optimised, in words.
    :param settings: factor settings in natural units (whole numbers for integer factors).
    :param coded: the same in coded units.
    :param predictions: every response's :class:`Prediction` at ``settings``.
    :param value: the objective there: the predicted response, or the overall desirability.
    :param feasible: every constraint holds (else the settings are the least infeasible found).
    :param constraints: each constraint, the predicted value and whether it holds.
    :param desirability: individual and overall desirabilities, for a desirability objective.
    :param method: ``enumeration`` or ``differential_evolution``.
    """

    objective: str
    settings: dict[str, float]
    coded: dict[str, float]
    predictions: dict[str, Prediction]
    value: float
    feasible: bool
    constraints: list[dict] = field(default_factory=list)
    desirability: dict[str, float] | None = None
    method: str = ""

    def confirm(self, observed: Mapping[str, float | Sequence[float]]) -> dict[str, Confirmation]:
        """:func:`confirm` for each observed response against its prediction interval here."""
        return {name: confirm(self.predictions[name].mean, self.predictions[name].prediction, value)
                for name, value in observed.items()}

    def to_dict(self) -> dict:
        return clean({
            "objective": self.objective,
            "settings": self.settings,
            "coded": self.coded,
            "predictions": {k: p.to_dict() for k, p in self.predictions.items()},
            "value": self.value,
            "feasible": self.feasible,
            "constraints": self.constraints,
            "desirability": self.desirability,
            "method": self.method,
        })


def _complete_goals(objective: Desirability, models: Mapping[str, ResponseModel]) -> Desirability:
    goals = []
    for g in objective.goals:
        if g.response not in models:
            raise DesignError(f"no model for goal response {g.response!r}")
        observed = models[g.response].runs[g.response]
        goals.append(g.with_range(float(observed.min()), float(observed.max())))
    return Desirability(tuple(goals))


def optimize(models: Mapping[str, ResponseModel], factors: Sequence[Factor] | None = None, *,
             objective: Objective | Desirability, constraints: Sequence[Constraint | str] = (),
             integer: bool = True, alpha: float = 0.05, n_future: int = 1, seed: int = 0) -> Optimum:
    """Find the settings inside the factors' ranges that best meet ``objective`` under ``constraints``.

    :param models: fitted models by response name (each with the same factors).
    :param factors: the search region; default the models' factors.
    :param objective: an :class:`Objective` (e.g. ``maximize("throughput")``) or a :class:`Desirability`.
    :param constraints: bounds on predicted means, as :class:`Constraint` or text (``"latency<=1.0"``).
    :param integer: run integer factors at whole numbers.
    :param alpha: 1 - coverage of the intervals reported at the optimum.
    :param n_future: prediction intervals are for the mean of this many confirmation runs.
    :param seed: seed of differential evolution.
    """
    if not models:
        raise DesignError("no models to optimise")
    factors = tuple(factors or next(iter(models.values())).factors)
    constraints = [c if isinstance(c, Constraint) else Constraint.parse(c) for c in constraints]
    if isinstance(objective, Desirability):
        objective = _complete_goals(objective, models)
        wanted = [g.response for g in objective.goals]
    elif isinstance(objective, Objective):
        wanted = [objective.response]
    else:
        raise DesignError(f"objective must be an Objective or a Desirability, not {type(objective).__name__}")
    for name in wanted + [c.response for c in constraints]:
        if name not in models:
            raise DesignError(f"no model for response {name!r} (have: {', '.join(models)})")
    for m in models.values():
        if [f.name for f in m.factors] != [f.name for f in factors]:
            raise DesignError(f"model of {m.response!r} has factors {[f.name for f in m.factors]}, "
                              f"expected {[f.name for f in factors]}")

    needed = set(wanted) | {c.response for c in constraints}

    def predicted(natural: np.ndarray) -> dict[str, np.ndarray]:  # (S, k) natural -> each model, in its coding
        return {name: models[name].predict_coded(
                    np.column_stack([f.to_coded(natural[:, i]) for i, f in enumerate(models[name].factors)]))
                for name in needed}

    def score(natural: np.ndarray) -> np.ndarray:  # larger is better
        pred = predicted(natural)
        if isinstance(objective, Desirability):
            return objective.overall(pred)
        y = pred[objective.response]
        return y if objective.sense == "max" else -y

    def excess(natural: np.ndarray) -> np.ndarray:  # (n_constraints, S), <= 0 where satisfied
        if not constraints:
            return np.zeros((0, len(natural)))
        pred = predicted(natural)
        return np.array([c.excess(pred[c.response]) for c in constraints])

    integral = np.array([f.integer and integer for f in factors])
    lows = np.array([math.ceil(f.low) if i else f.low for f, i in zip(factors, integral, strict=True)], dtype=float)
    highs = np.array([math.floor(f.high) if i else f.high for f, i in zip(factors, integral, strict=True)], dtype=float)
    grid_size = math.prod(int(h - lo + 1) for lo, h in zip(lows, highs, strict=True)) if integral.all() else None

    if grid_size is not None and grid_size <= ENUMERATION_LIMIT:
        method = "enumeration"
        axes = [np.arange(lo, h + 1) for lo, h in zip(lows, highs, strict=True)]
        grid = np.array(np.meshgrid(*axes, indexing="ij")).reshape(len(factors), -1).T
        best = _pick(grid, score(grid), excess(grid))
    else:
        method = "differential_evolution"
        best = _evolve(score, excess, lows, highs, integral, seed)

    # a bound reached to within solver tolerance is the bound
    span = highs - lows
    best = np.where(np.abs(best - lows) <= 1e-7 * span, lows, best)
    best = np.where(np.abs(highs - best) <= 1e-7 * span, highs, best)
    settings = {f.name: (int(round(v)) if integral[i] else float(v))
                for i, (f, v) in enumerate(zip(factors, best, strict=True))}
    coded = {f.name: float(f.to_coded(v)) for f, v in zip(factors, best, strict=True)}
    predictions = {name: m.predict(settings, interval=True, alpha=alpha, n_future=n_future)
                   for name, m in models.items()}
    means = {name: np.array([p.mean]) for name, p in predictions.items()}
    checks = [{"constraint": str(c), "predicted": predictions[c.response].mean,
               "satisfied": bool(c.excess(means[c.response])[0] <= 1e-9)} for c in constraints]
    desirability = None
    if isinstance(objective, Desirability):
        desirability = {k: float(v[0]) for k, v in objective.individual(means).items()}
        desirability["overall"] = float(objective.overall(means)[0])
    value = float(score(best[None, :])[0])
    if isinstance(objective, Objective) and objective.sense == "min":
        value = -value
    return Optimum(objective=str(objective), settings=settings, coded=coded, predictions=predictions, value=value,
                   feasible=all(c["satisfied"] for c in checks), constraints=checks, desirability=desirability,
                   method=method)


def _pick(points: np.ndarray, scores: np.ndarray, excess: np.ndarray) -> np.ndarray:
    """The best-scoring feasible point, or the least infeasible one when none is feasible."""
    violation = np.clip(excess, 0, None).sum(axis=0) if len(excess) else np.zeros(len(points))
    feasible = violation <= 1e-9
    if feasible.any():
        return points[np.flatnonzero(feasible)[np.argmax(scores[feasible])]]
    return points[np.argmin(violation)]


def _evolve(score, excess, lows, highs, integral, seed) -> np.ndarray:
    from scipy.optimize import Bounds, NonlinearConstraint, differential_evolution, minimize

    def column_batch(x: np.ndarray) -> np.ndarray:  # scipy passes (k,) or, vectorised, (k, S)
        return x[:, None].T if x.ndim == 1 else x.T

    def neg_score(x):
        s = -score(column_batch(x))
        return s[0] if x.ndim == 1 else s

    def cons(x):
        e = excess(column_batch(x))
        return e[:, 0] if x.ndim == 1 else e

    n_cons = len(excess(lows[None, :]))
    nlc = [NonlinearConstraint(cons, -np.inf, 0.0)] if n_cons else []
    result = differential_evolution(neg_score, Bounds(lows, highs), constraints=nlc, integrality=integral,
                                    seed=seed, polish=False, vectorized=True, updating="deferred",
                                    maxiter=400, tol=1e-8, popsize=20)
    best = np.clip(result.x, lows, highs)
    if not integral.all():
        # polish the continuous factors with SLSQP, the integer ones held where evolution left them
        fixed_low = np.where(integral, best, lows)
        fixed_high = np.where(integral, best, highs)
        slsqp_cons = [{"type": "ineq", "fun": lambda x: -cons(x)}] if n_cons else []
        polished = minimize(neg_score, best, method="SLSQP", bounds=list(zip(fixed_low, fixed_high, strict=True)),
                            constraints=slsqp_cons)
        candidates = np.array([best, np.clip(polished.x, fixed_low, fixed_high)])
        best = _pick(candidates, score(candidates), excess(candidates))
    return best


__all__ = ["Confirmation", "Constraint", "Desirability", "Goal", "Objective", "Optimum", "confirm", "maximize",
           "minimize", "optimize"]
