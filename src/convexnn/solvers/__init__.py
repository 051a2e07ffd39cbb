"""Solvers for the convex programs. They depend on :mod:`convexnn.programs` only."""

from __future__ import annotations

from .base import History, Solution, Solver
from .fista import FISTA
from .reference import CvxpySolver

__all__ = [
    "CvxpySolver",
    "FISTA",
    "History",
    "Solution",
    "Solver",
    "make_solver",
    "SOLVERS",
]

SOLVERS: dict[str, type[Solver]] = {
    "fista": FISTA,
    "cvxpy": CvxpySolver,
}


def make_solver(spec, cone: bool) -> Solver:
    """Turn the estimators' ``solver`` parameter into a :class:`Solver`.

    ``"auto"`` picks FISTA for both programs (for ReLU its proximal step projects onto
    the cones exactly, so every iterate is feasible).
    """
    if isinstance(spec, Solver):
        return spec
    if spec == "auto":
        return FISTA()
    if isinstance(spec, str) and spec in SOLVERS:
        return SOLVERS[spec]()
    raise ValueError(
        f"unknown solver {spec!r}; choose 'auto', one of {sorted(SOLVERS)}, or a Solver instance."
    )
