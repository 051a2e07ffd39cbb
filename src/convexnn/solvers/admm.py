"""ADMM for the cone-constrained programs (ReLU, leaky ReLU, absolute value).

The program (DESIGN.md §1) on blocks ``U = [v_1..v_P, w_1..w_P]``,

.. math::

    \\min_{U, b}\\; L(\\mathcal F U + \\mathbf 1 b^\\top) + \\alpha \\sum_{j,c} \\lVert U_{j,:,c}\\rVert
    \\quad\\text{s.t.}\\quad \\mathcal G U \\ge 0,

with :math:`\\mathcal F U = \\sum_k S_k X_a (v_k - w_k)` (the program's operator) and
:math:`(\\mathcal G U)_j = E_k X_a u_j` (the cones), is split as in Mishkin, Sahiner &
Pilanci (2022) and CRONOS (Feng, Frangella & Pilanci 2024):

.. math::

    \\min\\; \\tilde L(z) + \\alpha R(w) + \\iota_{\\ge 0}(s)
    \\quad\\text{s.t.}\\quad z = \\mathcal F u,\\; w = u,\\; s = \\mathcal G u,

where :math:`\\tilde L(z) = \\min_b L(z + \\mathbf 1 b^\\top)` absorbs the free intercept.
Scaled ADMM with one penalty per constraint (:math:`\\rho_z, \\rho_w, \\rho_s`) and
over-relaxation alternates

* the **u-update**, a linear system with the matrix

  .. math::

      H = \\rho_z \\mathcal F^\\top \\mathcal F + \\rho_w I + \\rho_s \\mathcal G^\\top \\mathcal G,
      \\qquad \\mathcal G^\\top \\mathcal G = \\operatorname{blockdiag}(X_a^\\top X_a, \\dots)

  (:math:`E_k^2 = I`: every block of the cone term is the same ``(d+1) x (d+1)`` Gram
  matrix, so :math:`A_0 = \\rho_w I + \\rho_s X_a^\\top X_a` is inverted exactly, for every
  :math:`\\rho`, from one eigendecomposition of :math:`X_a^\\top X_a`);
* the **splits**: :math:`z` by the closed-form prox of :math:`\\tilde L` (squared loss),
  :math:`w` by the group-lasso prox (exact zeros: the sparse network), :math:`s` by
  clipping at zero;
* the scaled dual updates.

The u-system is solved either **directly** (moderate ``n_samples``): by Woodbury,
:math:`H^{-1} = A_0^{-1} - A_0^{-1}\\mathcal F^\\top (I/\\rho_z + K)^{-1} \\mathcal F A_0^{-1}`
with the ``n x n`` matrix :math:`K = \\mathcal F A_0^{-1} \\mathcal F^\\top =
2 (X_a A_0^{-1} X_a^\\top) \\circ (S S^\\top)` (``S`` the ``n x P`` diagonals of the
:math:`S_k`), factored once per change of :math:`\\rho`; or by **preconditioned CG**,
warm-started from the previous ``u``, with the preconditioner

.. math::

    M = A_0 + \\rho_z \\hat U \\hat\\Lambda \\hat U^\\top,

the exact block term plus a randomized Nyström approximation
:math:`\\hat U\\hat\\Lambda\\hat U^\\top \\approx \\mathcal F^\\top\\mathcal F` (Frangella,
Tropp & Udell 2023) whose rank doubles until :math:`\\rho_z \\hat\\lambda_r \\le \\kappa
\\lambda_{min}(A_0)` (or ``max_rank``); :math:`M^{-1}` is applied by Woodbury with an
``r x r`` core. The CG tolerance follows the ADMM residuals (inexact early, exact late).

**Penalties** :math:`\\rho` adapt by residual balancing (each constraint's normalised
primal residual against its dual residual, as in OSQP). **Stopping** is on the
certified duality gap, never on an iteration count alone: at every check the split
``w`` (already sparse) is projected exactly onto the cones
(:meth:`~convexnn.cones.ConeProjector.project_blocks`), given its optimal intercept, and
its objective is compared with the dual bound of the loss gradient there
(:func:`~convexnn.certificates.dual_value` with exact cone dual norms); the returned
network is the best checked one, so it is exactly feasible and its gap is the
certificate's. Checks cost cone projections, so their spacing adapts to keep them
below about a third of the run time.

Scope: the cone-constrained programs with the squared loss (any number of outputs,
any sample weights) and one group per block and output. Other losses are refused
(use ``solver='fista'``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from ..certificates import DualPoint, dual_point_from_outputs, dual_value
from ..losses import SquaredLoss
from ..operators import _symmetric_square
from ..programs import ConvexProgram
from .base import History, ProgressPrinter, Solution, Solver, group_per_block_and_output

__all__ = ["ADMM", "ADMMHistory"]


@dataclass
class ADMMHistory(History):
    """:class:`~convexnn.solvers.base.History` plus the ADMM residuals at each gap check.

    ``primal_residual`` and ``dual_residual`` are the largest normalised residuals of the
    three constraints (``z = F u``, ``w = u``, ``s = G u``); ``rho`` the penalties
    ``(rho_z, rho_w, rho_s)`` and ``rank`` the Nyström rank (0 for the direct solve).
    """

    primal_residual: list[float] = field(default_factory=list)
    dual_residual: list[float] = field(default_factory=list)
    rho: list[tuple[float, float, float]] = field(default_factory=list)
    rank: list[int] = field(default_factory=list)
    cg_iterations: list[int] = field(default_factory=list)


class _BlockTerm:
    """:math:`A_0 = \\rho_w I + \\rho_s X_a^\\top X_a` on every block, exactly, for any ``rho``."""

    def __init__(self, Xa: np.ndarray):
        self.Xa = Xa
        self.evals, self.Q = np.linalg.eigh(Xa.T @ Xa)
        self.evals = np.maximum(self.evals, 0.0)
        self.XaQ = Xa @ self.Q

    def set(self, rho_w: float, rho_s: float) -> None:
        self.rho_w, self.rho_s = rho_w, rho_s
        self.diag = rho_w + rho_s * self.evals
        self.inv = (self.Q / self.diag) @ self.Q.T
        self.mat = (self.Q * self.diag) @ self.Q.T

    @property
    def smallest(self) -> float:
        """:math:`\\lambda_{min}(A_0)`."""
        return float(self.diag.min())

    def apply(self, U: np.ndarray) -> np.ndarray:
        """:math:`A_0 U` blockwise (``U`` of shape ``(B, p, m)``)."""
        return np.einsum("ij,bjm->bim", self.mat, U)

    def solve(self, U: np.ndarray) -> np.ndarray:
        """:math:`A_0^{-1} U` blockwise."""
        return np.einsum("ij,bjm->bim", self.inv, U)


class _DirectSolve:
    """Exact u-solve by Woodbury through the ``n x n`` matrix :math:`I/\\rho_z + K`."""

    rank = 0

    def __init__(self, op, block: _BlockTerm):
        self.op, self.block = op, block
        S = op.diagonals()  # (n, P): S_k of the activation
        self.SS = _symmetric_square(S)  # S S^T, fixed
        self.iterations = 0

    def set(self, rho_z: float) -> None:
        b = self.block
        # X_a A_0^{-1} X_a^T = (X_a Q) diag(1 / diag) (X_a Q)^T
        K = 2.0 * ((b.XaQ / b.diag) @ b.XaQ.T) * self.SS
        K[np.diag_indices_from(K)] += 1.0 / rho_z
        self.factor = cho_factor(K, lower=True, check_finite=False)

    def solve(self, rhs: np.ndarray, u0: np.ndarray, rtol: float) -> np.ndarray:
        t = self.block.solve(rhs)
        q = cho_solve(self.factor, self.op.matvec(t), check_finite=False)
        return t - self.block.solve(self.op.rmatvec(q))


class _NystromPCG:
    """Warm-started preconditioned CG for :math:`H u = r` with the preconditioner
    :math:`M = A_0 + \\rho_z \\hat U\\hat\\Lambda\\hat U^\\top` (exact block term plus a
    randomized Nyström approximation of :math:`\\mathcal F^\\top\\mathcal F` of adaptive rank)."""

    def __init__(self, op, block: _BlockTerm, *, rank: int, max_rank: int, kappa: float,
                 max_iter: int, random_state):
        self.op, self.block = op, block
        self.shape = (op.n_blocks, op.n_inputs)
        self.dim = int(np.prod(self.shape))
        self.rank = min(rank, self.dim)
        # F^T F has rank <= n_samples per output column
        self.max_rank = min(max_rank, self.dim, op.n_samples)
        self.rank = min(self.rank, self.max_rank)
        self.kappa, self.max_iter = kappa, max_iter
        self.rng = np.random.default_rng(random_state)
        self.U = None
        self.iterations = 0

    def gram(self, V: np.ndarray) -> np.ndarray:
        """:math:`\\mathcal F^\\top\\mathcal F V` (``V`` of shape ``(B, p, m)``)."""
        return self.op.rmatvec(self.op.matvec(V))

    def _sketch(self) -> None:
        """Randomized Nyström approximation of rank ``self.rank`` (stable, shifted)."""
        r = self.rank
        Omega = self.rng.standard_normal((self.dim, r))
        Omega /= np.linalg.norm(Omega, axis=0)
        Y = self.gram(Omega.reshape(*self.shape, r)).reshape(self.dim, r)
        nu = np.sqrt(self.dim) * np.finfo(float).eps * np.linalg.norm(Y)
        Y += nu * Omega
        C = Omega.T @ Y
        # B = Y C^{-1/2} (a pseudo-inverse square root: F^T F has rank <= n_samples, so C
        # can be singular beyond the shift)
        e, Q = np.linalg.eigh(0.5 * (C + C.T))
        ok = e > 1e-12 * e.max(initial=0.0)
        Bm = Y @ (Q[:, ok] / np.sqrt(e[ok]))
        evals, V = np.linalg.eigh(Bm.T @ Bm)  # singular values squared, ascending
        keep = evals > max(nu, 1e-14 * evals.max(initial=0.0))
        sig = np.sqrt(evals[keep])
        self.U = (Bm @ V[:, keep]) / sig
        self.lam = np.maximum(sig * sig - nu, 0.0)

    def set(self, rho_z: float) -> None:
        self.rho_z = rho_z
        while True:
            if self.U is None:
                self._sketch()
            # the smallest kept eigenvalue bounds the neglected tail (0: nothing is neglected)
            small = float(self.lam.min(initial=0.0)) if self.lam.size >= self.rank else 0.0
            if rho_z * small <= self.kappa * self.block.smallest or self.rank >= self.max_rank:
                break
            self.rank = min(2 * self.rank, self.max_rank)
            self.U = None
        pos = self.lam > 0
        self.Uk = self.U[:, pos]
        AU = self.block.solve(self.Uk.reshape(*self.shape, -1)).reshape(self.dim, -1)
        self.AU = AU
        core = np.diag(1.0 / (rho_z * self.lam[pos])) + self.Uk.T @ AU
        self.core = cho_factor(0.5 * (core + core.T), lower=True, check_finite=False)

    def precondition(self, R: np.ndarray) -> np.ndarray:
        """:math:`M^{-1} R` by Woodbury (``R`` of shape ``(B, p, c)``)."""
        c = R.shape[-1]
        T = self.block.solve(R)
        if self.Uk.shape[1] == 0:
            return T
        Tf = T.reshape(self.dim, c)
        Tf = Tf - self.AU @ cho_solve(self.core, self.Uk.T @ Tf, check_finite=False)
        return Tf.reshape(T.shape)

    def solve(self, rhs: np.ndarray, u0: np.ndarray, rtol: float) -> np.ndarray:
        def H(V):
            return self.rho_z * self.gram(V) + self.block.apply(V)

        x = u0.copy()
        r = rhs - H(x)
        target = rtol * float(np.linalg.norm(rhs))
        if float(np.linalg.norm(r)) <= target:
            return x
        z = self.precondition(r)
        p = z.copy()
        rz = float(np.vdot(r, z))
        for _ in range(self.max_iter):
            Hp = H(p)
            step = rz / float(np.vdot(p, Hp))
            x += step * p
            r -= step * Hp
            self.iterations += 1
            if float(np.linalg.norm(r)) <= target:
                break
            z = self.precondition(r)
            rz_new = float(np.vdot(r, z))
            p = z + (rz_new / rz) * p
            rz = rz_new
        return x


class ADMM(Solver):
    """ADMM on the cone-constrained program, u-system by a direct solve or Nyström PCG.

    Solves

    .. math::

        \\min_{U, b}\\; L(\\mathcal F U + \\mathbf 1 b^\\top) + \\alpha\\sum_{j,c}\\lVert U_{j,:,c}\\rVert
        \\quad\\text{s.t.}\\quad E_k X_a u_j \\ge 0

    by the splitting of the module docstring, stopping when the relative duality gap of
    an exactly feasible, sparse point is at most ``tol``.

    Parameters
    ----------
    linear_solver : {"auto", "direct", "pcg"}, default="auto"
        How the u-system is solved: ``"direct"`` factors an ``n_samples x n_samples``
        matrix once per change of ``rho``; ``"pcg"`` runs preconditioned CG (memory and
        time linear in ``n_samples``). ``"auto"``: direct up to ``direct_max_samples``.
    direct_max_samples : int, default=3000
        Largest ``n_samples`` for which ``"auto"`` solves directly.
    relaxation : float, default=1.6
        Over-relaxation factor in ``(0, 2)``.
    rho : tuple of three floats, optional
        Initial ``(rho_z, rho_w, rho_s)``; by default ``rho_z = rho_s`` is the mean
        sample weight and ``rho_w`` that times the mean eigenvalue of
        :math:`\\mathcal F^\\top\\mathcal F`.
    adapt_rho : bool, default=True
        Residual balancing: a penalty whose constraint's normalised primal and dual
        residuals differ by more than ``adapt_ratio`` is multiplied by the square root
        of their ratio (and its scaled dual divided by it).
    adapt_ratio : float, default=5.0
    check_every : int, default=10
        Iterations between residual evaluations (and ``rho`` updates); gap checks
        happen at these iterations, spaced further apart while they would take more
        than a third of the run time.
    rank : int, default=20
        Initial Nyström rank (PCG only); doubled until the preconditioned system is
        well conditioned (see module docstring).
    max_rank : int, default=400
    kappa : float, default=10.0
        Target bound on :math:`\\rho_z\\hat\\lambda_r / \\lambda_{min}(A_0)`.
    cg_max_iter : int, default=100
        CG iterations per u-update at most.
    random_state : int, default=0
        Seed of the Nyström sketch.

    Notes
    -----
    ``max_iter`` counts ADMM iterations. ``init=(coef, intercept)`` starts the splits at
    ``coef`` (projected onto the cones) and the duals at the loss gradient there; a start
    that is already certified returns at once.
    """

    name = "admm"
    handles_gated = False
    handles_cone = True

    def __init__(
        self,
        linear_solver: str = "auto",
        *,
        direct_max_samples: int = 3000,
        relaxation: float = 1.6,
        rho: tuple[float, float, float] | None = None,
        adapt_rho: bool = True,
        adapt_ratio: float = 5.0,
        check_every: int = 10,
        rank: int = 20,
        max_rank: int = 400,
        kappa: float = 10.0,
        cg_max_iter: int = 100,
        random_state: int = 0,
    ):
        self.linear_solver = linear_solver
        self.direct_max_samples = direct_max_samples
        self.relaxation = relaxation
        self.rho = rho
        self.adapt_rho = adapt_rho
        self.adapt_ratio = adapt_ratio
        self.check_every = check_every
        self.rank = rank
        self.max_rank = max_rank
        self.kappa = kappa
        self.cg_max_iter = cg_max_iter
        self.random_state = random_state

    # -- what it handles -------------------------------------------------------------
    def supports(self, program: ConvexProgram) -> str | None:
        """``None`` if this solver handles ``program``, else the reason it does not."""
        if not program.has_cone:
            return "it solves the cone-constrained programs (ReLU, leaky ReLU, abs) only"
        if not isinstance(program.loss, SquaredLoss):
            return (
                f"the {type(program.loss).__name__} has no closed-form prox here (ADMM "
                "handles the squared loss)"
            )
        return group_per_block_and_output(program)

    def check(self, program: ConvexProgram) -> None:
        super().check(program)
        if self.linear_solver not in ("auto", "direct", "pcg"):
            raise ValueError(
                f"linear_solver must be 'auto', 'direct' or 'pcg', got {self.linear_solver!r}."
            )
        if not 0.0 < self.relaxation < 2.0:
            raise ValueError(f"relaxation must be in (0, 2), got {self.relaxation!r}.")
        if self.rho is not None and (len(self.rho) != 3 or min(self.rho) <= 0):
            raise ValueError(f"rho must be three positive numbers, got {self.rho!r}.")

    # -- the solve ---------------------------------------------------------------------
    def solve(self, program, *, tol, max_iter, init=None, verbose=0):
        self.check(program)
        op, alpha = program.operator, float(program.alpha)
        Xa = op.gated.Xa
        wts, Y = program.sample_weight, program.Y
        n, c = Y.shape
        P = op.n_patterns

        # -- penalties and the linear system -----------------------------------------
        block = _BlockTerm(Xa)
        if self.rho is not None:
            rho_z, rho_w, rho_s = (float(r) for r in self.rho)
        else:
            rho_z = rho_s = float(wts.mean())
            # mean eigenvalue of F^T F: trace / dimension, trace = 2 sum_k |S_k Xa|_F^2
            S2 = op.diagonals() ** 2
            trace = 2.0 * float(np.einsum("np,n->", S2, np.einsum("np,np->n", Xa, Xa)))
            rho_w = rho_z * max(trace / (op.n_blocks * op.n_inputs), 1e-12)
        direct = self.linear_solver == "direct" or (
            self.linear_solver == "auto" and n <= self.direct_max_samples
        )
        system = _DirectSolve(op, block) if direct else _NystromPCG(
            op, block, rank=self.rank, max_rank=self.max_rank, kappa=self.kappa,
            max_iter=self.cg_max_iter, random_state=self.random_state,
        )

        def set_rho():
            block.set(rho_w, rho_s)
            system.set(rho_z)

        set_rho()

        # -- the pieces of one iteration -----------------------------------------------
        # the diagonals of S_k and E_k, formed once (the splits s, y_s are n x 2P x c anyway)
        Sd = op.diagonals()[:, :, None]
        Ed = (2.0 * op.masks - 1.0)[:, :, None]

        def images(U):
            """``(F U, G U)`` from one product ``X_a U``."""
            H = op.preactivations(U)  # (n, 2P, c)
            FU = np.einsum("npc,npc->nc", H[:, :P] - H[:, P:], np.broadcast_to(Sd, H[:, :P].shape))
            H[:, :P] *= Ed
            H[:, P:] *= Ed
            return FU, H

        def adjoint(Theta, Q):
            """:math:`\\mathcal F^\\top\\Theta + \\mathcal G^\\top Q` in one product."""
            T = np.empty(Q.shape)
            ST = Sd * Theta[:, None, :]
            np.multiply(Ed, Q[:, :P], out=T[:, :P])
            np.multiply(Ed, Q[:, P:], out=T[:, P:])
            T[:, :P] += ST
            T[:, P:] -= ST
            G = Xa.T @ T.reshape(n, -1)
            return G.reshape(Xa.shape[1], -1, c).transpose(1, 0, 2)

        def prox_z(A):
            """Prox of :math:`\\tilde L/\\rho_z` (intercept eliminated), and that intercept."""
            cw = wts / (wts + rho_z)
            b = cw @ (Y - A) / cw.sum()
            Z = (wts[:, None] * (Y - b[None, :]) + rho_z * A) / (wts + rho_z)[:, None]
            return Z, b

        def best_intercept(FU):
            return wts @ (Y - FU)  # squared loss, weights summing to one

        # -- starting point ------------------------------------------------------------
        projector = program.cone_projector()  # exact projections at the checks (warm)
        # exact dual norms, one warm projector per dual candidate
        dual_projectors = (program.cone_projector(), program.cone_projector())
        if init is not None:
            U = projector.project_blocks(np.asarray(init[0], dtype=float))
        else:
            U = program.zero_coef()
        FU, GU = images(U)
        Zs = FU.copy()
        W = U.copy()
        Sl = np.maximum(GU, 0.0)
        b0 = best_intercept(FU)
        _, grad = program.data_fit(FU + b0[None, :])
        Theta = program.loss.project_dual(grad, Y, wts)
        yz = Theta / rho_z
        yw = -op.rmatvec(Theta) / rho_w
        ys = np.zeros_like(Sl)

        # -- checks ----------------------------------------------------------------------
        history = ADMMHistory()
        curve: list[float] = []
        progress = ProgressPrinter(verbose, self.name, max_iter=max_iter, tol=tol)
        best = {"primal": np.inf, "coef": None, "b": None, "dual": -np.inf, "point": None}
        timing = {"check": 0.0, "iterations": 0.0, "next": 0}
        residuals = {"primal": np.inf, "dual": np.inf}

        def gap_check(it) -> bool:
            t0 = progress.elapsed()
            coef = projector.project_blocks(W) if W.any() else W.copy()
            Fc = op.matvec(coef)
            b = best_intercept(Fc)
            Z = Fc + b[None, :]
            primal = program.loss.value(Z, Y, wts) + program.regularizer(coef)
            # two dual candidates: the loss gradient at the checked point, and ADMM's own
            # multiplier of z = F u (its limit is dual optimal too)
            candidates = (dual_point_from_outputs(program, Z), DualPoint(rho_z * yz))
            for point, dual_projector in zip(candidates, dual_projectors):
                d = dual_value(program, point, refine=True, projector=dual_projector)
                if d > best["dual"]:
                    best["dual"], best["point"] = d, point
            if primal < best["primal"]:
                best["primal"], best["coef"], best["b"] = primal, coef, b
            curve.append(primal)
            history.record(it, progress.elapsed(), best["primal"], best["dual"])
            history.primal_residual.append(residuals["primal"])
            history.dual_residual.append(residuals["dual"])
            history.rho.append((rho_z, rho_w, rho_s))
            history.rank.append(int(system.rank))
            history.cg_iterations.append(int(system.iterations))
            progress(it, best["primal"], best["dual"])
            progress.snapshot(best["coef"], best["b"], best["point"], iteration=it,
                              objective=best["primal"])
            timing["check"] = progress.elapsed() - t0
            return best["primal"] - best["dual"] <= tol * abs(best["primal"])

        def norm(x) -> float:
            return float(np.linalg.norm(x))

        tiny = np.finfo(float).tiny
        relax = self.relaxation
        n_iter = 0
        done = gap_check(0)
        last_check_time = progress.elapsed()
        iter_start = progress.elapsed()
        while not done and n_iter < max_iter:
            n_iter += 1
            measure = n_iter % self.check_every == 0 or n_iter == max_iter
            # u-update
            rhs = adjoint(rho_z * (Zs - yz), rho_s * (Sl - ys)) + rho_w * (W - yw)
            rtol = min(1e-3, max(1e-13, 1e-2 * min(residuals["primal"], residuals["dual"])))
            U = system.solve(rhs, U, rtol)
            FU, GU = images(U)
            # relaxed images, then the splits
            hz = relax * FU + (1 - relax) * Zs
            hw = relax * U + (1 - relax) * W
            hs = relax * GU + (1 - relax) * Sl
            if measure:
                old = (Zs, W, Sl)
            Zs, _ = prox_z(hz + yz)
            W = program.penalty.prox(hw + yw, alpha / rho_w)
            Sl = np.maximum(hs + ys, 0.0)
            yz += hz - Zs
            yw += hw - W
            ys += hs - Sl
            if not measure:
                continue
            # normalised residuals of the three constraints (OSQP-style)
            dz, dw, ds = Zs - old[0], W - old[1], Sl - old[2]
            r = [norm(FU - Zs) / max(norm(FU), norm(Zs), tiny),
                 norm(U - W) / max(norm(U), norm(W), tiny),
                 norm(GU - Sl) / max(norm(GU), norm(Sl), tiny)]
            zero_theta = np.zeros((n, c))
            s_ = [norm(op.rmatvec(dz)) / max(norm(op.rmatvec(yz)), tiny),
                  norm(dw) / max(norm(yw), tiny),
                  norm(adjoint(zero_theta, ds)) / max(norm(adjoint(zero_theta, ys)), tiny)]
            residuals["primal"], residuals["dual"] = max(r), max(s_)
            if self.adapt_rho:
                factors = [np.sqrt(max(ri, tiny) / max(si, tiny)) for ri, si in zip(r, s_)]
                factors = [f if (f > np.sqrt(self.adapt_ratio) or f < 1 / np.sqrt(self.adapt_ratio)) else 1.0
                           for f in factors]
                factors = [float(np.clip(f, 1e-3, 1e3)) for f in factors]
                if any(f != 1.0 for f in factors):
                    rho_z, rho_w, rho_s = rho_z * factors[0], rho_w * factors[1], rho_s * factors[2]
                    yz /= factors[0]
                    yw /= factors[1]
                    ys /= factors[2]
                    set_rho()
            # gap checks spaced so that they take about a third of the time at most
            now = progress.elapsed()
            timing["iterations"] = now - iter_start
            if n_iter >= timing["next"] or n_iter == max_iter:
                done = gap_check(n_iter)
                per_iter = max(now - last_check_time, 1e-9) / max(n_iter - history.iteration[-2], 1)
                spacing = max(self.check_every, int(2 * timing["check"] / per_iter))
                timing["next"] = n_iter + spacing - spacing % self.check_every
                last_check_time = progress.elapsed()
        if history.iteration[-1] != n_iter:
            gap_check(n_iter)
        progress.close()
        points: list[DualPoint] = [best["point"]] if best["point"] is not None else []
        return Solution(best["coef"].copy(), best["b"].copy(), points, n_iter, curve, history)
