"""Terms of the polynomial response-surface models and their model matrices.

A term is a tuple of factor indices: ``()`` the intercept, ``(i,)`` a main effect,
``(i, j)`` with ``i < j`` an interaction and ``(i, i)`` a square. Terms come in the
order response-surface software prints them: intercept, main effects, interactions,
squares (A, B, C, AB, AC, BC, A², B², C²).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np

Term = tuple[int, ...]

MODELS = ("linear", "interaction", "quadratic")


def model_terms(n_factors: int, model: str = "quadratic") -> tuple[Term, ...]:
    """The terms of a ``linear``, ``interaction`` (two-factor interactions) or full ``quadratic`` model.

    :param n_factors: number of factors.
    :param model: one of :data:`MODELS`.
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; expected one of {', '.join(MODELS)}")
    terms: list[Term] = [()]
    terms += [(i,) for i in range(n_factors)]
    if model in ("interaction", "quadratic"):
        terms += list(combinations(range(n_factors), 2))
    if model == "quadratic":
        terms += [(i, i) for i in range(n_factors)]
    return tuple(terms)


def model_matrix(coded: np.ndarray, terms: Sequence[Term]) -> np.ndarray:
    """The model matrix (one column per term) of runs given in coded units.

    :param coded: array of shape ``(n_runs, n_factors)``.
    :param terms: from :func:`model_terms`.
    """
    coded = np.atleast_2d(np.asarray(coded, dtype=float))
    columns = [np.prod(coded[:, list(term)], axis=1) if term else np.ones(len(coded)) for term in terms]
    return np.column_stack(columns)


def term_label(term: Term, names: Sequence[str]) -> str:
    """``Intercept``, ``batch_size``, ``executors:batch_size`` or ``executors^2``."""
    if not term:
        return "Intercept"
    if len(term) == 2 and term[0] == term[1]:
        return f"{names[term[0]]}^2"
    return ":".join(names[i] for i in term)


def log_det_information(coded: np.ndarray, model: str = "quadratic") -> float:
    """The D-criterion ``log det(XᵀX)`` of a design in coded units (``-inf`` when singular).

    :param coded: array of shape ``(n_runs, n_factors)``.
    :param model: the model the design is meant to estimate.
    """
    coded = np.atleast_2d(np.asarray(coded, dtype=float))
    x = model_matrix(coded, model_terms(coded.shape[1], model))
    sign, logdet = np.linalg.slogdet(x.T @ x)
    return float(logdet) if sign > 0 else float("-inf")


__all__ = ["MODELS", "Term", "log_det_information", "model_matrix", "model_terms", "term_label"]
