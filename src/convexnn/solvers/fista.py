"""Accelerated proximal gradient (FISTA) for the gated-ReLU program.

Solves :math:`\\min_{V,b} L(\\mathcal A V + b) + \\alpha R(V)` with line search and
adaptive restarts (see :mod:`convexnn.solvers._fista`) and stops when the relative
duality gap of :mod:`convexnn.certificates` drops to ``tol``.
"""

from __future__ import annotations

import numpy as np

from ..certificates import DualPoint, dual_point_from_outputs, dual_value
from ..programs import ConvexProgram
from ._fista import Composite, FlatParams, fista, init_state
from .base import History, ProgressPrinter, Solution, Solver

__all__ = ["FISTA"]


def _initial_step(program: ConvexProgram) -> float:
    """``1 / L`` from a short power iteration; the line search corrects it."""
    op = program.operator
    w = program.sample_weight
    # cone programs: the P-block map sum_k S_k Xa V_k with the activation's S_k
    lam = op.pattern_norm_squared(w, n_iter=8) if program.has_cone else op.norm_squared(w, n_iter=8)
    return 1.0 / (program.loss.smoothness * (lam + 1.0))


class FISTA(Solver):
    """FISTA with backtracking, restarts and duality-gap stopping.

    Parameters
    ----------
    check_every : int, default=10
        Iterations between duality-gap evaluations (each costs one adjoint product).
    """

    name = "fista"
    handles_gated = True
    handles_cone = True

    def __init__(self, check_every: int = 10):
        self.check_every = check_every

    def solve(self, program, *, tol, max_iter, init=None, verbose=0):
        self.check(program)
        flat = FlatParams(program)
        unpack = flat.unpack

        def forward(x):
            coef, b = unpack(x)
            return program.predict(coef, b).ravel()

        def smooth(z):
            val, grad = program.data_fit(z.reshape(-1, program.n_outputs))
            return val, grad.ravel()

        def adjoint(dz):
            dZ = dz.reshape(-1, program.n_outputs)
            G, g_intercept = program.adjoint(dZ)
            return np.concatenate([G.ravel(), g_intercept])

        problem = Composite(forward, smooth, adjoint, flat.prox, flat.nonsmooth)
        x0 = flat.start(init)
        state = init_state(problem, x0, _initial_step(program))

        history = History()
        curve: list[float] = []
        progress = ProgressPrinter(verbose, self.name, max_iter=max_iter, tol=tol)
        best = {"dual": -np.inf, "point": None}
        # ReLU: exact dual norms need one cone projection per block; a projector of
        # its own keeps those blocks' active sets warm from one check to the next
        dual_projector = program.cone_projector() if program.has_cone else None

        def check(it, s) -> bool:
            point = dual_point_from_outputs(program, s.aux.reshape(-1, program.n_outputs))
            d = dual_value(program, point, refine=program.has_cone, projector=dual_projector)
            if d > best["dual"]:
                best["dual"], best["point"] = d, point
            history.record(it, progress.elapsed(), s.value, best["dual"])
            progress(it, s.value, best["dual"])
            progress.snapshot(*unpack(s.x), best["point"], iteration=it, objective=s.value)
            return s.value - best["dual"] <= tol * abs(s.value)

        def stop(it, s) -> bool:
            curve.append(s.value)
            return it % self.check_every == 0 and check(it, s)

        if check(0, state):
            n_iter = 0
        else:
            state, n_iter = fista(problem, state, max_iter, stop)
            if n_iter % self.check_every:
                check(n_iter, state)
        progress.close()
        coef, b = unpack(state.x)
        points: list[DualPoint] = [best["point"]] if best["point"] is not None else []
        return Solution(coef.copy(), b.copy(), points, n_iter, curve, history)
