"""Solvers for the convex programs. They depend on :mod:`convexnn.programs` only."""

from __future__ import annotations

from .augmented_lagrangian import AugmentedLagrangian
from .base import History, Solution, Solver
from .fista import FISTA
from .reference import CvxpySolver

__all__ = [
    "AugmentedLagrangian",
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
    "augmented_lagrangian": AugmentedLagrangian,
    "cvxpy": CvxpySolver,
}


def make_solver(spec, cone: bool) -> Solver:
    """Turn the estimators' ``solver`` parameter into a :class:`Solver`.

    ``"auto"`` picks FISTA for the gated program and the augmented Lagrangian for the
    cone-constrained ReLU program.
    """
    if isinstance(spec, Solver):
        return spec
    if spec == "auto":
        return AugmentedLagrangian() if cone else FISTA()
    if isinstance(spec, str) and spec in SOLVERS:
        return SOLVERS[spec]()
    raise ValueError(
        f"unknown solver {spec!r}; choose 'auto', one of {sorted(SOLVERS)}, or a Solver instance."
    )
