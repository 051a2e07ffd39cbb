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
(:meth:`~convexnn.operators.GatedOperator.block_gram`, ``n P^2 p (p + 1) / 4`` multiply-adds,
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

**Two ways to factor it.** ``space="coefficients"`` adds the blocks to :math:`H` and
factors the ``P p x P p`` matrix. ``space="samples"`` never forms :math:`H`: with
:math:`H = A^\top R R^\top A`, :math:`R = C^\top W^{1/2}` and :math:`B` the block
diagonal above, Woodbury's identity gives
:math:`(B + H)^{-1} = B^{-1} - B^{-1} A^\top R\, N^{-1} R^\top A B^{-1}` with the
``n x n`` matrix :math:`N = I + R^\top A B^{-1} A^\top R`, which two ``n x P x n``
products form (:meth:`GramBarrier._sample_system`). That is the cheaper one where
``n`` is well below ``P p`` (more coefficients than samples: breast_cancer or digits
with 500 patterns), and it is what lets wide programs (``P p`` beyond
``max_variables``) take these steps at all. ``space="auto"`` picks the cheaper of the
two by their flop counts (:meth:`GramBarrier.space_for`).

**Precision.** :math:`H` is float32, so it only shapes the steps: the gradient
:math:`Hu - b = A^\top C^\top W C (A u - y)` in the KKT residuals and every certificate
come from the exact float64 products of the operator (two per step), and once the gap
is within ``100 * tol`` each solve is refined once with those exact products. The
iterates therefore converge to the optimum of the true program, not of its rounded Gram
matrix. The sample-space matrix :math:`N` is float64 and every one of its solves is
refined (up to three times): late in the path :math:`B^{-1}` has entries of order
:math:`1/\mu` that Woodbury's subtraction cancels, and in float32 the solves lost all
their digits (measured: relative errors 0.3-0.6, steps that stall at gaps of 1e-3).

**Certificates.** Every iterate ``u`` is a network; its objective is exact. The dual
point is the loss gradient :math:`\theta = W C (A u - y)` scaled onto the dual feasible
set, :math:`\max_k \lVert X_a^\top D_k \theta\rVert \le \alpha` (the gradient the step
computes anyway), so the gap costs nothing extra. The solver stops on the certified
gap, never on an iteration count alone. Interior iterates keep every block nonzero (at
norms of order :math:`\mu`); the returned network drops the blocks below a threshold
for which the certified gap still holds (:func:`~convexnn.solvers.base.prune_blocks`).

Scope: the gated program with the squared loss, one group per block and output
(:class:`~convexnn.penalties.ColumnGroupL2`), data in memory or streamed (the sample
space copies its at most ``max_samples`` rows into RAM), on the numpy operator or a
device operator (whose host arrays form the matrices), with at most ``max_variables`` coefficients ``P p`` per output (the dense
matrix has ``(P p)^2`` entries: 8000 coefficients are 256 MB in float32 and a ~3 s
factorisation) or at most ``max_samples`` samples (the ``n x n`` float64 matrix: 5000
samples are 200 MB). Several outputs share the data and are separate problems, solved
in lock-step.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve

from ..certificates import DualPoint
from ..losses import SquaredLoss
from ..operators import _symmetric_square
from ..programs import ConvexProgram
from ._soc import _bmv, _in_soc, _jdiv, _jprod, _nt_scaling, _soc_step
from .base import (
    History,
    ProgressPrinter,
    Solution,
    Solver,
    group_per_block_and_output,
    prune_blocks,
    woodbury_matrix,
    woodbury_middle,
)

__all__ = ["GramBarrier"]


class GramBarrier(Solver):
    """Primal-dual interior-point method for the gated program on its Gram matrix.

    For the gated program with the squared loss: its Newton systems are factored in
    coefficient space (``P (d + 1)`` unknowns per output; where ``n_samples`` is much
    larger) or, by Woodbury's identity, in sample space (``n_samples`` unknowns; where
    there are more coefficients than samples). See the module docstring.

    Parameters
    ----------
    max_variables : int, default=8000
        Largest ``P (d + 1)`` accepted in coefficient space: each step factors a dense
        matrix of that order (``max_variables**2`` float32 entries are kept, plus one
        float32 copy per step).
    step_fraction : float, default=0.99
        Fraction of the step to the boundary of the cones that is taken.
    space : {"auto", "coefficients", "samples"}, default="auto"
        Where the Newton systems are factored (:meth:`space_for`): ``"auto"`` takes the
        cheaper step of the spaces within ``max_variables`` and ``max_samples`` (sample
        space where there are clearly more coefficients than samples).
    max_samples : int, default=5000
        Largest ``n_samples`` accepted in sample space: each step forms and factors an
        ``n x n`` float64 matrix (about ``2 n^2 P`` multiply-adds and ``n^3 / 3``).

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

    def __init__(self, max_variables: int = 8000, step_fraction: float = 0.99, space: str = "auto",
                 max_samples: int = 5000):
        self.max_variables = max_variables
        self.step_fraction = step_fraction
        self.space = space
        self.max_samples = max_samples

    # -- what it handles -------------------------------------------------------------
    def space_for(self, program: ConvexProgram) -> str:
        r"""``"coefficients"`` or ``"samples"``: where the Newton systems are factored.

        ``"auto"`` takes the cheaper step among the spaces within ``max_variables`` and
        ``max_samples``. Per step, in float32 multiply-adds: coefficient space factors
        the ``m x m`` float32 matrix, :math:`m^3/3` (plus its Gram matrix, :math:`n
        m^2/2` once, spread over a typical 8 steps); sample space forms the ``n x n``
        float64 matrix with two ``n x P x n`` products and factors it, :math:`2 n^2 P +
        n^3/3` float64 ones, counted 2.5 times (twice for float64, the rest for the
        refinements' products; fitted to the measurements). Measured at the estimator
        defaults (``benchmarks/results/solver_choice.md``, P = 200, tol 1e-3): uci_pol
        (m = 5400) samples 1.2 / 3.0 / 6.7 s vs coefficients 5.7 / 6.3 / 6.1 s at n =
        2000 / 3000 / 4000; uci_protein (m = 2000) 0.19 vs 0.39 s at n = 1000, 0.98
        vs 0.45 s at n = 2000 -- the side this model picks in each case.
        """
        if self.space != "auto":
            return self.space
        op = program.operator
        m, n, P = op.n_patterns * op.n_inputs, op.n_samples, op.n_patterns
        if n > self.max_samples or not hasattr(op, "weighted_gram"):
            return "coefficients"
        if m > self.max_variables or not hasattr(op, "block_gram"):
            return "samples"
        samples_cost = 2.5 * (2.0 * n * n * P + n**3 / 3.0)
        coefficients_cost = m**3 / 3.0 + n * m * m / 16.0
        return "samples" if samples_cost < coefficients_cost else "coefficients"

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
        m = op.n_patterns * op.n_inputs
        if self.space_for(program) == "samples":
            if not hasattr(op, "weighted_gram"):
                return f"the {type(op).__name__} has no weighted_gram (use the numpy operator, device=None)"
            if op.n_samples > self.max_samples:
                return (
                    f"{op.n_samples} samples exceed max_samples={self.max_samples} (each step factors "
                    "an n_samples x n_samples matrix)"
                )
            return None
        if not hasattr(op, "block_gram"):
            return f"the {type(op).__name__} has no Gram matrix (use the numpy operator, device=None)"
        if m > self.max_variables:
            samples = (f" and {op.n_samples} samples exceed max_samples={self.max_samples}"
                       if self.space == "auto" else "")
            return (
                f"{op.n_patterns} patterns x {op.n_inputs} inputs = {m} coefficients per output "
                f"exceed max_variables={self.max_variables}{samples} (each step factors a dense "
                "matrix of that order)"
            )
        return None

    def check(self, program: ConvexProgram) -> None:
        if self.space not in ("auto", "coefficients", "samples"):
            raise ValueError(f"space must be 'auto', 'coefficients' or 'samples', got {self.space!r}.")
        if not 0.0 < self.step_fraction < 1.0:
            raise ValueError(f"step_fraction must be in (0, 1), got {self.step_fraction!r}.")
        super().check(program)

    # -- the solve ---------------------------------------------------------------------
    def solve(self, program, *, tol, max_iter, init=None, verbose=0):
        self.check(program)
        with program.exact_products():
            return self._solve(program, tol=tol, max_iter=max_iter, init=init, verbose=verbose)

    def _solve(self, program, *, tol, max_iter, init, verbose):
        op, alpha = program.operator, float(program.alpha)
        P, p, c = op.n_patterns, op.n_inputs, program.n_outputs
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
        system = None
        space = self.space_for(program)
        refinements = 3 if space == "samples" else 1
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
            if system is None:
                # after the first report: at tens of thousands of rows the Gram matrix
                # takes seconds to form
                system = (self._coefficient_system(op, w) if space == "coefficients"
                          else self._sample_system(op, w))
            it += 1
            for j in np.flatnonzero(~done):
                # Woodbury's subtraction loses digits as the barrier sharpens, so the
                # sample-space solves are always refined (each pass: four cheap operator
                # products); the coefficient-space ones once, near the end
                refine = (space == "samples"
                          or best_primal[j] - best_dual[j] <= 100.0 * tol * abs(best_primal[j]))
                moved = self._step(X[j], Z[j], grad[:, :, j], system, alpha,
                                   exact_hessian if refine else None, refinements)
                if not moved and not refine:  # the float32 matrix alone did not move it
                    moved = self._step(X[j], Z[j], grad[:, :, j], system, alpha, exact_hessian)
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
    def _step(self, x, z, grad, system, alpha, exact_hessian, refinements=1) -> bool:
        r"""One Mehrotra predictor-corrector step on the blocks ``x = (t, u)`` and their
        multipliers ``z`` (both ``(P, p + 1)``, updated in place); ``False`` if it could
        not move. ``grad`` is the exact :math:`Hu - b` at ``u``; ``system(blocks, Winv)``
        factors :math:`H + \operatorname{blkdiag}(blocks)` (:meth:`_coefficient_system`,
        :meth:`_sample_system`) and returns its solve, or ``None``; ``exact_hessian``, if
        given, refines each solve with exact products (at most ``refinements`` times)."""
        r_u = grad - z[:, 1:]  # stationarity in u: H u - b - zbar
        r_t = alpha - z[:, 0]  # stationarity in t: alpha - z0
        W, Winv, D = _nt_scaling(x, z, square=True)  # D = W^2
        lt = _bmv(W, x)  # scaled point W x = W^{-1} z
        Dtt = D[:, 0, 0]
        Dut = D[:, 1:, 0]
        blocks = D[:, 1:, 1:] - Dut[:, :, None] * Dut[:, None, :] / Dtt[:, None, None]
        solve = system(blocks, Winv)
        if solve is None:
            return False
        if exact_hessian is not None:
            plain = solve

            def solve(rhs):  # iterative refinement with exact (float64) products
                du = plain(rhs)
                for _ in range(refinements):
                    resid = rhs - exact_hessian(du) - _bmv(blocks, du)
                    if np.linalg.norm(resid) <= 1e-12 * np.linalg.norm(rhs):
                        break
                    du = du + plain(resid)
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
        mu = comp / x.shape[0]  # one cone of degree 1 per block
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

    # -- the Newton systems ---------------------------------------------------------------
    @staticmethod
    def _coefficient_system(op, w):
        r"""Factor :math:`H + \operatorname{blkdiag}(B_k)` in coefficient space.

        :math:`H = A^\top C^\top W C A` is formed once in float32
        (:meth:`~convexnn.operators.GatedOperator.block_gram`); every call adds the blocks
        to a copy and factors the ``P p x P p`` matrix (float32 Cholesky).
        """
        P, p = op.n_patterns, op.n_inputs
        H = op.block_gram(w, single=True)
        s = op.rmatvec(w[:, None]).reshape(P * p).astype(np.float32)
        H -= np.outer(s, s)  # H = A^T W A - s s^T: the centred (intercept-free) Gram
        del s
        k = np.arange(P)
        # one matrix for every step's copy of H: a fresh (P p)^2 array is mapped and
        # faulted in at every step (0.2-0.3 s at P p = 5500 on the machines we measure on)
        N = np.empty_like(H)

        def system(blocks, Winv):
            np.copyto(N, H)
            N.reshape(P, p, P, p)[k, :, k, :] += blocks.astype(N.dtype)
            try:
                # N is symmetric: its transpose (Fortran-ordered, the same matrix) is
                # factored in place, where a C-ordered array would be copied first
                factor = cho_factor(N.T, lower=False, overwrite_a=True, check_finite=False)
            except LinAlgError:
                return None

            def solve(rhs):
                du = cho_solve(factor, rhs.reshape(-1).astype(np.float32), check_finite=False)
                return du.astype(float).reshape(P, p)

            return solve

        return system

    @staticmethod
    def _sample_system(op, w):
        r"""Factor :math:`H + \operatorname{blkdiag}(B_k)` through an ``n x n`` matrix.

        Where ``P p`` exceeds ``n``, Woodbury's identity with :math:`H = A^\top R R^\top A`,
        :math:`R = C^\top W^{1/2}`, gives

        .. math::

            (B + H)^{-1} = B^{-1} - B^{-1} A^\top R\, N^{-1} R^\top A B^{-1},
            \qquad N = I + R^\top K R,\quad K = A B^{-1} A^\top .

        :math:`B_k^{-1}` is the ``u`` block of :math:`W_k^{-2}` (the inverse of a Schur
        complement is a block of the inverse), which for the second-order cone is
        :math:`a_k I + b_k q_k q_k^\top` with :math:`q_k` along the ``u`` part of
        :math:`W_k^{-1} e_0`. Hence :math:`K = (X_a X_a^\top) \circ (M \operatorname{diag}(a)
        M^\top) + Q Q^\top`, :math:`Q_{:k} = \sqrt{b_k} D_k X_a q_k`
        (:meth:`~convexnn.operators.GatedOperator.weighted_gram`): two ``n x P x n``
        float64 products and an ``n x n`` Cholesky per step, never ``P p``-sized ones.
        Each solve costs two operator products (float64).
        """
        p = op.n_inputs

        def system(blocks, Winv):
            F = np.matmul(Winv, Winv)[:, 1:, 1:]  # B_k^{-1}
            q = Winv[:, 1:, 0].copy()
            norm = np.linalg.norm(q, axis=1)
            q[norm > 0] /= norm[norm > 0, None]
            q[norm == 0, 0] = 1.0  # then b_k = 0 and any unit vector will do
            qFq = np.einsum("kp,kpr,kr->k", q, F, q)
            a = np.maximum((np.trace(F, axis1=1, axis2=2) - qFq) / max(p - 1, 1), 0.0)
            b = np.maximum(qFq - a, 0.0)
            # float64 throughout: late in the path B^{-1}'s entries reach 1 / mu and the
            # subtraction in Woodbury's identity cancels them; in float32 the solves lose
            # all digits (measured: relative error 0.3-0.6 against a dense float64 solve,
            # steps that stall, gaps stuck at 1e-3), in float64 the iterates match the
            # coefficient-space path's
            K = op.weighted_gram(a)
            K += _symmetric_square(op.block_images(np.sqrt(b)[:, None] * q))
            try:
                factor = cho_factor(woodbury_matrix(K, w), lower=True, overwrite_a=True, check_finite=False)
            except LinAlgError:
                return None

            def inverse_blocks(r):
                return a[:, None] * r + b[:, None] * np.einsum("kp,kp->k", q, r)[:, None] * q

            def solve(rhs):
                y = inverse_blocks(rhs)
                t = woodbury_middle(factor, op.matvec(y[:, :, None])[:, 0], w)
                return y - inverse_blocks(op.rmatvec(t[:, None])[:, :, 0])

            return solve

        return system

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def _intercept(op, V, Y, w) -> np.ndarray:
        """The optimal intercept of the squared loss at coefficients ``V``."""
        return w @ (Y - op.matvec(V))
