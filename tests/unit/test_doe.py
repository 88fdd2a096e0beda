"""argus.doe: designs against pyDOE3, fits against statsmodels, optima, reports and the CLI (no services)."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from pyDOE3 import ccdesign, ff2n, fullfact, lhs

from argus.cli.main import main
from argus.doe import (
    Constraint,
    Desirability,
    DesignError,
    Factor,
    Goal,
    confirm,
    fit_response,
    log_det_information,
    make_design,
    maximize,
    minimize,
    optimize,
    to_coded,
    to_natural,
    write_report,
)
from argus.doe.designs import default_candidates, fedorov_exchange
from argus.doe.talk import TALK_FACTORS, TALK_FCCD_CSV, TALK_RESPONSES, talk_fccd

TALK_SPEC = TALK_FCCD_CSV.with_suffix(".yaml")
CONTINUOUS = (Factor("a", 10, 30), Factor("b", 0, 1), Factor("c", -5, 5))


def run_cli(capsys, *argv) -> str:
    capsys.readouterr()
    assert main(["doe", *argv]) == 0
    return capsys.readouterr().out


# ---- designs --------------------------------------------------------------------------------

@pytest.mark.parametrize("center, pair", [(6, (3, 3)), ((0, 6), (0, 6)), (4, (2, 2))])
def test_fccd_is_pydoe3_ccdesign_face_centred(center, pair):
    design = make_design("fccd", TALK_FACTORS, center=center, seed=3)
    np.testing.assert_array_equal(design.requested, ccdesign(3, center=pair, face="ccf"))
    counts = Counter(design.points)
    assert counts == {"factorial": 8, "axial": 6, "center": sum(pair)}
    assert design.params == {"center": list(pair), "face": "ccf"}


def test_fccd_of_the_talks_factors_is_the_talks_table():
    design = make_design("fccd", TALK_FACTORS, center=6, seed=1)
    names = [f.name for f in TALK_FACTORS]
    ours = Counter(map(tuple, design.to_frame()[names].to_numpy().tolist()))
    talks = Counter(map(tuple, talk_fccd()[names].to_numpy().tolist()))
    assert ours == talks and sum(ours.values()) == 20
    assert not design.rounded.any()  # 1..3, 1..15 and 1..9 have whole centres


def test_full_factorials_and_lhs_are_pydoe3s():
    ff2 = make_design("ff2", CONTINUOUS, center=2, seed=1)
    np.testing.assert_array_equal(ff2.requested, np.vstack([ff2n(3), np.zeros((2, 3))]))
    assert Counter(ff2.points) == {"factorial": 8, "center": 2}
    ff3 = make_design("ff3", CONTINUOUS, seed=1)
    np.testing.assert_array_equal(ff3.requested, fullfact([3, 3, 3]) - 1)
    assert ff3.n_runs == 27
    design = make_design("lhs", CONTINUOUS, runs=12, seed=5)
    expected = 2 * lhs(3, samples=12, criterion="maximin", iterations=20, seed=np.random.default_rng(5)) - 1
    np.testing.assert_allclose(design.requested, expected)
    # a Latin hypercube: each factor has exactly one run in each of the 12 strata
    strata = np.floor((design.requested + 1) / 2 * 12).astype(int)
    assert all(sorted(col) == list(range(12)) for col in strata.T)


def test_coded_natural_round_trip():
    natural = pd.DataFrame({"a": [10, 17.5, 30], "b": [0.25, 0.5, 1.0], "c": [-5, 0.1, 5]})
    coded = to_coded(natural, CONTINUOUS)
    np.testing.assert_allclose(coded["a"], [-1, -0.25, 1])
    np.testing.assert_allclose(coded["c"], [-1, 0.02, 1])
    pd.testing.assert_frame_equal(to_natural(coded, CONTINUOUS), natural.astype(float))


def test_integer_factors_are_rounded_and_recorded_as_run():
    factors = (Factor("executors", 1, 4, integer=True), Factor("rate", 1, 9))
    design = make_design("fccd", factors, center=2, seed=0, randomize=False)
    centre = np.flatnonzero(np.array(design.points) == "center")
    # the centre 2.5 executors is run as 3 (half up), and coded as what was run: (3 - 2.5) / 1.5
    assert set(design.natural.loc[centre, "executors"]) == {3.0}
    np.testing.assert_allclose(design.coded.loc[centre, "executors"], 1 / 3)
    np.testing.assert_array_equal(design.requested[centre], 0.0)
    assert design.rounded[centre].all() and design.rounded.sum() == len(centre) + 2  # + the two axial rate points
    assert design.to_frame()["executors"].dtype.kind == "i"
    assert Factor("n", 1, 10, integer=True).to_natural([-0.9, 1.7]).tolist() == [1.0, 10.0]  # kept in range


def test_seeded_run_order_is_reproducible():
    one = make_design("fccd", TALK_FACTORS, seed=42).to_frame()
    two = make_design("fccd", TALK_FACTORS, seed=42).to_frame()
    other = make_design("fccd", TALK_FACTORS, seed=43).to_frame()
    pd.testing.assert_frame_equal(one, two)
    assert one["run"].tolist() != other["run"].tolist()
    assert sorted(one["run"]) == list(range(1, 21)) and one["order"].tolist() == list(range(1, 21))
    drawn = make_design("lhs", CONTINUOUS, runs=8)  # no seed: one is drawn and recorded
    again = make_design("lhs", CONTINUOUS, runs=8, seed=drawn.seed)
    pd.testing.assert_frame_equal(drawn.to_frame(), again.to_frame())


def test_d_optimal_beats_random_subsets_and_pydoe3s_fedorov():
    from pyDOE3.doe_optimal import optimal_design

    design = make_design("d-optimal", TALK_FACTORS, runs=14, seed=11)
    assert design.n_runs == 14 and design.params["algorithm"] == "fedorov"
    pool = default_candidates(TALK_FACTORS)
    assert len(pool) == 3 * 15 * 9  # every whole executor count, batch size and rate
    rng = np.random.default_rng(0)
    random_best = max(log_det_information(pool[rng.choice(len(pool), 14, replace=False)]) for _ in range(200))
    assert design.log_det() > random_best
    grid = fullfact([3, 3, 3]) - 1
    for runs in (10, 15):
        theirs, _ = optimal_design(grid, runs, 2, "D", method="fedorov")
        ours = grid[fedorov_exchange(grid, runs, np.random.default_rng(1))]
        assert log_det_information(ours) >= log_det_information(theirs) - 1e-9
    with pytest.raises(DesignError, match="need >= 10 runs"):
        make_design("d-optimal", TALK_FACTORS, runs=9, seed=1)


def test_bad_designs_say_why():
    with pytest.raises(DesignError, match="low < high"):
        Factor("x", 3, 1)
    with pytest.raises(DesignError, match="unknown design kind"):
        make_design("taguchi", CONTINUOUS)


# ---- models on synthetic surfaces ----------------------------------------------------------

TRUE = {"Intercept": 50.0, "a": 4.0, "b": -3.0, "c": 2.0, "a:b": 1.5, "a:c": -1.0, "b:c": 0.5,
        "a^2": -6.0, "b^2": -5.0, "c^2": -4.0}


def synthetic_runs(seed=0, sigma=0.5, design_kind="ff3", center=6):
    design = make_design(design_kind, CONTINUOUS, center=center, seed=seed)
    x = design.coded.to_numpy()
    a, b, c = x.T
    y = (TRUE["Intercept"] + TRUE["a"] * a + TRUE["b"] * b + TRUE["c"] * c + TRUE["a:b"] * a * b
         + TRUE["a:c"] * a * c + TRUE["b:c"] * b * c + TRUE["a^2"] * a**2 + TRUE["b^2"] * b**2 + TRUE["c^2"] * c**2)
    runs = design.natural.copy()
    runs["y"] = y + np.random.default_rng(seed).normal(0, sigma, len(y))
    return runs


def true_optimum_coded() -> np.ndarray:
    b = np.array([TRUE["a"], TRUE["b"], TRUE["c"]])
    big = np.array([[TRUE["a^2"], TRUE["a:b"] / 2, TRUE["a:c"] / 2],
                    [TRUE["a:b"] / 2, TRUE["b^2"], TRUE["b:c"] / 2],
                    [TRUE["a:c"] / 2, TRUE["b:c"] / 2, TRUE["c^2"]]])
    return -0.5 * np.linalg.solve(big, b)


def test_fit_recovers_a_noisy_quadratic_surface_and_its_optimum():
    model = fit_response(synthetic_runs(), CONTINUOUS, "y")
    coef = model.coefficients
    for term, value in TRUE.items():
        assert abs(coef.loc[term, "estimate"] - value) < max(4 * coef.loc[term, "std_error"], 0.05), term
    assert model.r2 > 0.99 and model.pred_r2 > 0.97
    assert model.lack_of_fit.p_value > 0.01  # the model is right: no lack of fit
    truth = true_optimum_coded()
    assert np.all(np.abs(truth) < 1)
    sp = model.stationary_point()
    assert sp["kind"] == "maximum" and sp["inside"]
    np.testing.assert_allclose(list(sp["coded"].values()), truth, atol=0.08)
    best = optimize({"y": model}, objective=maximize("y"))
    assert best.method == "differential_evolution" and best.feasible
    np.testing.assert_allclose(list(best.coded.values()), truth, atol=0.08)
    np.testing.assert_allclose(list(best.coded.values()), list(sp["coded"].values()), atol=1e-3)
    lo, hi = best.predictions["y"].prediction
    true_max = TRUE["Intercept"] + 0.5 * np.dot([TRUE["a"], TRUE["b"], TRUE["c"]], truth)
    assert lo < true_max < hi


def test_fit_statistics_match_their_definitions():
    runs = synthetic_runs(seed=4, sigma=1.0, design_kind="fccd")
    coded = to_coded(runs, CONTINUOUS)
    runs["y"] += 4 * coded["a"] * coded["b"] * coded["c"]  # a three-factor interaction the model lacks
    model = fit_response(runs, CONTINUOUS, "y")
    # PRESS by refitting without each run
    loo = [runs["y"][i] - fit_response(runs.drop(index=i), CONTINUOUS, "y").predict(runs.loc[i].to_dict())
           for i in range(len(runs))]
    assert model.press == pytest.approx(float(np.sum(np.square(loo))), rel=1e-9)
    # pure error: the spread of the six centre runs, the only repeated setting
    centre = runs["y"][np.all(np.isclose(to_coded(runs, CONTINUOUS), 0), axis=1)]
    lof = model.lack_of_fit
    assert lof.ss_pure_error == pytest.approx(float(((centre - centre.mean()) ** 2).sum()))
    assert (lof.df_pure_error, lof.df_lack_of_fit) == (5, 5)
    assert lof.p_value < 0.01  # the missing term shows
    anova = model.anova
    assert anova.loc["Residual", "sum_sq"] == pytest.approx(lof.ss_lack_of_fit + lof.ss_pure_error)
    assert anova.loc["Total", "sum_sq"] == pytest.approx(anova.loc["Model", "sum_sq"] + anova.loc["Residual", "sum_sq"])
    np.testing.assert_allclose(anova.loc[list(model.labels[1:]), "F"], model.coefficients["t"][1:] ** 2)
    # intervals are statsmodels' own
    new = pd.DataFrame({"a": [12.0, 25.0], "b": [0.3, 0.9], "c": [4.0, -1.0]})
    ours = model.predict(new, interval=True)
    coded = to_coded(new, CONTINUOUS)
    frame = pd.DataFrame({"x0": coded["a"], "x1": coded["b"], "x2": coded["c"]})
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        frame[f"x{i}_x{j}"] = frame[f"x{i}"] * frame[f"x{j}"]
    for i in range(3):
        frame[f"x{i}_sq"] = frame[f"x{i}"] ** 2
    theirs = model.results.get_prediction(frame).summary_frame(alpha=0.05)
    np.testing.assert_allclose(ours["mean"], theirs["mean"])
    np.testing.assert_allclose(ours[["ci_lower", "ci_upper"]], theirs[["mean_ci_lower", "mean_ci_upper"]])
    np.testing.assert_allclose(ours[["pi_lower", "pi_upper"]], theirs[["obs_ci_lower", "obs_ci_upper"]])
    one = model.predict(new.iloc[0].to_dict(), interval=True, n_future=4)
    assert one.mean == pytest.approx(ours["mean"][0])
    assert ours["pi_lower"][0] < one.prediction[0] < one.confidence[0]  # the mean of 4 runs is surer


# ---- the talk's table through the CLI ------------------------------------------------------

def direct_talk_fit(response: str, coded: bool = True):
    runs = talk_fccd()
    frame = to_coded(runs, TALK_FACTORS) if coded else runs[[f.name for f in TALK_FACTORS]].astype(float)
    frame = frame.rename(columns={"executors": "x1", "batch_size": "x2", "decoding_rate": "x3"})
    frame["y"] = runs[response]
    return smf.ols("y ~ x1 + x2 + x3 + x1:x2 + x1:x3 + x2:x3 + I(x1**2) + I(x2**2) + I(x3**2)", frame).fit()


def test_cli_fit_of_the_talks_table_is_statsmodels_ols(capsys):
    out = json.loads(run_cli(capsys, "fit", str(TALK_FCCD_CSV), "--spec", str(TALK_SPEC), "--json"))
    assert set(out["responses"]) == set(TALK_RESPONSES)
    rename = {"Intercept": "Intercept", "executors": "x1", "batch_size": "x2", "decoding_rate": "x3",
              "executors:batch_size": "x1:x2", "executors:decoding_rate": "x1:x3",
              "batch_size:decoding_rate": "x2:x3", "executors^2": "I(x1 ** 2)", "batch_size^2": "I(x2 ** 2)",
              "decoding_rate^2": "I(x3 ** 2)"}
    for response in TALK_RESPONSES:
        fit = out["responses"][response]
        direct = direct_talk_fit(response)
        assert fit["n"] == 20
        assert fit["r2"] == pytest.approx(direct.rsquared, rel=1e-10)
        assert fit["adj_r2"] == pytest.approx(direct.rsquared_adj, rel=1e-10)
        for row in fit["coefficients"]:
            name = rename[row["term"]]
            assert row["estimate"] == pytest.approx(direct.params[name], rel=1e-8, abs=1e-9)
            assert row["std_error"] == pytest.approx(direct.bse[name], rel=1e-8)
            assert row["p_value"] == pytest.approx(direct.pvalues[name], rel=1e-6)
        natural = direct_talk_fit(response, coded=False)
        for term, value in fit["natural_coefficients"].items():
            assert value == pytest.approx(natural.params[rename[term]], rel=1e-6, abs=1e-9)
        hat = direct.get_influence().hat_matrix_diag
        press = float(np.sum((direct.resid / (1 - hat)) ** 2))
        assert fit["pred_r2"] == pytest.approx(1 - press / direct.centered_tss)
        assert fit["lack_of_fit"]["df_pure_error"] == 5  # the six centre runs
    # factors named by flags, ranges read off the table: the same fit
    flags = json.loads(run_cli(capsys, "fit", str(TALK_FCCD_CSV), "--response", "throughput,processing_time",
                               "--json"))
    assert flags["responses"]["throughput"]["coefficients"] == out["responses"]["throughput"]["coefficients"]
    text = run_cli(capsys, "fit", str(TALK_FCCD_CSV), "--spec", str(TALK_SPEC))
    assert "executors:decoding_rate" in text and "lack of fit F(5,5)" in text


def test_cli_optimize_on_the_talks_table(capsys):
    runs = talk_fccd()
    models = {r: fit_response(runs, TALK_FACTORS, r) for r in TALK_RESPONSES}
    at_runs = {r: m.predict(runs) for r, m in models.items()}

    best = json.loads(run_cli(capsys, "optimize", str(TALK_FCCD_CSV), "--spec", str(TALK_SPEC),
                              "--maximize", "throughput", "--json"))
    settings = best["settings"]
    for f in TALK_FACTORS:
        assert f.low <= settings[f.name] <= f.high and float(settings[f.name]).is_integer()
    assert best["predictions"]["throughput"]["mean"] >= at_runs["throughput"].max()
    assert best["predictions"]["throughput"]["mean"] == pytest.approx(models["throughput"].predict(settings))

    limited = json.loads(run_cli(capsys, "optimize", str(TALK_FCCD_CSV), "--spec", str(TALK_SPEC),
                                 "--maximize", "throughput", "--subject-to", "processing_time<=1.0", "--json"))
    assert limited["feasible"] and limited["predictions"]["processing_time"]["mean"] <= 1.0
    feasible_runs = at_runs["processing_time"] <= 1.0
    assert limited["predictions"]["throughput"]["mean"] >= at_runs["throughput"][feasible_runs].max()
    lo, hi = limited["predictions"]["throughput"]["prediction"]
    assert lo < limited["predictions"]["throughput"]["mean"] < hi
    # enumeration is exact: no whole-number setting does better
    grid = pd.DataFrame([(e, b, d) for e in range(1, 4) for b in range(1, 16) for d in range(1, 10)],
                        columns=[f.name for f in TALK_FACTORS])
    ok = models["processing_time"].predict(grid) <= 1.0
    assert limited["value"] == pytest.approx(models["throughput"].predict(grid)[ok].max())

    text = run_cli(capsys, "optimize", str(TALK_FCCD_CSV), "--spec", str(TALK_SPEC), "--maximize", "throughput",
                   "--subject-to", "processing_time<=1.0")
    assert "95% PI" in text and "processing_time<=1: predicted" in text


def test_desirability_and_constraints():
    runs = talk_fccd()
    models = {r: fit_response(runs, TALK_FACTORS, r) for r in TALK_RESPONSES}
    goals = Desirability((Goal.parse("throughput:max:1800:2500"), Goal.parse("processing_time:min:0.5:1.0")))
    best = optimize(models, TALK_FACTORS, objective=goals)
    overall_at_runs = goals.overall({r: m.predict(runs) for r, m in models.items()})
    assert best.desirability["overall"] >= overall_at_runs.max()
    assert 0 < best.value <= 1 and best.value == pytest.approx(best.desirability["overall"])
    continuous = optimize(models, TALK_FACTORS, objective=goals, integer=False)
    assert continuous.value >= best.value - 1e-9  # relaxing integrality cannot hurt
    assert not all(float(v).is_integer() for v in continuous.settings.values())

    goal = Goal("y", "target", low=0, high=10, target=4)
    np.testing.assert_allclose(goal.desirability(np.array([-1, 2, 4, 7, 11])), [0, 0.5, 1, 0.5, 0])
    assert Goal.parse("y:min").low is None  # limits come from the observed range
    assert Constraint.parse(" latency < 1.5 ") == Constraint("latency", "<=", 1.5)
    with pytest.raises(DesignError):
        Constraint.parse("latency == 1")
    impossible = optimize(models, objective=minimize("processing_time"), constraints=["throughput>=9000"])
    assert not impossible.feasible and impossible.constraints[0]["satisfied"] is False


def test_confirm():
    inside = confirm(100.0, (90.0, 110.0), 104.0)
    assert inside.agrees and inside.details["error"] == pytest.approx(4.0)
    assert inside.details["relative_error"] == pytest.approx(0.04)
    assert not confirm(100.0, (90.0, 110.0), 111.0).agrees
    several = confirm(100.0, (90.0, 110.0), [105.0, 115.0, 113.0])
    assert not several.agrees and several.details["observed"] == pytest.approx(111.0)
    assert several.details["n_observed"] == 3
    runs = talk_fccd()
    models = {r: fit_response(runs, TALK_FACTORS, r) for r in TALK_RESPONSES}
    best = optimize(models, objective=maximize("throughput"), constraints=["processing_time<=1.0"])
    checks = best.confirm({"throughput": best.predictions["throughput"].mean + 1.0, "processing_time": 5.0})
    assert checks["throughput"].agrees and not checks["processing_time"].agrees


# ---- plan and report -----------------------------------------------------------------------

def test_cli_plan_writes_the_runs_to_make(capsys, tmp_path):
    out = tmp_path / "plan.csv"
    args = ["plan", "--kind", "fccd", "--factor", "executors=1:3:int,batch_size=1:15:int", "--factor",
            "decoding_rate=1:9:int", "--center", "6", "--seed", "9", "--response", "throughput", "--out", str(out)]
    capsys.readouterr()
    assert main(["doe", *args]) == 0
    note = capsys.readouterr().err
    assert "fccd: 20 runs (8 factorial" in note and "seed 9" in note
    plan = pd.read_csv(out)
    assert list(plan.columns) == ["order", "run", "block", "point", "executors", "batch_size", "decoding_rate",
                                  "throughput"]
    assert len(plan) == 20 and plan["throughput"].isna().all()
    expected = make_design("fccd", TALK_FACTORS, center=6, seed=9).to_frame(["throughput"])
    assert plan["run"].tolist() == expected["run"].tolist()
    stdout = run_cli(capsys, "plan", "--kind", "lhs", "--runs", "5", "--factor", "x=0:1", "--seed", "1")
    assert len(pd.read_csv(io.StringIO(stdout))) == 5
    assert main(["doe", "plan", "--factor", "x"]) == 2  # a plan needs ranges


def test_report_has_plots_tables_optimum_and_confirmation(capsys, tmp_path):
    out = run_cli(capsys, "report", str(TALK_FCCD_CSV), "--spec", str(TALK_SPEC), "--maximize", "throughput",
                  "--subject-to", "processing_time<=1.0", "--observed", "throughput=2400",
                  "--observed", "processing_time=0.9,1.0", "--out", str(tmp_path / "sweep"))
    report = Path(out.strip())
    assert report == tmp_path / "sweep" / "report.md"
    text = report.read_text()
    images = re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", text)
    assert len(images) == 6  # 2 responses x 3 pairs of factors
    for name in images:
        assert (report.parent / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for heading in ("## Factors", "## Runs (20)", "## throughput", "### Coefficients", "### ANOVA",
                    "Lack of fit", "Pure error", "## Optimum", "## Confirmation"):
        assert heading in text
    assert "| executors | 2 | 0 |" in text  # the constrained optimum: 2 executors, batch 1, 3 Hz
    analysis = json.loads((report.parent / "analysis.json").read_text())
    assert analysis["optimum"]["settings"] == {"executors": 2, "batch_size": 1, "decoding_rate": 3}
    assert analysis["confirmation"]["processing_time"]["n_observed"] == 2


def test_write_report_without_optimum(tmp_path):
    model = fit_response(synthetic_runs(), CONTINUOUS, "y")
    path = write_report(tmp_path, {"y": model}, title="synthetic", source="test")
    text = path.read_text()
    assert "## Optimum" not in text and "Stationary point: a maximum" in text
    assert len(list(tmp_path.glob("contour_y_*.png"))) == 3


def test_specs_and_factor_flags(tmp_path):
    from argus.doe.cli import load_spec, parse_factor

    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"factors": {"rate": {"low": 1, "high": 9, "integer": True, "unit": "Hz"}},
                                "responses": "throughput"}))
    loaded = load_spec(str(spec))
    assert loaded["factors"] == [Factor("rate", 1, 9, integer=True, unit="Hz")]
    assert loaded["responses"] == ["throughput"]
    assert parse_factor("batch=1:15:int") == ("batch", Factor("batch", 1, 15, integer=True))
    assert parse_factor("gain = 0.5:2") == ("gain", Factor("gain", 0.5, 2.0))
    assert parse_factor("executors") == ("executors", None)
    with pytest.raises(ValueError, match="NAME=LOW:HIGH"):
        parse_factor("x=1")


# ---- layout --------------------------------------------------------------------------------

def test_cli_choices_match_the_engine_and_no_airflow():
    from argus.doe import KINDS, cli
    from argus.doe.terms import MODELS

    assert cli.KINDS == KINDS and cli.MODELS == MODELS
    for source in Path(cli.__file__).parent.glob("*.py"):
        assert not re.search(r"^\s*(from|import)\s+airflow", source.read_text(), re.M), source
