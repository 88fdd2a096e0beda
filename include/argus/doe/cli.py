"""``argus doe plan | fit | optimize | report``: designs and analyses of run tables in CSV.

A run table has one column per factor (natural units, as run), one per response and,
optionally, ``order`` / ``run`` / ``block`` / ``point`` columns, which the analysis ignores.
Factors and responses are named by ``--factor`` / ``--response`` or a YAML / JSON spec::

    factors:
      - {name: executors, low: 1, high: 3, integer: true, unit: per GPU}
      - {name: batch_size, low: 1, high: 15, integer: true}
    responses: [throughput, processing_time]

``--factor NAME=LOW:HIGH[:int]`` gives a range; a bare ``--factor NAME`` takes the range
the runs cover. With no factor named, every other numeric column is one. statsmodels,
scipy and matplotlib are imported only when a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argus.doe.designs import Factor

# kept here so that building the ``argus`` parser imports neither numpy nor pandas;
# tests check them against argus.doe.designs.KINDS and argus.doe.terms.MODELS
KINDS = ("fccd", "ff2", "ff3", "lhs", "d-optimal")
MODELS = ("linear", "interaction", "quadratic")


def parse_factor(text: str) -> tuple[str, Factor | None]:
    """``NAME=LOW:HIGH[:int]`` -> a Factor; a bare ``NAME`` -> its range is to be read off the runs."""
    from argus.doe.designs import Factor

    if "=" not in text:
        return text.strip(), None
    name, _, rest = text.partition("=")
    parts = [p.strip() for p in rest.split(":")]
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("int", "integer", "real")):
        raise ValueError(f"cannot read factor {text!r}; write NAME=LOW:HIGH or NAME=LOW:HIGH:int")
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError as exc:
        raise ValueError(f"cannot read factor {text!r}: {exc}") from None
    return name.strip(), Factor(name.strip(), low, high, integer=len(parts) == 3 and parts[2] != "real")


def load_spec(path: str | None) -> dict:
    """A YAML (or JSON) spec: ``factors`` (a list, or a mapping name -> range) and ``responses``."""
    if not path:
        return {}
    import yaml

    from argus.doe.designs import Factor

    try:
        spec = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ValueError(f"cannot read spec {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"spec {path} is not YAML/JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise ValueError(f"spec {path}: expected a mapping with 'factors' and 'responses'")
    factors = spec.get("factors") or []
    if isinstance(factors, dict):
        factors = [{"name": k, **(v or {})} for k, v in factors.items()]
    try:
        spec["factors"] = [Factor(str(f["name"]), float(f["low"]), float(f["high"]), bool(f.get("integer", False)),
                                  str(f.get("unit", ""))) for f in factors]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"spec {path}: each factor needs name, low and high ({exc})") from None
    responses = spec.get("responses") or []
    spec["responses"] = [responses] if isinstance(responses, str) else [str(r) for r in responses]
    return spec


def read_runs(path: str):
    import pandas as pd

    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise ValueError(f"no such file: {path}") from None


def resolve(args: argparse.Namespace, runs=None) -> tuple[list[Factor], list[str]]:
    """Factors and responses from the spec and the flags (flags win), ranges read off ``runs`` where missing."""
    from argus.doe.designs import RUN_COLUMNS, infer_factors

    spec = load_spec(args.spec)
    factors: dict[str, Factor | None] = {f.name: f for f in spec.get("factors", [])}
    for text in args.factor or []:
        for item in _split(text):
            name, factor = parse_factor(item)
            factors[name] = factor or factors.get(name)
    responses = list(dict.fromkeys([*spec.get("responses", []), *(r for t in args.response or [] for r in _split(t))]))
    if runs is not None:
        if not factors:
            numeric = runs.select_dtypes("number").columns
            factors = {c: None for c in numeric if c not in responses and c not in RUN_COLUMNS}
        inferred = {f.name: f for f in infer_factors(runs, [n for n, f in factors.items() if f is None])}
        factors = {n: f or inferred[n] for n, f in factors.items()}
    if not factors:
        raise ValueError("name the factors: --factor NAME=LOW:HIGH[:int] or --spec FILE")
    if any(f is None for f in factors.values()):
        raise ValueError("give every factor a range: --factor NAME=LOW:HIGH[:int]")
    return list(factors.values()), responses


def _split(text: str) -> list[str]:
    return [t for t in (s.strip() for s in text.split(",")) if t]


def _fit_all(args):
    from argus.doe.model import fit_response

    runs = read_runs(args.csv)
    factors, responses = resolve(args, runs)
    if not responses:
        raise ValueError("name the responses: --response NAME or 'responses:' in the spec")
    model = args.model or load_spec(args.spec).get("model", "quadratic")
    return runs, factors, {r: fit_response(runs, factors, r, model=model) for r in responses}


def _objective(args, required: bool):
    from argus.doe.optimum import Desirability, Goal, Objective

    if args.desirability or args.goal:
        goals = [Goal.parse(g) for g in args.goal or []]
        named = {g.response for g in goals}
        goals += [Goal(r, "max") for r in args.maximize or [] if r not in named]
        goals += [Goal(r, "min") for r in args.minimize or [] if r not in named]
        if not goals:
            raise ValueError("--desirability needs goals: --goal NAME:max[:LOW:HIGH] or --maximize / --minimize")
        return Desirability(tuple(goals))
    senses = [(r, "max") for r in args.maximize or []] + [(r, "min") for r in args.minimize or []]
    if len(senses) > 1:
        raise ValueError("optimise one response (--maximize or --minimize), or several with --desirability")
    if not senses:
        if required:
            raise ValueError("say what to optimise: --maximize NAME, --minimize NAME or --desirability --goal ...")
        return None
    return Objective(*senses[0])


def _optimum(args, models, factors, required: bool):
    from argus.doe.optimum import optimize

    objective = _objective(args, required)
    if objective is None:
        return None
    return optimize(models, factors, objective=objective, constraints=args.subject_to or [],
                    integer=not args.continuous, alpha=args.alpha, n_future=args.confirm_runs)


def _console():
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 140)


def _num(value) -> str:
    from argus.doe.report import format_number

    return format_number(value)


def cmd_doe_plan(args: argparse.Namespace) -> int:
    from argus.doe.designs import make_design

    factors, responses = resolve(args)
    candidates = read_runs(args.candidates) if args.candidates else None
    design = make_design(args.kind, factors, center=args.center, runs=args.runs, seed=args.seed,
                         randomize=not args.no_randomize, candidates=candidates)
    frame = design.to_frame(responses)
    text = frame.to_csv(index=False)
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    counts = frame["point"].value_counts().to_dict()
    note = (f"{design.kind}: {design.n_runs} runs ({', '.join(f'{v} {k}' for k, v in counts.items())}), "
            f"seed {design.seed}, params {json.dumps(design.params)}, log det(X'X) {design.log_det():.4g}")
    if design.rounded.any():
        note += f"; {int(design.rounded.sum())} run(s) moved by rounding integer factors"
    print(note + (f"; written to {args.out}" if args.out else ""), file=sys.stderr)
    return 0


def cmd_doe_fit(args: argparse.Namespace) -> int:
    _, factors, models = _fit_all(args)
    if args.json:
        print(json.dumps({"source": args.csv, "factors": [f.to_dict() for f in factors],
                          "responses": {k: m.to_dict() for k, m in models.items()}}, indent=2))
        return 0
    from rich.table import Table

    console = _console()
    for name, m in models.items():
        lof = m.lack_of_fit
        table = Table(title=f"{name}: {m.model} model, coded units, n={m.n}")
        for col in ("term", "estimate", "std error", "t", "p"):
            table.add_column(col, justify="left" if col == "term" else "right")
        for term, row in m.coefficients.iterrows():
            table.add_row(term, _num(row.estimate), _num(row.std_error), _num(row.t), _num(row.p_value))
        console.print(table)
        console.print(f"R² {_num(m.r2)}  adj R² {_num(m.adj_r2)}  pred R² {_num(m.pred_r2)}  RMSE {_num(m.rmse)}  "
                      + (f"lack of fit F({lof.df_lack_of_fit},{lof.df_pure_error})={_num(lof.f)} p={_num(lof.p_value)}"
                         if lof else "lack of fit: no replicates"))
        console.print()
    return 0


def cmd_doe_optimize(args: argparse.Namespace) -> int:
    _, factors, models = _fit_all(args)
    best = _optimum(args, models, factors, required=True)
    if args.json:
        print(json.dumps(best.to_dict(), indent=2))
        return 0
    console = _console()
    console.print(f"{best.objective} ({best.method})"
                  + ("" if best.feasible else "  [red]no setting meets every constraint; least infeasible shown[/red]"))
    console.print("settings: " + ", ".join(f"{k}={_num(v)}" for k, v in best.settings.items()))
    level = f"{100 * (1 - args.alpha):g}%"
    for name, p in best.predictions.items():
        console.print(f"  {name}: {_num(p.mean)}  {level} CI {_num(p.confidence[0])} .. {_num(p.confidence[1])}  "
                      f"{level} PI {_num(p.prediction[0])} .. {_num(p.prediction[1])}")
    for c in best.constraints:
        met = "met" if c["satisfied"] else "NOT met"
        console.print(f"  {c['constraint']}: predicted {_num(c['predicted'])}, {met}")
    if best.desirability:
        console.print("  desirability: " + ", ".join(f"{k} {_num(v)}" for k, v in best.desirability.items()))
    return 0


def cmd_doe_report(args: argparse.Namespace) -> int:
    from argus.doe.report import write_report

    runs, factors, models = _fit_all(args)
    best = _optimum(args, models, factors, required=False)
    confirmation = None
    if args.observed:
        if best is None:
            raise ValueError("--observed compares confirmation runs with an optimum: say what to optimise")
        observed = {}
        for text in args.observed:
            name, _, values = text.partition("=")
            observed[name.strip()] = [float(v) for v in _split(values)]
        confirmation = best.confirm(observed)
    path = write_report(args.out, models, optimum=best, constraints=args.subject_to or [],
                        confirmation=confirmation, runs=runs, title=args.title, source=args.csv)
    print(path)
    return 0


def _add_selection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec", metavar="FILE",
                   help="YAML/JSON with 'factors' (name, low, high, integer, unit) and 'responses'")
    p.add_argument("--factor", action="append", metavar="NAME[=LOW:HIGH[:int]]",
                   help="a factor (repeat, or comma-separate); a bare NAME takes the range in the runs")


def _add_analysis(p: argparse.ArgumentParser) -> None:
    p.add_argument("csv", help="run table: a column per factor (natural units) and per response")
    _add_selection(p)
    p.add_argument("--response", action="append", metavar="NAME", help="a response column (repeat, or comma-separate)")
    p.add_argument("--model", choices=MODELS, help="default quadratic (or 'model:' in the spec)")


def _add_objective(p: argparse.ArgumentParser) -> None:
    p.add_argument("--maximize", action="append", metavar="RESPONSE")
    p.add_argument("--minimize", action="append", metavar="RESPONSE")
    p.add_argument("--subject-to", action="append", metavar="CONSTRAINT",
                   help="bound on a predicted mean, e.g. 'processing_time<=1.0' (repeat)")
    p.add_argument("--desirability", action="store_true",
                   help="maximise the Derringer-Suich desirability of the --goal / --maximize / --minimize responses")
    p.add_argument("--goal", action="append", metavar="NAME:max|min[:LOW:HIGH[:WEIGHT]]",
                   help="a desirability goal; NAME:target:LOW:TARGET:HIGH for a target; "
                        "limits default to the observed range")
    p.add_argument("--continuous", action="store_true", help="let integer factors take fractional values")
    p.add_argument("--alpha", type=float, default=0.05, help="1 - coverage of the intervals (default 0.05)")
    p.add_argument("--confirm-runs", type=int, default=1, metavar="M",
                   help="prediction intervals for the mean of M confirmation runs (default 1)")


def add_doe_parser(sub) -> None:
    """Add ``doe`` and its commands to the ``argus`` sub-parsers."""
    doe = sub.add_parser("doe", help="design of experiments: plan sweeps, fit response surfaces, find the optimum")
    dsub = doe.add_subparsers(dest="doe_command", required=True)

    p = dsub.add_parser("plan", help="write a design (CSV of runs to make, in random order)")
    p.add_argument("--kind", choices=[*KINDS], default="fccd")
    _add_selection(p)
    p.add_argument("--response", action="append", metavar="NAME", help="add an empty column to fill in (repeat)")
    p.add_argument("--center", type=int, help="centre points (fccd: default 6; ff2/ff3: extra, default 0)")
    p.add_argument("--runs", type=int, help="runs of an lhs / d-optimal design")
    p.add_argument("--seed", type=int, help="seed of the run order (and lhs / d-optimal); drawn and printed if absent")
    p.add_argument("--no-randomize", action="store_true", help="keep the standard order")
    p.add_argument("--candidates", metavar="CSV", help="d-optimal: candidate settings (default: a grid)")
    p.add_argument("--out", metavar="CSV", help="write here instead of stdout")
    p.set_defaults(func=cmd_doe_plan)

    p = dsub.add_parser("fit", help="fit a response surface per response: coefficients, R², lack of fit")
    _add_analysis(p)
    p.add_argument("--json", action="store_true", help="print JSON (coefficients, ANOVA, statistics)")
    p.set_defaults(func=cmd_doe_fit)

    p = dsub.add_parser("optimize", help="the settings that maximise a response under constraints, or a desirability")
    _add_analysis(p)
    _add_objective(p)
    p.add_argument("--json", action="store_true", help="print JSON (settings, predictions with intervals)")
    p.set_defaults(func=cmd_doe_optimize)

    p = dsub.add_parser("report", help="write report.md, contour PNGs and analysis.json into a folder")
    _add_analysis(p)
    _add_objective(p)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--observed", action="append", metavar="NAME=VALUE[,VALUE...]",
                   help="confirmation run result(s) at the optimum (repeat per response)")
    p.add_argument("--title", default="Design-of-experiments report")
    p.set_defaults(func=cmd_doe_report)


__all__ = ["add_doe_parser", "load_spec", "parse_factor", "resolve"]
