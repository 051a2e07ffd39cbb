"""Convex programs: a loss, a penalty and an operator composed (DESIGN.md §1).

Gated ReLU (unconstrained group lasso)::

    min_{V, b}  L(sum_k D_k Xa V_k + b) + alpha * R(V)

ReLU (cone-constrained group lasso) on blocks ``U = [v_1..v_P, w_1..w_P]``::

    min_{U, b}  L(sum_k S_k Xa (v_k - w_k) + b) + alpha * R(U)
    s.t.        E_k Xa v_k >= 0,  E_k Xa w_k >= 0

with ``S_k = D_k``; leaky ReLU and the absolute value are the same program with the
activation's diagonal ``S_k`` (``D_k + s (I - D_k)``, ``E_k``; see
:func:`convexnn.operators.activation_diagonal`).

``L`` is the weighted mean loss of :mod:`convexnn.losses` and ``b`` the free output
intercept. Solvers see programs only; they never touch the data directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .losses import Loss
from .operators import ConeOperator, GatedOperator
from .cones import ConeProjector
from .penalties import Penalty

__all__ = ["ConvexProgram"]


@dataclass
class ConvexProgram:
    """A gated-ReLU or cone-constrained (ReLU, leaky ReLU, absolute value) convex program.

    Attributes
    ----------
    loss : Loss
    penalty : Penalty
    operator : GatedOperator or ConeOperator
        A :class:`ConeOperator` makes this the cone-constrained program of its
        activation (ReLU, leaky ReLU or absolute value).
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
        """True for the cone-constrained programs (ReLU, leaky ReLU, absolute value)."""
        return isinstance(self.operator, ConeOperator)

    def exact_products(self):
        """Context in which the operator's products run in float64 (certificates enter
        it; a no-op unless the operator works in float32 on a device)."""
        return self.operator.exact_products()

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

    def adjoint(self, Theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Adjoint of :math:`(V, b) \\mapsto \\mathcal A(V) + \\mathbf 1 b^\\top`:
        :math:`(\\mathcal A^*(\\Theta), \\Theta^\\top \\mathbf 1)`, the second being the
        column sums over samples, shape ``(n_outputs,)`` (a hook:
        :mod:`convexnn.distributed` sums both over all ranks in one reduction)."""
        return self.operator.rmatvec(Theta), Theta.sum(axis=0)

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
        """Smallest ``alpha`` for which ``V = 0`` (with the constant model's intercept)
        is optimal: the start of a regularization path.

        Let :math:`b_0` be the optimal constant intercept and :math:`\\Theta = \\nabla
        L(b_0)` (so :math:`\\mathbf 1^\\top\\Theta = 0`). The smooth part's gradient at
        ``(0, b_0)`` is :math:`(X_a^\\top S_k\\Theta)_k` (:math:`S_k = D_k` for gated ReLU
        and ReLU; the activation's diagonal for leaky ReLU and the absolute value), so
        the first-order conditions of the convex program give, exactly:

        * gated program: :math:`\\alpha_{max} = \\max_k r^\\circ(X_a^\\top D_k\\Theta)`;
        * cone-constrained program (one group per block and output column ``j``):
          ``V = 0`` is optimal iff for every pattern ``k``, sign ``s = ±1`` and column ``j``

          .. math::

              \\max_{u \\in K_k,\\, \\lVert u\\rVert \\le 1}
              \\langle s X_a^\\top S_k \\Theta_{:,j}, u\\rangle
              = \\lVert \\Pi_{K_k}(s X_a^\\top S_k \\Theta_{:,j}) \\rVert \\le \\alpha,
              \\qquad K_k = \\{u : E_k X_a u \\ge 0\\},

          (Moreau's decomposition), so :math:`\\alpha_{max}` is the largest of these
          projection norms. It is at most :math:`\\max_k \\lVert X_a^\\top S_k
          \\Theta_{:,j}\\rVert` (projections shrink norms), which is used to skip
          projections that cannot change the maximum.

        Returns
        -------
        alpha_max : float
            ``0.0`` when the constant model fits the data exactly.
        """
        Z = np.broadcast_to(self.constant_intercept(), self.Y.shape)
        _, grad = self.data_fit(np.array(Z))
        with self.exact_products():
            if not self.has_cone:
                G = self.operator.rmatvec(grad)  # (P, n_features + 1, n_outputs)
                return float(self.penalty.dual_norms(G).max(initial=0.0))
            # the activation's S_k, not the masks D_k
            return _cone_alpha_max(self.operator, self.operator.pattern_rmatvec(grad))

    # -- the cone ------------------------------------------------------------------
    def cone_violation(self, coef: np.ndarray) -> float:
        """Largest violation :math:`\\max(0, -\\min E_k X_a u)`, relative to ``|X_a u|``.

        Zero for the gated program.
        """
        if not self.has_cone:
            return 0.0
        cmin, hmax = self.operator.cone_extremes(coef)  # row chunks, no n x 2P arrays
        scale = max(float(hmax.max(initial=0.0)), np.finfo(float).tiny)
        return float(max(0.0, -cmin.min(initial=0.0)) / scale)

    def make_feasible(self, coef: np.ndarray) -> np.ndarray:
        """Project every block that violates its cone onto it (cone-constrained programs).

        The projection of ``u`` onto the polyhedral cone
        :math:`\\{u : E_k X_a u \\ge 0\\}` is :math:`u + (E_k X_a)^\\top \\mu` where
        :math:`\\mu \\ge 0` solves the non-negative least-squares problem
        :math:`\\min_{\\mu\\ge 0} \\lVert (E_k X_a)^\\top\\mu + u\\rVert` (the projection's
        dual). Projection never increases the
        penalty. Solvers converge to feasible points, so near the optimum only small
        corrections happen; the objective of the result is always evaluated, never
        assumed. Blocks feasible up to rounding (1e-12 of their scale) are untouched.
        """
        if not self.has_cone:
            return coef
        op = self.operator
        cmin, hmax = op.cone_extremes(coef)  # row chunks, no n x 2P arrays
        # violations at rounding level (relative to the block's own scale) are left
        tiny = 1e-12 * hmax
        out = coef.copy()
        blocks, cols = np.nonzero(cmin < -tiny)
        if blocks.size:
            out[blocks, :, cols] = self.cone_projector().project(
                coef[blocks, :, cols], blocks % op.n_patterns
            )
        return out

    def cone_projector(self) -> ConeProjector:
        """A fresh :class:`~convexnn.cones.ConeProjector` for this program's cones
        (cone-constrained programs only); it remembers active sets between calls."""
        if not self.has_cone:
            raise ValueError("the gated-ReLU program has no cone constraints to project on.")
        return ConeProjector(self.operator.gated.data, self.operator.gated_signs)


def _cone_alpha_max(operator: ConeOperator, G: np.ndarray, batch: int = 64) -> float:
    """:math:`\\max_{k,s,j} \\lVert \\Pi_{K_k}(s\\, G_{k,:,j}) \\rVert` (see
    :meth:`ConvexProgram.alpha_max`), exactly, with few complete projections.

    ``G[k, :, j]`` is :math:`X_a^\\top S_k \\Theta_{:,j}`. Candidates ``(k, s, j)`` are
    projected in batches in decreasing order of the cheap bound
    :math:`\\lVert\\Pi_{K_k}(g)\\rVert \\le \\lVert g\\rVert`, by the exact
    :class:`~convexnn.cones.ConeProjector` with ``zero_below`` set to the best exact
    value so far: a candidate proven no longer than that stops early (it cannot be the
    maximum), and once the cheap bound falls below it the search ends.
    """
    P, _, c = G.shape
    C = np.concatenate([G, -G])  # the two signs: blocks k and P + k
    bound = np.sqrt(np.einsum("bpc,bpc->bc", C, C))
    blocks, cols = np.unravel_index(np.argsort(-bound, axis=None, kind="stable"), bound.shape)
    projector = ConeProjector(operator.gated.data, operator.gated_signs)
    best = 0.0
    for start in range(0, blocks.size, batch):
        b, j = blocks[start:start + batch], cols[start:start + batch]
        keep = bound[b, j] > best
        if not keep.any():
            break  # sorted: no later candidate can beat ``best`` either
        b, j = b[keep], j[keep]
        proj = projector.project(C[b, :, j], b % P, zero_below=best)
        best = max(best, float(np.linalg.norm(proj, axis=1).max()))
    return best
