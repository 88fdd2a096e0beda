"""Design of experiments for tuning the detection pipeline (no Airflow imports).

Make a design over the system's settings, run it, fit a second-order response surface per
measured response and find the settings that best meet the goal, as the GTC 2019 talk did
with a face-centred central composite design::

    from argus.doe import Factor, make_design, fit_response, optimize, maximize, confirm

    factors = [Factor("executors", 1, 3, integer=True), Factor("batch_size", 1, 15, integer=True),
               Factor("decoding_rate", 1, 9, integer=True, unit="Hz")]
    design = make_design("fccd", factors, center=6, seed=7)      # design.to_frame() is the plan
    ...                                                          # run it, add response columns
    models = {r: fit_response(runs, factors, r) for r in ("throughput", "processing_time")}
    best = optimize(models, factors, objective=maximize("throughput"),
                    constraints=["processing_time<=1.0"])
    best.confirm({"throughput": measured})                       # -> {name: Confirmation}

Modules: :mod:`~argus.doe.designs` (factors, designs, coding), :mod:`~argus.doe.model`
(fits), :mod:`~argus.doe.optimum` (optimum, desirability, confirmation),
:mod:`~argus.doe.report` (Markdown + contour plots), :mod:`~argus.doe.cli` (``argus doe``),
:mod:`~argus.doe.talk` (the talk's 20-run table). statsmodels, scipy and matplotlib are
imported only by the modules that use them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# names -> defining module; imported on first use, so that ``argus --help`` (which builds the
# ``doe`` parser from argus.doe.cli) does not pay for numpy, pandas and statsmodels. No module
# shares a name with an export (hence ``optimum``, not ``optimize``): an imported submodule
# becomes a package attribute and would shadow the function
_EXPORTS = {
    "argus.doe.designs": ("KINDS", "Design", "DesignError", "Factor", "infer_factors", "make_design", "to_coded",
                          "to_natural"),
    "argus.doe.model": ("LackOfFit", "Prediction", "ResponseModel", "fit_response"),
    "argus.doe.optimum": ("Confirmation", "Constraint", "Desirability", "Goal", "Objective", "Optimum", "confirm",
                           "maximize", "minimize", "optimize"),
    "argus.doe.report": ("write_report",),
    "argus.doe.terms": ("log_det_information",),
    "argus.doe.talk": ("TALK_FACTORS", "TALK_RESPONSES", "talk_fccd"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

if TYPE_CHECKING:
    from argus.doe.designs import KINDS, Design, DesignError, Factor, infer_factors, make_design, to_coded, to_natural
    from argus.doe.model import LackOfFit, Prediction, ResponseModel, fit_response
    from argus.doe.optimum import (
        Confirmation,
        Constraint,
        Desirability,
        Goal,
        Objective,
        Optimum,
        confirm,
        maximize,
        minimize,
        optimize,
    )
    from argus.doe.report import write_report
    from argus.doe.talk import TALK_FACTORS, TALK_RESPONSES, talk_fccd
    from argus.doe.terms import log_det_information


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'argus.doe' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = sorted(_MODULE_OF)
