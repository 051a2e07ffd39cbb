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

#: gap checks without a 1 % improvement after which float32 products are promoted
_STALL_CHECKS = 5
#: the line search's slack in rounding units of the products (float32 on a device:
#: 4 eps kept the float64 iteration counts; 0 stalled, 64 accepted too long steps)
_SLACK_EPS = 4


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

        op = program.operator

        def make_problem() -> Composite:
            # the line search tolerates a few rounding units of the products' precision
            slack = max(1e-14, _SLACK_EPS * op.eps)
            return Composite(forward, smooth, adjoint, flat.prox, flat.nonsmooth, slack)

        problem = make_problem()
        x0 = flat.start(init)
        state = init_state(problem, x0, _initial_step(program))
        # float32 products (a device operator): when the gap stops shrinking for
        # ``_STALL_CHECKS`` checks, the rest of the solve runs in float64
        gaps: list[float] = []
        promote = {"now": False}

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
            gap = s.value - best["dual"]
            if gap <= tol * abs(s.value):
                return True
            gaps.append(gap)
            if (op.eps > 1e-10 and len(gaps) > _STALL_CHECKS
                    and min(gaps[-_STALL_CHECKS:]) > 0.99 * min(gaps[:-_STALL_CHECKS])):
                promote["now"] = op.promote()
                return promote["now"]
            return False

        done_before = {"n": 0}  # iterations of earlier (float32) rounds

        def stop(it, s) -> bool:
            curve.append(s.value)
            it += done_before["n"]
            return it % self.check_every == 0 and check(it, s)

        n_iter = 0
        if not check(0, state):
            while n_iter < max_iter:
                state, done = fista(problem, state, max_iter - n_iter, stop)
                n_iter += done
                done_before["n"] = n_iter
                if not promote["now"]:
                    break
                # products are float64 now: restart from the iterate with exact images
                promote["now"] = False
                problem = make_problem()
                state = init_state(problem, state.x, state.step)
            if n_iter % self.check_every:
                check(n_iter, state)
        progress.close()
        coef, b = unpack(state.x)
        points: list[DualPoint] = [best["point"]] if best["point"] is not None else []
        return Solution(coef.copy(), b.copy(), points, n_iter, curve, history)
