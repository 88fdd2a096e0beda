"""Response-surface models: a polynomial in coded factors per response, fitted by statsmodels OLS.

The model is fitted in coded units (-1 .. +1), so coefficients of different factors compare
directly; :attr:`ResponseModel.natural_coefficients` gives the same fitted surface in natural
units. Alongside the coefficients (standard errors, t, p) it reports R², adjusted R²,
predicted R² (from PRESS, the leave-one-out residuals), the ANOVA with partial (Type III)
sums of squares per term, as response-surface packages print it, and the lack-of-fit test:
residual error split into pure error, from runs repeated at identical settings (a CCD's
centre points), and lack of fit, the rest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from argus.doe.designs import DesignError, Factor, to_coded
from argus.doe.terms import Term, model_matrix, model_terms, term_label


def clean(value):
    """JSON-ready: numpy scalars to Python, NaN and infinities to ``None``."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class Prediction:
    """A predicted response with its intervals.

    :param mean: predicted mean response.
    :param se_mean: standard error of the mean.
    :param confidence: confidence interval of the mean response.
    :param prediction: prediction interval of a new run (of the mean of ``n_future`` new runs).
    :param alpha: 1 - coverage of both intervals.
    :param n_future: number of future runs the prediction interval is for.
    """

    mean: float
    se_mean: float
    confidence: tuple[float, float]
    prediction: tuple[float, float]
    alpha: float
    n_future: int = 1

    def to_dict(self) -> dict:
        return clean(asdict(self))


@dataclass(frozen=True)
class LackOfFit:
    """Residual error split into lack of fit and pure error (from repeated settings), with the F test."""

    ss_lack_of_fit: float
    df_lack_of_fit: int
    ss_pure_error: float
    df_pure_error: int
    f: float
    p_value: float

    def to_dict(self) -> dict:
        return clean(asdict(self))


def _column(term: Term) -> str:
    """Formula-safe column names; factor names need not be identifiers."""
    if len(term) == 1:
        return f"x{term[0]}"
    if term[0] == term[1]:
        return f"x{term[0]}_sq"
    return f"x{term[0]}_x{term[1]}"


def lack_of_fit(natural: pd.DataFrame, y: np.ndarray, sse: float, df_resid: int) -> LackOfFit | None:
    """The lack-of-fit test; ``None`` without repeated settings or without lack-of-fit degrees of freedom."""
    keys = [tuple(row) for row in np.round(natural.to_numpy(dtype=float), 9)]
    groups = pd.Series(y).groupby(pd.Series(keys, dtype=object).astype(str).to_numpy())
    ss_pe = float(groups.apply(lambda g: float(((g - g.mean()) ** 2).sum())).sum())
    df_pe = int(len(y) - groups.ngroups)
    df_lof = int(df_resid - df_pe)
    if df_pe <= 0 or df_lof <= 0:
        return None
    ss_lof = max(sse - ss_pe, 0.0)
    from scipy import stats

    if ss_pe > 0:
        f = (ss_lof / df_lof) / (ss_pe / df_pe)
        p = float(stats.f.sf(f, df_lof, df_pe))
    else:  # replicates agree exactly: any lack of fit is infinitely significant
        f, p = (math.inf, 0.0) if ss_lof > 0 else (math.nan, math.nan)
    return LackOfFit(ss_lof, df_lof, ss_pe, df_pe, float(f), p)


class ResponseModel:
    """One response's fitted polynomial (built by :func:`fit_response`).

    :ivar response: the response column.
    :ivar factors: the factors, coded by their ranges.
    :ivar model: ``linear``, ``interaction`` or ``quadratic``.
    :ivar terms: the model's terms (see :mod:`argus.doe.terms`).
    :ivar results: the statsmodels ``RegressionResults`` (coded units).
    :ivar runs: the runs fitted: factors in natural units and the response.
    """

    def __init__(self, response: str, factors: Sequence[Factor], model: str, terms: Sequence[Term],
                 results, runs: pd.DataFrame):
        self.response = response
        self.factors = tuple(factors)
        self.model = model
        self.terms = tuple(terms)
        self.results = results
        self.runs = runs
        names = [f.name for f in self.factors]
        self.labels = tuple(term_label(t, names) for t in self.terms)
        columns = ["Intercept"] + [_column(t) for t in self.terms[1:]]
        self._beta = results.params[columns].to_numpy()
        self._cov = results.cov_params().loc[columns, columns].to_numpy()
        self._columns = columns

    # -- fit statistics ------------------------------------------------------------------
    @property
    def n(self) -> int:
        return int(self.results.nobs)

    @property
    def r2(self) -> float:
        return float(self.results.rsquared)

    @property
    def adj_r2(self) -> float:
        return float(self.results.rsquared_adj)

    @property
    def press(self) -> float:
        """Prediction error sum of squares: the sum of squared leave-one-out residuals."""
        leverage = self.results.get_influence().hat_matrix_diag
        if np.any(leverage >= 1 - 1e-10):
            return math.nan  # a run the model passes through exactly has no leave-one-out residual
        return float(np.sum((self.results.resid.to_numpy() / (1 - leverage)) ** 2))

    @property
    def pred_r2(self) -> float:
        """Predicted R², ``1 - PRESS / SS_total``."""
        return 1 - self.press / float(self.results.centered_tss)

    @property
    def rmse(self) -> float:
        """Residual standard deviation (root mean square error)."""
        return float(np.sqrt(self.results.scale))

    @property
    def lack_of_fit(self) -> LackOfFit | None:
        natural = self.runs[[f.name for f in self.factors]]
        return lack_of_fit(natural, self.runs[self.response].to_numpy(dtype=float),
                           float(self.results.ssr), int(self.results.df_resid))

    @property
    def coefficients(self) -> pd.DataFrame:
        """Coded-unit coefficients: ``estimate``, ``std_error``, ``t``, ``p_value``, indexed by term label."""
        r = self.results
        return pd.DataFrame({
            "estimate": r.params[self._columns].to_numpy(),
            "std_error": r.bse[self._columns].to_numpy(),
            "t": r.tvalues[self._columns].to_numpy(),
            "p_value": r.pvalues[self._columns].to_numpy(),
        }, index=pd.Index(self.labels, name="term"))

    @property
    def natural_coefficients(self) -> pd.Series:
        """The same fitted surface with coefficients in natural units (a least-squares refit)."""
        natural = self.runs[[f.name for f in self.factors]].to_numpy(dtype=float)
        x = model_matrix(natural, self.terms)
        beta, *_ = np.linalg.lstsq(x, self.runs[self.response].to_numpy(dtype=float), rcond=None)
        return pd.Series(beta, index=pd.Index(self.labels, name="term"), name=self.response)

    @property
    def anova(self) -> pd.DataFrame:
        """ANOVA: model, each term (partial sums of squares), residual, lack of fit, pure error, total."""
        from statsmodels.stats.anova import anova_lm

        r = self.results
        # every term is its own column, so Type II sums of squares here are the partial (Type III) ones
        table = anova_lm(r, typ=2)
        rows = [("Model", float(r.ess), int(r.df_model), float(r.fvalue), float(r.f_pvalue))]
        for column, label in zip(self._columns[1:], self.labels[1:], strict=True):
            row = table.loc[column]
            rows.append((label, float(row["sum_sq"]), int(row["df"]), float(row["F"]), float(row["PR(>F)"])))
        rows.append(("Residual", float(r.ssr), int(r.df_resid), math.nan, math.nan))
        lof = self.lack_of_fit
        if lof is not None:
            rows.append(("Lack of fit", lof.ss_lack_of_fit, lof.df_lack_of_fit, lof.f, lof.p_value))
            rows.append(("Pure error", lof.ss_pure_error, lof.df_pure_error, math.nan, math.nan))
        rows.append(("Total", float(r.centered_tss), self.n - 1, math.nan, math.nan))
        frame = pd.DataFrame(rows, columns=["source", "sum_sq", "df", "F", "p_value"]).set_index("source")
        frame.insert(2, "mean_sq", frame["sum_sq"] / frame["df"].where(frame["df"] > 0))
        frame.loc["Total", "mean_sq"] = math.nan
        return frame

    # -- predictions ---------------------------------------------------------------------
    def _coded(self, settings) -> np.ndarray:
        if isinstance(settings, Mapping):
            settings = pd.DataFrame([settings])
        missing = [f.name for f in self.factors if f.name not in settings]
        if missing:
            raise DesignError(f"settings lack factor(s): {', '.join(missing)}")
        return to_coded(settings, self.factors).to_numpy()

    def predict_coded(self, coded: np.ndarray) -> np.ndarray:
        """Predicted mean responses at coded points ``(n, k)``; fast, for optimisers and plots."""
        return model_matrix(coded, self.terms) @ self._beta

    def predict(self, settings: Mapping[str, float] | pd.DataFrame, interval: bool = False,
                alpha: float = 0.05, n_future: int = 1):
        """Predict at ``settings`` in natural units (used as given: round integer factors first).

        :param settings: one point as ``{factor: value}`` or several as a frame with a column per factor.
        :param interval: also give the confidence and prediction intervals.
        :param alpha: 1 - coverage of the intervals.
        :param n_future: the prediction interval is for the mean of this many new runs.
        :return: for one point a float, or a :class:`Prediction` with ``interval``; for a frame an
            array, or with ``interval`` a frame with columns ``mean``, ``se_mean``, ``ci_lower``,
            ``ci_upper``, ``pi_lower``, ``pi_upper``.
        """
        single = isinstance(settings, Mapping)
        coded = self._coded(settings)
        x = model_matrix(coded, self.terms)
        mean = x @ self._beta
        if not interval:
            return float(mean[0]) if single else mean
        from scipy import stats

        se = np.sqrt(np.einsum("ij,jk,ik->i", x, self._cov, x))
        q = float(stats.t.ppf(1 - alpha / 2, self.results.df_resid))
        se_new = np.sqrt(se ** 2 + self.results.scale / n_future)
        if single:
            m, s, sn = float(mean[0]), float(se[0]), float(se_new[0])
            return Prediction(m, s, (m - q * s, m + q * s), (m - q * sn, m + q * sn), alpha, n_future)
        return pd.DataFrame({"mean": mean, "se_mean": se, "ci_lower": mean - q * se, "ci_upper": mean + q * se,
                             "pi_lower": mean - q * se_new, "pi_upper": mean + q * se_new},
                            index=settings.index)

    def stationary_point(self) -> dict | None:
        """Canonical analysis of a quadratic model: where the gradient vanishes and what it is there.

        :return: ``coded`` and ``natural`` coordinates, ``inside`` (within the design region),
            ``predicted``, the ``eigenvalues`` of the quadratic part and ``kind`` (``maximum``,
            ``minimum`` or ``saddle``); ``None`` for other models or a singular quadratic part.
        """
        if self.model != "quadratic":
            return None
        k = len(self.factors)
        coef = dict(zip(self.terms, self._beta, strict=True))
        b = np.array([coef[(i,)] for i in range(k)])
        big_b = np.zeros((k, k))
        for i in range(k):
            big_b[i, i] = coef[(i, i)]
            for j in range(i + 1, k):
                big_b[i, j] = big_b[j, i] = coef[(i, j)] / 2
        try:
            xs = -0.5 * np.linalg.solve(big_b, b)
        except np.linalg.LinAlgError:
            return None
        eig = np.linalg.eigvalsh(big_b)
        kind = "maximum" if np.all(eig < 0) else "minimum" if np.all(eig > 0) else "saddle"
        natural = {f.name: float(f.center + xs[i] * f.half_range) for i, f in enumerate(self.factors)}
        return {"coded": {f.name: float(xs[i]) for i, f in enumerate(self.factors)}, "natural": natural,
                "inside": bool(np.all(np.abs(xs) <= 1 + 1e-9)),
                "predicted": float(self.predict_coded(xs[None, :])[0]),
                "eigenvalues": [float(e) for e in eig], "kind": kind}

    def to_dict(self) -> dict:
        """Everything the CLI's ``fit --json`` prints for this response."""
        coefficients = self.coefficients.reset_index().to_dict(orient="records")
        anova = self.anova.reset_index().to_dict(orient="records")
        lof = self.lack_of_fit
        return clean({
            "response": self.response,
            "model": self.model,
            "n": self.n,
            "coding": {f.name: {"center": f.center, "half_range": f.half_range} for f in self.factors},
            "coefficients": coefficients,
            "natural_coefficients": {k: float(v) for k, v in self.natural_coefficients.items()},
            "r2": self.r2,
            "adj_r2": self.adj_r2,
            "pred_r2": self.pred_r2,
            "press": self.press,
            "rmse": self.rmse,
            "f": float(self.results.fvalue),
            "f_p_value": float(self.results.f_pvalue),
            "lack_of_fit": lof.to_dict() if lof else None,
            "anova": anova,
            "stationary_point": self.stationary_point(),
        })


def fit_response(runs: pd.DataFrame, factors: Sequence[Factor], response: str,
                 model: str = "quadratic") -> ResponseModel:
    """Fit ``response`` to ``factors`` by OLS in coded units.

    :param runs: one row per run, a column per factor (natural units, as run) and the response;
        rows whose response is missing (runs not made yet) are left out.
    :param factors: the factors; their ranges define the coding.
    :param response: the response column.
    :param model: ``linear``, ``interaction`` or ``quadratic``.
    """
    import statsmodels.formula.api as smf

    factors = tuple(factors)
    names = [f.name for f in factors]
    missing = [c for c in [*names, response] if c not in runs.columns]
    if missing:
        raise DesignError(f"no column(s) {', '.join(missing)} in the runs")
    data = runs[[*names, response]].apply(pd.to_numeric, errors="raise")
    data = data[data[response].notna()].reset_index(drop=True)
    if data[names].isna().any().any():
        raise DesignError("some runs lack factor values")
    terms = model_terms(len(factors), model)
    if len(data) <= len(terms):
        raise DesignError(f"{len(data)} runs of {response!r} cannot fit a {model} model with "
                          f"{len(terms)} terms and leave an error estimate")
    x = model_matrix(to_coded(data, factors).to_numpy(), terms)
    if np.linalg.matrix_rank(x) < len(terms):
        raise DesignError(f"the runs cannot separate all terms of a {model} model (the model matrix is singular)")
    frame = pd.DataFrame(x[:, 1:], columns=[_column(t) for t in terms[1:]])
    frame["y"] = data[response].to_numpy(dtype=float)
    results = smf.ols("y ~ " + " + ".join(frame.columns[:-1]), data=frame).fit()
    return ResponseModel(response, factors, model, terms, results, data)


__all__ = ["LackOfFit", "Prediction", "ResponseModel", "clean", "fit_response", "lack_of_fit"]
