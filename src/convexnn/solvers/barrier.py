"""Interior-point method on the dual of the gated-ReLU program, in sample space.

The gated program (DESIGN.md §1) with one group per block and output,

.. math::

    \\min_{V, b}\\; L(\\textstyle\\sum_k A_k V_k + b) + \\alpha \\sum_{k,j} \\lVert V_{k,:,j}\\rVert,
    \\qquad A_k = D_k X_a,

has the dual (:mod:`convexnn.certificates`)

.. math::

    \\max_{\\Theta}\\; -L^*(\\Theta) \\quad\\text{s.t.}\\quad \\mathbf 1^\\top \\Theta = 0,\\;
    \\lVert A_k^\\top \\Theta_{:,j} \\rVert \\le \\alpha .

Its variable lives in :math:`\\mathbb R^{n}` per output, which is small exactly where
first-order methods on the primal (``P * (d + 1)`` variables, badly conditioned because
masks overlap) are slow. This solver follows the central path of the log barrier

.. math::

    \\phi_\\mu(\\theta) = L^*(\\theta) - \\mu \\sum_k \\log s_k, \\qquad
    s_k = \\alpha^2 - \\lVert g_k \\rVert^2, \\quad g_k = A_k^\\top \\theta,

with damped Newton steps subject to :math:`\\mathbf 1^\\top\\theta = 0`. The Newton matrix

.. math::

    \\nabla^2 L^*(\\theta) + \\mu \\sum_k \\Big(\\frac{2}{s_k} A_k A_k^\\top
    + \\frac{4}{s_k^2} z_k z_k^\\top\\Big), \\qquad z_k = A_k g_k,

is ``n x n`` and never needs a product per block: :math:`\\sum_k c_k A_k A_k^\\top =
(X_a X_a^\\top) \\circ (M \\operatorname{diag}(c) M^\\top)` with the mask matrix ``M``
(:meth:`~convexnn.operators.GatedOperator.weighted_gram`). A step costs
:math:`O(n^2 P + n^3)`, and a few dozen steps reach a relative gap of ``1e-6``.

Every iterate gives a primal point too: :math:`V_k = -(2\\mu / s_k)\\, g_k` (the
stationarity condition of the barrier problem), with its best intercept. At a central
point :math:`\\nabla L(\\mathcal A V + b) = \\theta` and the duality gap is exactly
:math:`\\sum_k 2\\mu\\lVert g_k\\rVert/(\\alpha + \\lVert g_k\\rVert) \\le \\mu P`, so the
method stops on a certified gap, not on an iteration count. The dual iterate is strictly
feasible throughout, so its value is a valid lower bound at every step.

Scope: the gated program (no cone constraints), losses whose conjugate is separable
(squared loss with any number of outputs, logistic loss), one group per block and
output (:class:`~convexnn.penalties.ColumnGroupL2`, or the nuclear norm with one output,
which is the same), and at most ``max_samples`` samples (the ``n x n`` matrix is dense).
With several outputs the squared loss separates, and each output is its own dual
problem; they are solved in lock-step so progress reports the whole objective.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve
from scipy.optimize import minimize_scalar

from .._nnls import nnls
from ..certificates import DualPoint
from ..losses import SquaredLoss
from ..operators import _symmetric_square
from ..programs import ConvexProgram
from .base import History, ProgressPrinter, Solution, Solver, group_per_block_and_output

__all__ = ["DualBarrier"]


@dataclass
class _Column:
    """Dual iterate of one output column and the best primal point read off it."""

    j: int
    theta: np.ndarray  # (n_pos,) dual variable on the positive-weight rows
    mu: float
    primal: float = np.inf
    dual: float = -np.inf
    coef: np.ndarray | None = None  # (P, p) best primal coefficients so far
    intercept: float = 0.0
    best_theta: np.ndarray | None = None
    done: bool = False
    stalled: bool = False
    steps_at_mu: int = 0  # Newton steps since mu last moved
    products: tuple | None = None  # (g, s) at theta, kept in step with it


class DualBarrier(Solver):
    """Primal-dual interior-point solver on the sample-space dual (gated ReLU).

    Parameters
    ----------
    max_samples : int, default=5000
        Largest number of (positive-weight) samples accepted: each Newton step forms
        and factors an ``n_samples x n_samples`` matrix.
    shrink : float, default=0.2
        Factor applied to the barrier weight ``mu`` once the iterate is close to the
        central path (Newton decrement below ``centering``).
    centering : float, default=0.5
        Newton-decrement threshold (squared, of :math:`\\phi_\\mu/\\mu`) that counts as
        centred.
    prune : float, default=1e-8
        Blocks whose barrier curvature is below ``prune`` times the largest are left
        out of the Newton matrix (the gradient always has every block).
    max_centering_steps : int, default=8
        Newton steps at one ``mu`` after which the path moves on anyway (rounding can
        keep the tight centring of the last stage out of reach).
    active_band : float, default=1e-3
        Blocks with :math:`s_k \\le` ``active_band`` :math:`\\alpha^2` count as active
        when the network is read off the dual point.
    domain_weight : float, default=0.01
        Weight, relative to ``mu``, of the logarithmic barrier of ``dom L*`` (logistic
        loss: :math:`-\\sum_i \\log q_i + \\log(1 - q_i)`). It keeps Newton steps off
        the domain's boundary; with weight 1 its ``2 n`` terms dominate the ``P`` block
        constraints and slow the path down (pmlb_magic, 2000 rows: no progress after
        100 steps, against 22 steps with 0.01).
    single_precision : bool, default=True
        Form and factor the Newton matrix in float32 (with one float64 refinement per
        solve) until the path's gap bound is within ``fit_from * tol``; float64 after
        that. Only the Newton steps are affected, never the reported points or the
        certificate (pmlb_magic, 2000 rows: 9.1 s against 6.7 s, same 23 steps).
    fit_from : float, default=10.0
        The active-set fit of the network is tried at every step once the path's gap
        bound ``2 mu P`` is below ``fit_from * tol`` times the dual value.

    Notes
    -----
    ``max_iter`` counts Newton steps (each output column takes one per iteration).
    ``init=(coef, intercept)`` is the starting primal point, and the loss gradient
    there, scaled onto the dual feasible set, the starting dual bound: a fit of an
    already solved problem stops at once. The central path itself starts from the
    constant model (interior-point methods gain little from warm starts; started next
    to the init's dual point, regularization paths took more Newton steps than cold).
    """

    name = "barrier"
    handles_gated = True
    handles_cone = False

    def __init__(
        self,
        max_samples: int = 5000,
        shrink: float = 0.2,
        centering: float = 0.5,
        prune: float = 1e-8,
        max_centering_steps: int = 8,
        active_band: float = 1e-3,
        domain_weight: float = 0.01,
        fit_from: float = 10.0,
        single_precision: bool = True,
    ):
        self.single_precision = single_precision
        self.fit_from = fit_from
        self.domain_weight = domain_weight
        self.active_band = active_band
        self.max_samples = max_samples
        self.max_centering_steps = max_centering_steps
        self.prune = prune
        self.shrink = shrink
        self.centering = centering

    # -- what it handles ---------------------------------------------------------------
    def supports(self, program: ConvexProgram) -> str | None:
        """``None`` if this solver handles ``program``, else the reason it does not."""
        if program.has_cone:
            return "it solves the gated-ReLU program only (no cone constraints)"
        if not hasattr(program.operator, "weighted_gram"):
            return f"the operator {type(program.operator).__name__} has no weighted_gram"
        if not program.loss.separable_conjugate:
            return (
                f"the {type(program.loss).__name__} conjugate is not separable "
                "(use the squared or logistic loss)"
            )
        c = program.n_outputs
        if c > 1 and not isinstance(program.loss, SquaredLoss):
            return "several outputs need the squared loss (which separates over outputs)"
        reason = group_per_block_and_output(program)
        if reason is not None:
            return reason
        n = int(np.count_nonzero(program.sample_weight > 0))
        if n > self.max_samples:
            return (
                f"{n} samples exceed max_samples={self.max_samples} (each Newton step "
                "factors an n_samples x n_samples matrix)"
            )
        return None

    # -- the solve -----------------------------------------------------------------------
    def solve(self, program, *, tol, max_iter, init=None, verbose=0):
        self.check(program)
        # its Newton matrices are float64 host arrays; the few operator products it
        # needs run in float64 too (a float32 device would blur the tight gaps it certifies)
        with program.exact_products():
            return self._solve(program, tol=tol, max_iter=max_iter, init=init, verbose=verbose)

    def _solve(self, program, *, tol, max_iter, init, verbose):
        op, loss, alpha = program.operator, program.loss, float(program.alpha)
        w_all = program.sample_weight
        pos = np.flatnonzero(w_all > 0)
        all_rows = pos.size == w_all.size
        w = w_all[pos]
        Y = program.Y[pos]
        n, P, c = w_all.size, op.n_patterns, program.n_outputs
        alpha2 = alpha * alpha

        def full(theta):
            if all_rows:
                return theta
            out = np.zeros(n)
            out[pos] = theta
            return out

        def rows(A):
            return A if all_rows else A[pos]

        def block_products(theta):
            """``g_k = A_k^T theta`` for every block, shape ``(P, p)``."""
            return op.rmatvec(full(theta)[:, None])[:, :, 0]

        def conj(theta, j):
            return loss.conjugate(theta[:, None], Y[:, [j]], w)

        # the constant model: primal upper bound and interior dual start
        b0 = program.constant_intercept()
        Z0 = np.broadcast_to(b0, program.Y.shape)
        J0, grad0 = program.data_fit(np.array(Z0))
        grad0 = rows(grad0)

        def largest_block(theta):
            """:math:`\\max_k |g_k|` at ``theta``."""
            g = block_products(theta)
            return float(np.sqrt(np.einsum("kp,kp->k", g, g).max(initial=0.0)))

        def interior(theta, margin, top):
            """``theta`` scaled so every block has ``|g_k| <= margin * alpha``."""
            return theta if top <= margin * alpha else theta * (margin * alpha / top)

        cols: list[_Column] = []
        for j in range(c):
            raw = grad0[:, j].copy()
            top = largest_block(raw)
            col = _Column(j, interior(raw, 0.5, top), mu=np.nan)
            if top <= alpha:
                # alpha >= alpha_max: the constant model's gradient is dual optimal
                col.dual, col.best_theta = -conj(raw, j), raw
            cols.append(col)
        primal_init = None
        if init is not None:
            coef_i = np.asarray(init[0], dtype=float)
            b_i = np.asarray(init[1], dtype=float)
            Zi = program.predict(coef_i, b_i)
            _, gi = program.data_fit(Zi)
            gi = rows(loss.project_dual(gi, program.Y, w_all))
            for col in cols:
                # the init's own certificate (gradient scaled onto the feasible set) ...
                warm = gi[:, col.j].copy()
                exact = interior(warm, 1.0, largest_block(warm))
                value = -conj(exact, col.j)
                if np.isfinite(value) and value > col.dual:
                    col.dual, col.best_theta = value, exact
                # the path itself starts from the constant model's dual point: started
                # next to the init's (on the constraints' boundary) it took more Newton
                # steps along regularization paths than a cold start (tests/test_path.py)
            primal_init = (coef_i, b_i)

        J0_cols = [loss.value(np.full((pos.size, 1), b0[j]), Y[:, [j]], w) for j in range(c)]
        history = History()
        curve: list[float] = []
        progress = ProgressPrinter(verbose, self.name, max_iter=max_iter, tol=tol)
        floor = 1e-13 * max(abs(J0), np.finfo(float).tiny)

        def evaluate(col, V, b=None):
            """``(V, b, objective)``, with the best intercept for ``V`` unless ``b`` is given."""
            Zv = rows(op.matvec(V[:, :, None]))[:, 0]
            yj = Y[:, col.j]
            if b is not None:
                b = float(b)
            elif isinstance(loss, SquaredLoss):
                b = float(w @ (yj - Zv))
            else:
                # one-dimensional convex problem, started where theta says it is
                dL, _ = loss.conjugate_derivatives(col.theta[:, None], Y[:, [col.j]], w)
                start = float(w @ (dL[:, 0] - Zv))
                f = lambda t: loss.value((Zv + t)[:, None], yj[:, None], w)  # noqa: E731
                if not np.isfinite(start):
                    start = float(b0[col.j])
                res = minimize_scalar(f, bracket=(start - 1.0, start + 1.0))
                b = float(res.x) if np.isfinite(res.fun) and res.fun <= f(start) else start
            value = loss.value((Zv + b)[:, None], yj[:, None], w) + program.regularizer(V[:, :, None])
            return V, b, value

        def read_primal(col, g, s):
            """Primal point of the barrier stationarity condition, best intercept."""
            return evaluate(col, -(2.0 * col.mu / s)[:, None] * g)

        def active_set_primal(col, g, s):
            """Primal point fitted to the outputs the dual point stands for.

            At the optimum ``Z* = grad L*(theta)`` and ``V_k = r_k u_k`` with
            ``u_k = -g_k / |g_k|`` on the blocks whose constraint is active, ``r >= 0``;
            any such ``r`` reproducing ``Z*`` is optimal. Near the end of the path
            ``theta`` is accurate to many digits while ``mu / s_k`` has lost them to
            rounding, so the magnitudes ``r`` are fitted by non-negative least squares
            (intercept eliminated) on the nearly active blocks instead.
            """
            norms = np.sqrt(np.maximum(alpha2 - s, 0.0))
            active = np.flatnonzero(s <= self.active_band * alpha2)
            if active.size == 0:
                return None
            U = np.zeros_like(g)
            U[active] = -g[active] / norms[active, None]
            B = rows(op.block_images(U))[:, active]  # (n_pos, |active|)
            target, _ = loss.conjugate_derivatives(col.theta[:, None], Y[:, [col.j]], w)
            target = target[:, 0]
            root = np.sqrt(w)
            Bc = B - (w @ B)[None, :]
            r = nnls(root[:, None] * Bc, root * (target - w @ target))
            V = np.zeros_like(g)
            V[active] = r[:, None] * U[active]
            return evaluate(col, V)

        def sparsest(col):
            """Replace the column's primal point by a sparser one that still meets ``tol``.

            The barrier's primal point gives every block a (tiny) non-zero weight; the
            network should only have the neurons the optimum needs. Candidates: the
            active-set fit, then the point with its smallest blocks zeroed (relative
            sizes 1e-2, 1e-4, 1e-6); the first that keeps the certified gap wins.
            """
            if col.products is None:
                col.products = self._products(col.theta, block_products, alpha2)
            g, s = col.products
            base = np.count_nonzero(np.einsum("kp,kp->k", col.coef, col.coef))
            candidates = []
            fitted = active_set_primal(col, g, s)
            if fitted is not None:
                candidates.append(fitted)
            norms = np.sqrt(np.einsum("kp,kp->k", col.coef, col.coef))
            for frac in (1e-2, 1e-4, 1e-6):
                keep = norms >= frac * norms.max(initial=0.0)
                if np.count_nonzero(keep) < base:
                    candidates.append(evaluate(col, col.coef * keep[:, None]))
            for V, b, value in candidates:
                fewer = np.count_nonzero(np.einsum("kp,kp->k", V, V)) < base
                if fewer and value - col.dual <= tol * abs(value):
                    col.primal, col.coef, col.intercept = value, V, b
                    return

        def record(col, V, b, value):
            if value < col.primal:
                col.primal, col.coef, col.intercept = value, V, b
            d = -conj(col.theta, col.j)
            if d > col.dual:
                col.dual, col.best_theta = d, col.theta.copy()
            gap = col.primal - col.dual
            if gap <= tol * abs(col.primal) or gap <= floor:
                col.done = True

        # iteration 0: the starting primal point(s) and the starting dual points;
        # mu starts at the constant model's gap over P (its central point has gap <= mu P)
        for col in cols:
            col.mu = max(float(J0_cols[col.j]) + conj(col.theta, col.j), floor) / P
            if primal_init is not None:
                record(col, *evaluate(col, primal_init[0][:, :, col.j], b=primal_init[1][col.j]))
            else:
                record(col, np.zeros((P, op.n_inputs)), float(b0[col.j]), float(J0_cols[col.j]))

        def report(it):
            primal = sum(col.primal for col in cols)
            dual = sum(col.dual for col in cols)
            history.record(it, progress.elapsed(), primal, dual)
            if it > 0:  # one entry per Newton step, like the other solvers
                curve.append(primal)
            progress(it, primal, dual)
            coef, b = self._assemble(cols, P, op.n_inputs, c)
            progress.snapshot(coef, b, self._dual_point(cols, full, n), iteration=it, objective=primal)

        report(0)
        n_iter = 0
        ones = np.ones(pos.size)
        while n_iter < max_iter and not all(col.done or col.stalled for col in cols):
            n_iter += 1
            for col in cols:
                if col.done or col.stalled:
                    continue
                # once the path's own gap bound is below tol, centre tightly before
                # moving on: the primal read off theta is only accurate near the path
                bound = 2.0 * col.mu * P
                centering = self.centering if bound > 0.5 * tol * abs(col.dual) else 1e-8
                late = bound <= self.fit_from * tol * abs(col.dual)
                single = self.single_precision and not late
                self._newton_step(col, op, loss, Y, w, alpha2, block_products, rows, conj, ones,
                                  centering, single)
                if col.products is None:
                    col.products = self._products(col.theta, block_products, alpha2)
                g, s = col.products
                record(col, *read_primal(col, g, s))
                # the active-set fit is cheap next to a Newton step and often certifies
                # well before the barrier's own primal point does
                if late and not col.done:
                    fitted = active_set_primal(col, g, s)
                    if fitted is not None:
                        record(col, *fitted)
            report(n_iter)
        for col in cols:
            if col.coef is not None and col.primal - col.dual <= tol * abs(col.primal):
                sparsest(col)
        final = sum(col.primal for col in cols)  # the record ends at the returned point
        history.primal[-1] = final
        if curve:
            curve[-1] = final
        progress.close()
        coef, b = self._assemble(cols, P, op.n_inputs, c)
        return Solution(coef, b, [self._dual_point(cols, full, n)], n_iter, curve, history)

    # -- pieces ----------------------------------------------------------------------------
    def _newton_step(self, col, op, loss, Y, w, alpha2, block_products, rows, conj, ones, centering,
                     single=False):
        """One Newton step on the barrier problem of ``col`` (in place).

        Away from the central path: a damped Newton step at fixed ``mu`` (Armijo
        backtracking on :math:`\\phi_\\mu`). Near it (Newton decrement of
        :math:`\\phi_\\mu/\\mu` below ``centering``): the same Newton step plus a
        predictor along the path's tangent :math:`d\\theta/d\\mu = -H^{-1}\\nabla b`
        towards ``shrink * mu``, as far as the constraints allow; ``mu`` then drops by
        the fraction of that step taken.
        """
        theta, mu, j = col.theta, col.mu, col.j
        yj = Y[:, [j]]
        g, s = col.products if col.products is not None else self._products(theta, block_products, alpha2)
        Zimg = rows(op.block_images(g))  # (n_pos, P): z_k = A_k g_k
        dL, hL = loss.conjugate_derivatives(theta[:, None], yj, w)
        _, dB, hB = loss.domain_barrier(theta[:, None], yj, w)
        kappa = self.domain_weight
        barrier_grad = Zimg @ (2.0 / s) + kappa * dB[:, 0]
        grad = dL[:, 0] + mu * barrier_grad
        # blocks far from their constraint barely curve phi: leave them out of H (the
        # gradient stays exact, so this only affects the step, never the point)
        weight = 2.0 * mu / s
        keep = weight * (1.0 + 2.0 * (alpha2 - s) / s) >= self.prune * weight.max()
        # restricted to the positive-weight rows (and columns: the matrix is symmetric)
        H = rows(rows(op.weighted_gram(np.where(keep, weight, 0.0), single)).T)
        H += _symmetric_square(Zimg[:, keep] * (2.0 * np.sqrt(mu) / s[keep])[None, :], single)
        H[np.diag_indices_from(H)] += hL[:, 0] + kappa * mu * hB[:, 0]
        factor = None
        if single:
            # float32 Cholesky with one float64 refinement step per solve; a matrix too
            # ill-conditioned for float32 (late in the path) falls back to float64
            try:
                low = cho_factor(H.astype(np.float32), lower=True, check_finite=False)
                if np.all(np.isfinite(low[0].diagonal())):
                    factor = low
            except LinAlgError:
                pass
        ridge = 0.0
        for _ in range(6):
            if factor is not None:
                break
            try:
                factor = cho_factor(H, lower=True, check_finite=False)
            except LinAlgError:
                ridge = max(ridge * 100, 1e-12 * float(np.abs(np.diag(H)).max()))
                H[np.diag_indices_from(H)] += ridge
        if factor is None:
            col.stalled = True
            return

        def raw_solve(r):
            x = cho_solve(factor, r.astype(factor[0].dtype), check_finite=False).astype(float)
            if factor[0].dtype != np.float64:
                x += cho_solve(factor, (r - H @ x).astype(factor[0].dtype), check_finite=False)
            return x

        e = raw_solve(ones)

        def solve(r):  # -H^{-1} r restricted to 1^T step = 0
            a = raw_solve(r)
            return -a + e * (a.sum() / e.sum())

        newton = solve(grad)
        decrement = float(-grad @ newton)
        # the decrement of phi_mu / mu (self-concordant scaling) measures centrality
        # (rounding can keep the tight threshold out of reach: move on after a few tries)
        col.steps_at_mu += 1
        centred = decrement <= centering * mu or col.steps_at_mu > self.max_centering_steps
        step, drop = newton, 0.0
        if centred:
            drop = (1.0 - self.shrink) * mu
            step = newton - drop * solve(barrier_grad)  # theta(mu - drop) to first order

        # largest step keeping every |g_k + t d_k| < alpha (and theta in dom L*)
        d = block_products(step)
        qa = np.einsum("kp,kp->k", d, d)
        qb = np.einsum("kp,kp->k", g, d)
        with np.errstate(divide="ignore", invalid="ignore"):
            roots = np.where(qa > 0, (-qb + np.sqrt(qb * qb + qa * s)) / qa, np.inf)
        t_max = min(float(roots.min(initial=np.inf)), loss.dual_step_limit(theta[:, None], step[:, None], yj, w))
        t = min(1.0, 0.95 * t_max)

        def interior(t):
            # g is linear in theta: g + t d is exact up to rounding of order eps * alpha^2;
            # only a point that close to the boundary is checked on recomputed products
            cand = theta + t * step
            gc = g + t * d
            sc = alpha2 - np.einsum("kp,kp->k", gc, gc)
            if sc.min(initial=np.inf) <= 1e-10 * alpha2:
                gc = block_products(cand)
                sc = alpha2 - np.einsum("kp,kp->k", gc, gc)
            col.products = (gc, sc)
            return bool(sc.min(initial=np.inf) > 0) and bool(np.isfinite(conj(cand, j)))

        if centred:
            while t > 1e-14 and not interior(t):
                t *= 0.5
            if t > 1e-14:
                col.theta = theta + t * step
                col.mu = mu - t * drop
                col.steps_at_mu = 0
            else:
                col.stalled, col.products = True, (g, s)
            return

        def phi(t):
            ss = s - 2 * t * qb - t * t * qa
            if np.any(ss <= 0):
                return np.inf
            cand = (theta + t * step)[:, None]
            dom = loss.domain_barrier(cand, yj, w)[0]
            return conj(cand[:, 0], j) + mu * (kappa * dom - float(np.log(ss).sum()))

        phi0 = phi(0.0)
        slope = float(grad @ step)
        while t > 1e-14:
            value = phi(t)
            if np.isfinite(value) and value <= phi0 + 0.25 * t * slope:
                break
            t *= 0.5
        while t > 1e-14 and not interior(t):
            t *= 0.5
        if t <= 1e-14:
            # no progress possible at this mu: rounding level reached
            col.stalled, col.products = True, (g, s)
            return
        col.theta = theta + t * step  # interior(t) left col.products for it

    @staticmethod
    def _products(theta, block_products, alpha2):
        """``(g, s)``: the blocks' ``g_k = A_k^T theta`` and slacks ``alpha^2 - |g_k|^2``."""
        g = block_products(theta)
        return g, alpha2 - np.einsum("kp,kp->k", g, g)

    @staticmethod
    def _assemble(cols, P, p, c):
        coef = np.zeros((P, p, c))
        b = np.zeros(c)
        for col in cols:
            if col.coef is not None:
                coef[:, :, col.j] = col.coef
            b[col.j] = col.intercept
        return coef, b

    @staticmethod
    def _dual_point(cols, full, n):
        Theta = np.zeros((n, len(cols)))
        for col in cols:
            Theta[:, col.j] = full(col.best_theta if col.best_theta is not None else col.theta)
        return DualPoint(Theta)
