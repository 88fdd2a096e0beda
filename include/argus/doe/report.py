"""A sweep's report: ``report.md`` with response-surface contour plots (PNG), the fits and the optimum.

Written into the sweep's own folder: ``report.md``, ``contour_<response>_<a>_<b>.png`` for
each response and pair of factors (the other factors held at the optimum, else at their
centres), and ``analysis.json`` with the same numbers for programs. Plots use matplotlib's
Agg canvas directly, never pyplot, so no display and no global backend are touched.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from argus.doe.designs import Factor
from argus.doe.model import ResponseModel, clean
from argus.doe.optimum import Confirmation, Constraint, Optimum

GRID = 81  # points per axis of a contour plot


def format_number(value) -> str:
    """Four significant digits; small values in exponent form; NaN and None as empty."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        value = float(value)
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.2e}"
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub-flavoured Markdown table, numbers to four significant digits."""
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(format_number(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _interval(pair) -> str:
    return f"{format_number(pair[0])} .. {format_number(pair[1])}"


def plot_contour(path: Path, model: ResponseModel, a: Factor, b: Factor, fixed: Mapping[str, float], *,
                 optimum: Mapping[str, float] | None = None,
                 constraints: Sequence[tuple[Constraint, ResponseModel]] = ()) -> Path:
    """Contours of ``model``'s prediction over factors ``a`` × ``b``, the others at ``fixed``.

    The runs are drawn where they project onto the plane, the optimum as a star and each
    constraint's boundary as a dashed line.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xs, ys = np.linspace(a.low, a.high, GRID), np.linspace(b.low, b.high, GRID)
    gx, gy = np.meshgrid(xs, ys)
    points = pd.DataFrame({f.name: np.full(gx.size, float(fixed[f.name])) for f in model.factors})
    points[a.name], points[b.name] = gx.ravel(), gy.ravel()
    z = model.predict(points).reshape(gx.shape)

    fig = Figure(figsize=(6.4, 5.4), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    filled = ax.contourf(gx, gy, z, levels=14, cmap="viridis")
    lines = ax.contour(gx, gy, z, levels=filled.levels[::2], colors="white", linewidths=0.6)
    ax.clabel(lines, fmt="%.4g", fontsize=7)
    fig.colorbar(filled, ax=ax, label=model.response)
    for constraint, other in constraints:
        zc = other.predict(points).reshape(gx.shape)
        if zc.min() < constraint.bound < zc.max():
            # wash out where the constraint fails, dash its boundary
            ax.contourf(gx, gy, (constraint.excess(zc) > 0).astype(float), levels=[0.5, 1.5], colors="white",
                        alpha=0.55)
            ax.contour(gx, gy, zc, levels=[constraint.bound], colors="red", linestyles="dashed", linewidths=1.4)
            ax.plot([], [], "r--", label=f"{constraint} (pale: not met)")
    ax.scatter(model.runs[a.name], model.runs[b.name], s=22, c="black", marker="o", label="runs (projected)",
               clip_on=False, zorder=4)
    if optimum is not None:
        ax.scatter([optimum[a.name]], [optimum[b.name]], s=180, c="orange", marker="*", edgecolors="black",
                   label="optimum", zorder=5, clip_on=False)
    others = ", ".join(f"{f.name}={format_number(float(fixed[f.name]))}" for f in model.factors if f not in (a, b))
    ax.set_title(f"{model.response}" + (f" at {others}" if others else ""), fontsize=10)
    ax.set_xlabel(f"{a.name} [{a.unit}]" if a.unit else a.name)
    ax.set_ylabel(f"{b.name} [{b.unit}]" if b.unit else b.name)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    return path


def write_report(sweep_dir: str | Path, models: Mapping[str, ResponseModel], *, optimum: Optimum | None = None,
                 constraints: Sequence[Constraint | str] = (),
                 confirmation: Mapping[str, Confirmation] | None = None, runs: pd.DataFrame | None = None,
                 title: str = "Design-of-experiments report", source: str = "") -> Path:
    """Write ``report.md``, the contour PNGs and ``analysis.json`` into ``sweep_dir``.

    :param sweep_dir: the sweep's folder (created if missing).
    :param models: fitted models by response name, sharing their factors.
    :param optimum: from :func:`argus.doe.optimum.optimize`, to mark and tabulate.
    :param constraints: the constraints the optimum was found under, drawn on the plots.
    :param confirmation: from :meth:`Optimum.confirm`, if confirmation runs were made.
    :param runs: the run table to list (default: the runs the first model was fitted to).
    :param title: the report's heading.
    :param source: where the runs come from, in words (a file, a sweep id, a table of a talk).
    :return: the path of ``report.md``.
    """
    out = Path(sweep_dir)
    out.mkdir(parents=True, exist_ok=True)
    first = next(iter(models.values()))
    factors = first.factors
    constraints = [c if isinstance(c, Constraint) else Constraint.parse(c) for c in constraints]
    md = [f"# {title}", ""] + ([f"Runs: {source}", ""] if source else [])
    md += ["## Factors", "", markdown_table(
        ["factor", "low (-1)", "high (+1)", "integer", "unit"],
        [[f.name, f.low, f.high, f.integer, f.unit] for f in factors]), ""]

    if runs is None:
        runs = first.runs[[f.name for f in factors]].copy()
        for name, m in models.items():
            runs[name] = m.runs[name] if len(m.runs) == len(runs) else np.nan
    else:
        runs = runs[[c for c in [*(f.name for f in factors), *models] if c in runs.columns]]
    md += [f"## Runs ({len(runs)})", "", markdown_table(
        ["#", *runs.columns], [[i + 1, *row] for i, row in enumerate(runs.itertuples(index=False))]), ""]

    # the plots slice through the optimum when there is one, else through the centre
    fixed = dict(optimum.settings) if optimum else {f.name: f.center for f in factors}
    drawn = [(c, models[c.response]) for c in constraints if c.response in models]
    for name, m in models.items():
        md += _fit_section(name, m)
        md += ["### Response surface", ""]
        for a, b in combinations(factors, 2):
            png = f"contour_{_slug(name)}_{_slug(a.name)}_{_slug(b.name)}.png"
            plot_contour(out / png, m, a, b, fixed, optimum=optimum.settings if optimum else None, constraints=drawn)
            md += [f"![{name} over {a.name} and {b.name}]({png})", ""]
    if optimum is not None:
        md += _optimum_section(optimum)
    if confirmation:
        md += ["## Confirmation", "", markdown_table(
            ["response", "predicted", "prediction interval", "observed", "runs", "error", "agrees"],
            [[k, c.details["predicted"], _interval(c.details["interval"]), c.details["observed"],
              c.details["n_observed"], c.details["error"], c.agrees] for k, c in confirmation.items()]), ""]

    analysis = {
        "title": title, "source": source, "factors": [f.to_dict() for f in factors],
        "fits": {k: m.to_dict() for k, m in models.items()},
        "optimum": optimum.to_dict() if optimum else None,
        "confirmation": ({k: {"agrees": c.agrees, **c.details} for k, c in confirmation.items()}
                         if confirmation else None),
    }
    (out / "analysis.json").write_text(json.dumps(clean(analysis), indent=2) + "\n")
    report = out / "report.md"
    report.write_text("\n".join(md))
    return report


def _fit_section(name: str, m: ResponseModel) -> list[str]:
    n = format_number
    lof = m.lack_of_fit
    lof_text = (f"lack of fit F({lof.df_lack_of_fit}, {lof.df_pure_error}) = {n(lof.f)}, p = {n(lof.p_value)}"
                if lof else "lack of fit: not testable (no repeated settings)")
    md = [f"## {name}", "",
          f"{m.model} model in coded units, n = {m.n}: R² = {n(m.r2)}, adjusted R² = {n(m.adj_r2)}, "
          f"predicted R² = {n(m.pred_r2)} (PRESS = {n(m.press)}), RMSE = {n(m.rmse)}; {lof_text}.", ""]
    natural = m.natural_coefficients
    md += ["### Coefficients", "", "Coded units (-1 .. +1); the last column is the same surface in natural units.",
           "", markdown_table(["term", "estimate", "std. error", "t", "p", "natural units"],
                              [[t, r.estimate, r.std_error, r.t, r.p_value, natural[t]]
                               for t, r in m.coefficients.iterrows()]), ""]
    md += ["### ANOVA", "", "Partial (Type III) sums of squares.", "",
           markdown_table(["source", "sum of squares", "df", "mean square", "F", "p"],
                          [[s, r.sum_sq, int(r.df), r.mean_sq, r.F, r.p_value] for s, r in m.anova.iterrows()]), ""]
    sp = m.stationary_point()
    if sp:
        where = ", ".join(f"{k}={n(v)}" for k, v in sp["natural"].items())
        inside = "inside" if sp["inside"] else "outside"
        md += [f"Stationary point: a {sp['kind']} at {where} ({inside} the design region), "
               f"predicted {n(sp['predicted'])}.", ""]
    return md


def _optimum_section(optimum: Optimum) -> list[str]:
    subject = ", ".join(c["constraint"] for c in optimum.constraints)
    line = f"Objective: {optimum.objective}" + (f", subject to {subject}" if subject else "")
    line += f"; found by {optimum.method}"
    if not optimum.feasible:
        line += "; **no setting meets every constraint: these are the least infeasible**"
    settings = [[k, v, optimum.coded[k]] for k, v in optimum.settings.items()]
    md = ["## Optimum", "", line + ".", "", markdown_table(["factor", "setting", "coded"], settings), ""]
    level = f"{100 * (1 - next(iter(optimum.predictions.values())).alpha):g}%"
    md += [markdown_table(["response", "predicted", f"{level} confidence interval", f"{level} prediction interval"],
                          [[k, p.mean, _interval(p.confidence), _interval(p.prediction)]
                           for k, p in optimum.predictions.items()]), ""]
    if optimum.desirability:
        parts = ", ".join(f"{k} {format_number(v)}" for k, v in optimum.desirability.items())
        md += [f"Desirability: {parts}.", ""]
    return md


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


__all__ = ["format_number", "markdown_table", "plot_contour", "write_report"]
