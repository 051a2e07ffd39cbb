"""Reference solver: the convex program written in cvxpy and solved by Clarabel.

An interior-point method: slow beyond a few thousand variables but accurate to
~1e-8, independent of the library's own solvers. The test suite's oracle.
Needs the ``cvxpy`` extra (``pip install convexnn[cvxpy]``).
"""

from __future__ import annotations

import numpy as np

from ..certificates import dual_point_from_outputs, dual_value
from ..losses import LogisticLoss, SoftmaxCrossEntropy, SquaredLoss
from ..penalties import ColumnGroupL2, NuclearNorm
from ..programs import ConvexProgram
from .base import History, ProgressPrinter, Solution, Solver

__all__ = ["CvxpySolver"]


class CvxpySolver(Solver):
    """Solve the program with cvxpy + Clarabel (tiny problems; test oracle).

    Parameters
    ----------
    solver : str, default="CLARABEL"
        cvxpy solver name.

    Notes
    -----
    Under a time limit (the estimators' ``max_time``, see
    :class:`~convexnn.solvers.base.ProgressScope`) the time left is passed to
    Clarabel as its ``time_limit``; a solve stopped by it keeps Clarabel's last
    iterate (made feasible), and the single gap check then stops the fit as a time
    limit unless that point already meets ``tol``.
    """

    name = "cvxpy"
    handles_gated = True
    handles_cone = True

    def __init__(self, solver: str = "CLARABEL"):
        self.solver = solver

    def solve(self, program: ConvexProgram, *, tol=1e-8, max_iter=None, init=None, verbose=0):
        self.check(program)
        try:
            import cvxpy as cp
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "solver='cvxpy' needs the cvxpy extra: pip install 'convexnn[cvxpy]'"
            ) from exc
        op = program.operator
        gated = op.gated if program.has_cone else op
        Xa, M = gated.Xa, gated.masks.astype(float)
        n, p = Xa.shape
        c, B, P = program.n_outputs, op.n_blocks, gated.n_patterns
        V = [cp.Variable((p, c)) for _ in range(B)]
        b = cp.Variable(c)
        if program.has_cone:
            S = op.diagonals()  # the activation's S_k (D_k for ReLU)
            terms = [cp.multiply(S[:, [k]], Xa @ (V[k] - V[P + k])) for k in range(P)]
        else:
            terms = [cp.multiply(M[:, [k]], Xa @ V[k]) for k in range(P)]
        Z = cp.sum(terms) + np.ones((n, 1)) @ cp.reshape(b, (1, c), order="C")
        w, Y = program.sample_weight, program.Y
        loss = program.loss
        if isinstance(loss, SquaredLoss):
            data = 0.5 * cp.sum(cp.multiply(w[:, None], cp.square(Z - Y)))
        elif isinstance(loss, LogisticLoss):
            data = cp.sum(cp.multiply(w[:, None], cp.logistic(Z) - cp.multiply(Y, Z)))
        elif isinstance(loss, SoftmaxCrossEntropy):
            data = cp.sum(
                cp.multiply(w, cp.log_sum_exp(Z, axis=1) - cp.sum(cp.multiply(Y, Z), axis=1))
            )
        else:
            raise ValueError(f"cvxpy solver: unsupported loss {type(loss).__name__}")
        if isinstance(program.penalty, ColumnGroupL2):
            reg = cp.sum([cp.sum(cp.norm(Vk, 2, axis=0)) for Vk in V])
        elif isinstance(program.penalty, NuclearNorm):
            reg = cp.sum([cp.normNuc(Vk) for Vk in V])
        else:
            raise ValueError(f"cvxpy solver: unsupported penalty {type(program.penalty).__name__}")
        cons = []
        if program.has_cone:
            E = 2 * M - 1
            cons = [cp.multiply(E[:, [j % P]], Xa @ V[j]) >= 0 for j in range(B)]
        prob = cp.Problem(cp.Minimize(data + program.alpha * reg), cons)
        # one gap check at the end: it honours the scope's time limit (if any)
        progress = ProgressPrinter(0, self.name, tol=tol)
        remaining = progress.remaining()
        options = {}
        if remaining is not None and str(self.solver).upper() == "CLARABEL":
            options["time_limit"] = max(float(remaining), 1e-3)
        prob.solve(solver=self.solver, verbose=bool(verbose), **options)
        accepted = ("optimal", "optimal_inaccurate") + (("user_limit",) if options else ())
        if prob.status not in accepted or any(Vk.value is None for Vk in V):
            raise RuntimeError(f"cvxpy reference solve failed with status {prob.status!r}")
        coef = np.stack([Vk.value for Vk in V])
        intercept = np.asarray(b.value, dtype=float).reshape(c)
        Lam = None
        if program.has_cone and all(con.dual_value is not None for con in cons):
            Lam = np.stack([np.asarray(con.dual_value).reshape(n, c) for con in cons], axis=1)
            Lam = np.maximum(Lam, 0.0)
        if program.has_cone:
            coef = program.make_feasible(coef)  # interior-point iterates (rounding-level at the optimum)
        point = dual_point_from_outputs(program, program.predict(coef, intercept), Lam)
        history = History()
        value = program.objective(coef, intercept)
        history.record(1, 0.0, value, value)
        if progress.deadline is not None:
            # the time-limit check (raises TimeLimitReached when it passed short of tol)
            dual = dual_value(program, point, refine=program.has_cone)
            progress(1, value, dual)
            progress.snapshot(coef, intercept, point, iteration=1, objective=value)
        progress.close()
        return Solution(coef, intercept, [point], 1, [value], history)
