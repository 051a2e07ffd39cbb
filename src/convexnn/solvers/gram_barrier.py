r"""Primal interior-point method for the gated program on its Gram matrix (many samples).

With the squared loss, the gated program (DESIGN.md §1) of one output column is a
group lasso in coefficient space,

.. math::

    \min_u\; \tfrac12 u^\top H u - b^\top u + c + \alpha \sum_{k=1}^P \lVert u_k\rVert,
    \qquad H = A^\top C^\top W C A,\quad b = A^\top C^\top W C y,

with :math:`A = [D_1 X_a \cdots D_P X_a]` (``n x P p``, ``p = d + 1``), the sample
weights :math:`W` (summing to one) and :math:`C = I - \mathbf 1 w^\top`, which centres
the residual: the optimal intercept is eliminated. Where ``n`` is much larger than
``P p`` (tabular data: tens of thousands of rows, ten features), :math:`H` is formed once
(:meth:`~convexnn.operators.GatedOperator.block_gram`, ``n (P p)^2 / 2`` multiply-adds,
float32) and every step of a primal-dual interior-point method costs one dense
``P p x P p`` Cholesky factorisation, independent of ``n``; the sample-space methods
(:class:`~convexnn.solvers.DualBarrier`) factor ``n x n`` matrices instead, and
first-order methods need tens of thousands of products with :math:`A` to certify a
small gap.

**The conic program.** With one epigraph variable per block, :math:`x_k = (t_k, u_k)
\in \mathcal Q` (second-order cone), the program is
:math:`\min \tfrac12 u^\top H u - b^\top u + \alpha \sum_k t_k`. Its KKT conditions, with
multipliers :math:`z_k = (z_{k0}, \bar z_k) \in \mathcal Q`, are
:math:`H u - b = \bar z`, :math:`z_{k0} = \alpha` and :math:`x_k \circ z_k = 0` (Jordan
product), so :math:`z \in \mathcal Q` is exactly the group lasso's dual constraint
:math:`\lVert (Hu - b)_k\rVert \le \alpha`. Mehrotra's predictor-corrector method runs on
them from the infeasible start :math:`u = 0`, :math:`t = 1`, :math:`z = (\alpha, 0)`,
Nesterov-Todd scaled (:func:`~convexnn.solvers._soc._nt_scaling`). Eliminating
:math:`dz` and then each block's :math:`dt_k` (one scalar per block) leaves

.. math::

    \Big(H + \operatorname{blkdiag}_k\big(D_{uu} - D_{ut} D_{tu} / D_{tt}\big)_k\Big)\,
    du = r, \qquad D_k = W_k^2 ,

one dense symmetric positive definite system per step (two solves with its factor).

**Precision.** :math:`H` is float32, so it only shapes the steps: the gradient
:math:`Hu - b = A^\top C^\top W C (A u - y)` in the KKT residuals and every certificate
come from the exact float64 products of the operator (two per step), and once the gap
is within ``100 * tol`` each solve is refined once with those exact products. The
iterates therefore converge to the optimum of the true program, not of its rounded Gram
matrix.

**Certificates.** Every iterate ``u`` is a network; its objective is exact. The dual
point is the loss gradient :math:`\theta = W C (A u - y)` scaled onto the dual feasible
set, :math:`\max_k \lVert X_a^\top D_k \theta\rVert \le \alpha` (the gradient the step
computes anyway), so the gap costs nothing extra. The solver stops on the certified
gap, never on an iteration count alone. Interior iterates keep every block nonzero (at
norms of order :math:`\mu`); the returned network drops the blocks below a threshold
for which the certified gap still holds (:func:`~convexnn.solvers.base.prune_blocks`).

Scope: the gated program with the squared loss, one group per block and output
(:class:`~convexnn.penalties.ColumnGroupL2`), data in memory or streamed, on the numpy
operator, with at most ``max_variables`` coefficients ``P p`` per output (the dense
matrix has ``(P p)^2`` entries: 8000 coefficients are 256 MB in float32 and a ~3 s
factorisation). Several outputs share :math:`H` and are separate problems, solved in
lock-step.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve

from ..certificates import DualPoint
from ..losses import SquaredLoss
from ..programs import ConvexProgram
from ._soc import _bmv, _in_soc, _jdiv, _jprod, _nt_scaling, _soc_step
from .base import History, ProgressPrinter, Solution, Solver, group_per_block_and_output, prune_blocks

__all__ = ["GramBarrier"]


class GramBarrier(Solver):
    """Primal-dual interior-point method for the gated program on its Gram matrix.

    For the gated program with the squared loss where ``n_samples`` is much larger than
    the number of coefficients ``P (d + 1)`` per output (see the module docstring).

    Parameters
    ----------
    max_variables : int, default=8000
        Largest ``P (d + 1)`` accepted: each step factors a dense matrix of that order
        (``max_variables**2`` float32 entries are kept, plus one float32 copy per step).
    step_fraction : float, default=0.99
        Fraction of the step to the boundary of the cones that is taken.

    Notes
    -----
    ``max_iter`` counts predictor-corrector steps. ``init=(coef, intercept)`` is
    certified first: if its gap is within ``tol`` it is returned at once, otherwise it
    stays a candidate (its bounds count, and it is returned if the path ends above it).
    The path itself starts from its own symmetric point: interior-point methods gain
    little from warm starts.
    """

    name = "gram_barrier"
    handles_gated = True
    handles_cone = False
    alternatives = "solver='fista'"

    def __init__(self, max_variables: int = 8000, step_fraction: float = 0.99):
        self.max_variables = max_variables
        self.step_fraction = step_fraction

    # -- what it handles -------------------------------------------------------------
    def supports(self, program: ConvexProgram) -> str | None:
        """``None`` if this solver handles ``program``, else the reason it does not."""
        if program.has_cone:
            return "it solves the gated program only"
        if not isinstance(program.loss, SquaredLoss):
            return f"the {type(program.loss).__name__} is not the squared loss"
        reason = group_per_block_and_output(program)
        if reason is not None:
            return reason
        op = program.operator
        if not hasattr(op, "block_gram"):
            return f"the {type(op).__name__} has no Gram matrix (use the numpy operator, device=None)"
        m = op.n_patterns * op.n_inputs
        if m > self.max_variables:
            return (
                f"{op.n_patterns} patterns x {op.n_inputs} inputs = {m} coefficients per output "
                f"exceed max_variables={self.max_variables} (each step factors a dense matrix of "
                "that order)"
            )
        return None

    def check(self, program: ConvexProgram) -> None:
        super().check(program)
        if not 0.0 < self.step_fraction < 1.0:
            raise ValueError(f"step_fraction must be in (0, 1), got {self.step_fraction!r}.")

    # -- the solve ---------------------------------------------------------------------
    def solve(self, program, *, tol, max_iter, init=None, verbose=0):
        self.check(program)
        with program.exact_products():
            return self._solve(program, tol=tol, max_iter=max_iter, init=init, verbose=verbose)

    def _solve(self, program, *, tol, max_iter, init, verbose):
        op, alpha = program.operator, float(program.alpha)
        P, p, c = op.n_patterns, op.n_inputs, program.n_outputs
        m = P * p
        loss = program.loss
        w = np.asarray(program.sample_weight, dtype=float)
        w = w / w.sum()
        Y = np.asarray(program.Y, dtype=float)

        def centred(R):
            return R - w @ R

        def evaluate(V):
            """Exact primal values, scaled dual points and dual values of every column
            at coefficients ``V`` (shape ``(P, p, c)``), and the loss gradient in
            coefficient space, ``H u - b`` per column (shape ``(P, p, c)``)."""
            R = centred(op.matvec(V) - Y)  # residual at the optimal intercept
            Theta = w[:, None] * R  # the loss gradient there
            grad = op.rmatvec(Theta)
            norms = np.sqrt(np.einsum("kpc,kpc->kc", grad, grad)).max(axis=0, initial=0.0)
            scale = np.where(norms <= alpha, 1.0, alpha / np.maximum(norms, 1e-300))
            Theta = Theta * scale
            columns = range(c)  # the loss and its conjugate of each column on its own
            primal = np.array([loss.value(Y[:, [j]] + R[:, [j]], Y[:, [j]], w) for j in columns])
            primal += alpha * np.linalg.norm(V, axis=1).sum(axis=0)
            dual = np.array([-loss.conjugate(Theta[:, [j]], Y[:, [j]], w) for j in columns])
            return primal, dual, Theta, grad

        def evaluate_column(U, j):
            """Exact objective of blocks ``U`` (shape ``(P, p)``) of column ``j``."""
            r = centred(op.matvec(U[:, :, None])[:, 0] - Y[:, j])[:, None]
            return loss.value(Y[:, [j]] + r, Y[:, [j]], w) + alpha * float(np.linalg.norm(U, axis=1).sum())

        def exact_hessian(dU):
            """:math:`H` times the blocks ``dU`` (shape ``(P, p)``), exact."""
            return op.rmatvec(w[:, None] * centred(op.matvec(dU[:, :, None])))[:, :, 0]

        history = History()
        progress = ProgressPrinter(verbose, self.name, max_iter=max_iter, tol=tol)
        best_primal = np.full(c, np.inf)
        best_dual = np.full(c, -np.inf)
        best_V = np.zeros((P, p, c))
        best_Theta = np.zeros_like(Y)

        def record(V, primal, dual, Theta):
            better = primal < best_primal
            best_primal[better] = primal[better]
            best_V[:, :, better] = V[:, :, better]
            up = dual > best_dual
            best_dual[up] = dual[up]
            best_Theta[:, up] = Theta[:, up]

        if init is not None:
            V0 = np.asarray(init[0], dtype=float).reshape(P, p, c)
            record(V0, *evaluate(V0)[:3])
            if best_primal.sum() - best_dual.sum() <= tol * abs(best_primal.sum()):
                history.record(0, progress.elapsed(), float(best_primal.sum()), float(best_dual.sum()))
                progress.close()
                return Solution(V0.copy(), self._intercept(op, V0, Y, w), [DualPoint(best_Theta.copy())],
                                0, [], history)

        # start: u = 0, t = 1, z = (alpha, 0): x o z = alpha e (centred at mu = alpha)
        X = np.zeros((c, P, p + 1))
        X[:, :, 0] = 1.0
        Z = np.zeros((c, P, p + 1))
        Z[:, :, 0] = alpha
        done = np.zeros(c, dtype=bool)

        def report(it):
            primal, dual = float(best_primal.sum()), float(best_dual.sum())
            history.record(it, progress.elapsed(), primal, dual)
            progress(it, primal, dual)
            progress.snapshot(best_V.copy(), self._intercept(op, best_V, Y, w), [DualPoint(best_Theta.copy())],
                              iteration=it, objective=primal)
            return primal, dual

        it = 0
        curve: list[float] = []
        H = None
        while True:
            V = X[:, :, 1:].transpose(1, 2, 0)  # (P, p, c)
            primal, dual, Theta, grad = evaluate(V)
            record(V, primal, dual, Theta)
            done |= best_primal - best_dual <= tol * np.abs(best_primal)
            total, total_dual = report(it)
            if it:
                curve.append(float(primal.sum()))
            if done.all() or total - total_dual <= tol * abs(total) or it >= max_iter:
                break
            if H is None:
                # the Newton matrices' data part, formed once in float32 (after the first
                # report: at tens of thousands of rows this takes seconds)
                H = op.block_gram(w, single=True)
                s = op.rmatvec(w[:, None]).reshape(m).astype(np.float32)
                H -= np.outer(s, s)  # H = A^T W A - s s^T: the centred (intercept-free) Gram
                del s
            it += 1
            for j in np.flatnonzero(~done):
                refine = best_primal[j] - best_dual[j] <= 100.0 * tol * abs(best_primal[j])
                moved = self._step(X[j], Z[j], grad[:, :, j], H, alpha, exact_hessian if refine else None)
                if not moved and not refine:  # the float32 matrix alone did not move it
                    moved = self._step(X[j], Z[j], grad[:, :, j], H, alpha, exact_hessian)
                if not moved:
                    done[j] = True
        progress.close()
        for j in range(c):
            U, primal_j = prune_blocks(
                best_V[:, :, j], best_primal[j], best_dual[j], tol,
                lambda U, j=j: evaluate_column(U, j),
            )
            best_V[:, :, j], best_primal[j] = U, primal_j
        if history.primal and best_primal.sum() < history.primal[-1]:
            history.primal[-1] = float(best_primal.sum())
            if curve:
                curve[-1] = float(best_primal.sum())
        return Solution(best_V, self._intercept(op, best_V, Y, w), [DualPoint(best_Theta)], it, curve, history)

    # -- one predictor-corrector step --------------------------------------------------
    def _step(self, x, z, grad, H, alpha, exact_hessian) -> bool:
        r"""One Mehrotra predictor-corrector step on the blocks ``x = (t, u)`` and their
        multipliers ``z`` (both ``(P, p + 1)``, updated in place); ``False`` if it could
        not move. ``grad`` is the exact :math:`Hu - b` at ``u``; ``exact_hessian``, if
        given, refines each solve once with exact products."""
        P, q = x.shape
        p = q - 1
        r_u = grad - z[:, 1:]  # stationarity in u: H u - b - zbar
        r_t = alpha - z[:, 0]  # stationarity in t: alpha - z0
        W, Winv = _nt_scaling(x, z)
        lt = _bmv(W, x)  # scaled point W x = W^{-1} z
        D = np.matmul(W, W)
        Dtt = D[:, 0, 0]
        Dut = D[:, 1:, 0]
        blocks = D[:, 1:, 1:] - Dut[:, :, None] * Dut[:, None, :] / Dtt[:, None, None]
        N = H.copy()
        Nv = N.reshape(P, p, P, p)
        k = np.arange(P)
        Nv[k, :, k, :] += blocks.astype(N.dtype)
        try:
            factor = cho_factor(N, lower=False, overwrite_a=True, check_finite=False)
        except LinAlgError:
            return False
        del N, Nv

        def solve(rhs):
            du = cho_solve(factor, rhs.reshape(-1).astype(np.float32), check_finite=False)
            du = du.astype(float).reshape(P, p)
            if exact_hessian is not None:  # one step of refinement with exact products
                resid = rhs - exact_hessian(du) - _bmv(blocks, du)
                du = du + cho_solve(factor, resid.reshape(-1).astype(np.float32),
                                    check_finite=False).astype(float).reshape(P, p)
            return du

        def direction(target, corr):
            # complementarity rows, scaled: W dx + W^{-1} dz = lt \ (target e - lt o lt - corr)
            rhs_s = -_jprod(lt, lt) - corr
            rhs_s[:, 0] += target
            rs = _jdiv(lt, rhs_s)
            Wrs = _bmv(W, rs)
            R_u = -r_u + Wrs[:, 1:]
            R_t = -r_t + Wrs[:, 0]
            du = solve(R_u - Dut * (R_t / Dtt)[:, None])
            dt = (R_t - np.einsum("kp,kp->k", Dut, du)) / Dtt
            dx = np.concatenate([dt[:, None], du], axis=1)
            dz = Wrs - _bmv(D, dx)  # dz = W rs - W^2 dx
            return dx, dz

        comp = float(np.einsum("kq,kq->", x, z))
        mu = comp / P  # one cone of degree 1 per block
        dx, dz = direction(0.0, 0.0)
        a_aff = min(1.0, _soc_step(x, dx), _soc_step(z, dz))
        comp_aff = float(np.einsum("kq,kq->", x + a_aff * dx, z + a_aff * dz))
        sigma = min(1.0, (comp_aff / max(comp, 1e-300)) ** 3)
        corr = _jprod(_bmv(Winv, dz), _bmv(W, dx))
        dx, dz = direction(sigma * mu, corr)
        step = min(1.0, self.step_fraction * min(_soc_step(x, dx), _soc_step(z, dz)))
        # the boundary roots lose digits in cancellation: check the new point itself
        for _ in range(60):
            if _in_soc(x + step * dx).all() and _in_soc(z + step * dz).all():
                break
            step *= 0.5
        else:
            return False
        x += step * dx
        z += step * dz
        return step > 1e-12

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def _intercept(op, V, Y, w) -> np.ndarray:
        """The optimal intercept of the squared loss at coefficients ``V``."""
        return w @ (Y - op.matvec(V))
