"""Solver interface and the solution record every solver returns."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from ..certificates import DualPoint
from ..programs import ConvexProgram

__all__ = ["Solver", "Solution", "History"]


@dataclass
class History:
    """Progress recorded at every duality-gap check."""

    iteration: list[int] = field(default_factory=list)
    time: list[float] = field(default_factory=list)
    primal: list[float] = field(default_factory=list)
    dual: list[float] = field(default_factory=list)

    def record(self, iteration: int, elapsed: float, primal: float, dual: float) -> None:
        """Append one check."""
        self.iteration.append(int(iteration))
        self.time.append(float(elapsed))
        self.primal.append(float(primal))
        self.dual.append(float(dual))

    @property
    def relative_gap(self) -> list[float]:
        """``(primal - dual) / primal`` at each check."""
        return [(p - d) / max(abs(p), 1e-300) for p, d in zip(self.primal, self.dual)]


@dataclass
class Solution:
    """What a solver returns.

    Attributes
    ----------
    coef : ndarray of shape program.coef_shape
        Convex coefficients (feasible for the ReLU program's cone).
    intercept : ndarray of shape (n_outputs,)
    dual_points : list of DualPoint
        Dual candidates for the certificate (the best is used).
    n_iter : int
        Iterations performed (proximal-gradient steps; for the augmented Lagrangian,
        summed over its outer updates).
    objective_curve : list of float
        Convex objective after each iteration.
    history : History
        Primal and dual values at each gap check.
    """

    coef: np.ndarray
    intercept: np.ndarray
    dual_points: list[DualPoint]
    n_iter: int
    objective_curve: list[float]
    history: History


class Solver(ABC):
    """A convex-program solver. Subclasses declare which programs they handle."""

    #: name used in error messages and by ``solver=`` strings
    name: str = "solver"
    #: handles the unconstrained (gated ReLU) program
    handles_gated: bool = True
    #: handles the cone-constrained (ReLU) program
    handles_cone: bool = False

    def check(self, program: ConvexProgram) -> None:
        """Raise ``ValueError`` before any work if this solver can't handle ``program``."""
        if program.has_cone and not self.handles_cone:
            raise ValueError(
                f"solver {self.name!r} does not handle the cone-constrained ReLU program; "
                "use solver='augmented_lagrangian', 'cvxpy' or 'auto', or "
                "activation='gated_relu'."
            )
        if not program.has_cone and not self.handles_gated:
            raise ValueError(
                f"solver {self.name!r} handles the ReLU program only; use solver='fista', "
                "'cvxpy' or 'auto' for activation='gated_relu'."
            )

    @abstractmethod
    def solve(
        self,
        program: ConvexProgram,
        *,
        tol: float,
        max_iter: int,
        init: tuple[np.ndarray, np.ndarray] | None = None,
        verbose: int = 0,
    ) -> Solution:
        """Solve ``program`` to relative duality gap ``tol`` (or ``max_iter``)."""


class ProgressPrinter:
    """Prints one line per gap check when ``verbose`` and the fit runs long enough."""

    def __init__(self, verbose: int, name: str):
        self.verbose = verbose
        self.name = name
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since the solver started."""
        return time.perf_counter() - self.start

    def __call__(self, iteration: int, primal: float, dual: float) -> None:
        if self.verbose <= 0:
            return
        rel = (primal - dual) / max(abs(primal), 1e-300)
        print(
            f"[{self.name}] iter {iteration:6d}  objective {primal:.8g}  "
            f"rel. gap {rel:.2e}  {self.elapsed():7.2f} s",
            flush=True,
        )
