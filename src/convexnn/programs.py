"""Convex programs: a loss, a penalty and an operator composed (DESIGN.md §1).

Gated ReLU (unconstrained group lasso)::

    min_{V, b}  L(sum_k D_k Xa V_k + b) + alpha * R(V)

ReLU (cone-constrained group lasso) on blocks ``U = [v_1..v_P, w_1..w_P]``::

    min_{U, b}  L(sum_k D_k Xa (v_k - w_k) + b) + alpha * R(U)
    s.t.        E_k Xa v_k >= 0,  E_k Xa w_k >= 0

``L`` is the weighted mean loss of :mod:`convexnn.losses` and ``b`` the free output
intercept. Solvers see programs only; they never touch the data directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .losses import Loss
from .operators import ConeOperator, GatedOperator
from .penalties import Penalty

__all__ = ["ConvexProgram"]


@dataclass
class ConvexProgram:
    """A gated-ReLU or ReLU convex program.

    Attributes
    ----------
    loss : Loss
    penalty : Penalty
    operator : GatedOperator or ConeOperator
        A :class:`ConeOperator` makes this the cone-constrained ReLU program.
    Y : ndarray of shape (n_samples, n_outputs)
        Encoded targets.
    sample_weight : ndarray of shape (n_samples,)
        Non-negative weights summing to one.
    alpha : float
        Regularisation strength (DESIGN.md's ``alpha``).
    complete : bool
        Whether the operator's patterns are all the patterns of the data.
    """

    loss: Loss
    penalty: Penalty
    operator: GatedOperator | ConeOperator
    Y: np.ndarray
    sample_weight: np.ndarray
    alpha: float
    complete: bool = False

    @property
    def has_cone(self) -> bool:
        """True for the cone-constrained ReLU program."""
        return isinstance(self.operator, ConeOperator)

    @property
    def n_outputs(self) -> int:
        """Number of outputs ``c``."""
        return self.Y.shape[1]

    @property
    def coef_shape(self) -> tuple[int, int, int]:
        """``(n_blocks, n_features + 1, n_outputs)``."""
        return (self.operator.n_blocks, self.operator.n_inputs, self.n_outputs)

    @property
    def gates(self) -> np.ndarray:
        """Gates, shape ``(n_features + 1, n_patterns)``."""
        op = self.operator
        return (op.gated if self.has_cone else op).gates

    def zero_coef(self) -> np.ndarray:
        """All-zero coefficients."""
        return np.zeros(self.coef_shape)

    def constant_intercept(self) -> np.ndarray:
        """Intercept of the optimal constant model (the solution for large ``alpha``)."""
        return self.loss.intercept_init(self.Y, self.sample_weight)

    def predict(self, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
        """Network outputs :math:`\\mathcal A(V) + b`, shape ``(n_samples, n_outputs)``."""
        return self.operator.matvec(coef) + intercept[None, :]

    def data_fit(self, Z: np.ndarray) -> tuple[float, np.ndarray]:
        """Loss value and gradient with respect to the outputs ``Z``."""
        return self.loss.value_and_gradient(Z, self.Y, self.sample_weight)

    def regularizer(self, coef: np.ndarray) -> float:
        """:math:`\\alpha R(V)`."""
        return self.alpha * self.penalty.value(coef)

    def objective(self, coef: np.ndarray, intercept: np.ndarray) -> float:
        """Primal objective (ignores the cone constraints: see :meth:`cone_violation`)."""
        Z = self.predict(coef, intercept)
        return self.loss.value(Z, self.Y, self.sample_weight) + self.regularizer(coef)

    def dual_objective(self, Theta: np.ndarray) -> float:
        """:math:`-L^*(\\Theta)`, a lower bound on the optimum for dual-feasible ``Theta``."""
        return -self.loss.conjugate(Theta, self.Y, self.sample_weight)

    def alpha_max(self) -> float:
        """Smallest ``alpha`` for which the gated program's solution is ``V = 0``.

        The zero solution (with the constant model's intercept) is optimal iff
        :math:`r^\\circ(X_a^\\top D_k \\nabla L(b_0)) \\le \\alpha` for every block. For the
        ReLU program this is an upper bound (its cone makes ``V = 0`` optimal sooner).
        """
        Z = np.broadcast_to(self.constant_intercept(), self.Y.shape)
        _, grad = self.data_fit(np.array(Z))
        op = self.operator.gated if self.has_cone else self.operator
        return float(self.penalty.dual_norms(op.rmatvec(grad)).max())

    # -- the cone ------------------------------------------------------------------
    def cone_violation(self, coef: np.ndarray) -> float:
        """Largest violation :math:`\\max(0, -\\min E_k X_a u)`, relative to ``|X_a u|``.

        Zero for the gated program.
        """
        if not self.has_cone:
            return 0.0
        H = self.operator.preactivations(coef)
        C = H * self.operator.signs()[:, :, None]
        scale = max(float(np.abs(H).max(initial=0.0)), np.finfo(float).tiny)
        return float(max(0.0, -C.min(initial=0.0)) / scale)

    def gated_relaxation(self) -> ConvexProgram:
        """The gated program on the same patterns, with the same per-output groups.

        Since :math:`\\lVert v\\rVert + \\lVert w\\rVert \\ge \\lVert v - w\\rVert`, its
        optimum is a lower bound for the ReLU program's, and its solution is a warm
        start (see :meth:`decompose`).
        """
        if not self.has_cone:
            return self
        return ConvexProgram(
            self.loss, self.penalty, self.operator.gated, self.Y, self.sample_weight,
            self.alpha, self.complete,
        )

    def decompose(self, V: np.ndarray) -> np.ndarray:
        """Split gated blocks ``V_k`` into cone-feasible ``v_k - w_k`` with equal outputs.

        ``w_k = t g_k`` and ``v_k = V_k + t g_k`` with the smallest ``t >= 0`` that puts
        both in the cone (the gate itself is interior: :math:`E_k X_a g_k > 0`).
        """
        P = self.operator.n_patterns
        U = np.concatenate([V, np.zeros_like(V)])
        return self._shift_along_gates(U)

    def _shift_along_gates(self, U: np.ndarray) -> np.ndarray:
        """Add :math:`t g_k` to both ``v_k`` and ``w_k`` (outputs unchanged) with the
        smallest ``t`` restoring feasibility; blocks whose gate touches a data point
        (user-given gates only) cannot be shifted and are zeroed."""
        op = self.operator
        P = op.n_patterns
        C = op.cone_values(U)
        if C.min(initial=0.0) >= 0:
            return U
        g = self.gates
        e = op._signs * (op.gated.Xa @ g)  # (n, P)
        Cv, Cw = C[:, :P], C[:, P:]
        violated = np.minimum(Cv, Cw) < 0
        interior = (e > 0)[:, :, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            need = np.maximum(
                np.where(Cv < 0, -Cv / e[:, :, None], 0.0),
                np.where(Cw < 0, -Cw / e[:, :, None], 0.0),
            )
        t = np.where(violated & interior, need, 0.0).max(axis=0) * (1 + 1e-9)  # (P, c)
        out = U.copy()
        shift = g.T[:, :, None] * t[:, None, :]
        out[:P] += shift
        out[P:] += shift
        stuck = (violated & ~interior).any(axis=0)
        if stuck.any():
            kk, cc = np.nonzero(stuck)
            out[kk, :, cc] = 0.0
            out[P + kk, :, cc] = 0.0
        return out

    def _project_blocks(self, U: np.ndarray) -> np.ndarray:
        """Euclidean projection of every violating block onto its polyhedral cone,
        via the projection's dual, a non-negative least-squares problem
        :math:`\\min_{\\mu\\ge 0}\\lVert (E_k X_a)^\\top\\mu + u\\rVert`, ``u' = u + (E_k X_a)^T mu``."""
        from scipy.optimize import nnls

        op = self.operator
        P = op.n_patterns
        C = op.cone_values(U)
        out = U.copy()
        for j, col in zip(*np.nonzero((C < 0).any(axis=0))):
            G = op._signs[:, j % P, None] * op.gated.Xa  # rows of E_k Xa, (n, p)
            u = U[j, :, col]
            mu, _ = nnls(G.T, -u, maxiter=50 * G.shape[0])
            out[j, :, col] = u + G.T @ mu
        return out

    def make_feasible(
        self, coef: np.ndarray, intercept: np.ndarray, max_projections: int = 50
    ) -> np.ndarray:
        """Return cone-feasible coefficients close to ``coef`` (ReLU program).

        Two repairs are computed and the one with the lower objective is kept:
        shifting ``v_k, w_k`` along their gate (outputs unchanged, penalty grows) and
        projecting each violating block onto its cone (penalty shrinks, outputs move;
        one small NNLS per block, so only tried when at most ``max_projections``
        blocks violate).
        Solvers converge to feasible points, so at convergence both changes vanish;
        the objective of the result is always evaluated exactly, never assumed.
        """
        if not self.has_cone:
            return coef
        if self.operator.cone_values(coef).min(initial=0.0) >= 0:
            return coef
        candidates = [self._shift_along_gates(coef)]
        n_violating = int((self.operator.cone_values(coef) < 0).any(axis=0).sum())
        if n_violating <= max_projections:
            candidates.append(self._project_blocks(coef))
        values = [self.objective(c, intercept) for c in candidates]
        return candidates[int(np.argmin(values))]
