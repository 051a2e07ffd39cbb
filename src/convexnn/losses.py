"""Losses: functions of predictions and targets only.

Every loss is written as a *weighted mean* over samples,

.. math::

    L(Z) = \\sum_i w_i \\, \\ell(z_i, y_i), \\qquad w_i \\ge 0,\\ \\sum_i w_i = 1,

so that with uniform weights ``w_i = 1/n`` it is the mean loss of DESIGN.md §1.
Targets ``Y`` are always a 2-D float array ``(n_samples, n_outputs)``: raw values for
the squared loss, ``{0, 1}`` for the logistic loss (one output), one-hot rows for the
softmax cross-entropy.

Besides value and gradient, each loss provides what a duality-gap certificate needs:
the convex conjugate :math:`L^*(\\Theta) = \\sum_i w_i \\ell^*(\\Theta_i / w_i)` and a
projection of a dual point onto :math:`\\{\\mathbf 1^\\top \\Theta = 0\\} \\cap
\\operatorname{dom} L^*` (the constraint that comes from the free output intercept).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from scipy.special import expit, log_expit, logsumexp, softmax, xlogy

__all__ = ["Loss", "SquaredLoss", "LogisticLoss", "SoftmaxCrossEntropy"]


def _identity(x):
    return x


class Loss(ABC):
    """A convex, smooth loss :math:`\\ell(z, y)` summed with sample weights.

    Subclasses implement the per-sample formulas; weighting and the dual helpers are
    shared. ``smoothness`` is the Lipschitz constant of :math:`\\nabla_z \\ell(z, y)`
    in the Euclidean norm.
    """

    smoothness: float

    @abstractmethod
    def value(self, Z: np.ndarray, Y: np.ndarray, w: np.ndarray) -> float:
        """Weighted loss :math:`\\sum_i w_i \\ell(z_i, y_i)`."""

    @abstractmethod
    def gradient(self, Z: np.ndarray, Y: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Gradient of :meth:`value` with respect to ``Z``, shape ``Z.shape``."""

    def value_and_gradient(
        self, Z: np.ndarray, Y: np.ndarray, w: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """Both :meth:`value` and :meth:`gradient` (subclasses may share work)."""
        return self.value(Z, Y, w), self.gradient(Z, Y, w)

    @abstractmethod
    def conjugate(self, Theta: np.ndarray, Y: np.ndarray, w: np.ndarray) -> float:
        """Convex conjugate :math:`L^*(\\Theta) = \\sup_Z \\langle \\Theta, Z\\rangle - L(Z)`.

        Returns ``inf`` when ``Theta`` lies outside the domain.
        """

    @abstractmethod
    def project_dual(
        self, Theta: np.ndarray, Y: np.ndarray, w: np.ndarray, total=None, largest=None
    ) -> np.ndarray:
        """Map ``Theta`` to a nearby point with zero column sums inside ``dom L*``.

        The free intercept makes :math:`\\mathbf 1^\\top\\Theta = 0` a dual constraint.
        At an optimal intercept the gradient already satisfies it up to rounding; this
        repairs the rounding without leaving the conjugate's domain.

        ``total`` and ``largest`` (identity by default) turn the sums and maxima over
        these rows into sums and maxima over all rows when the samples are split across
        processes (:mod:`convexnn.distributed`).
        """

    #: Whether :meth:`conjugate_derivatives` and :meth:`dual_step_limit` are available:
    #: the conjugate is a sum of one-dimensional functions of the entries of ``Theta``
    #: (what the interior-point dual solver needs).
    separable_conjugate: bool = False

    def conjugate_derivatives(
        self, Theta: np.ndarray, Y: np.ndarray, w: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gradient and (diagonal) Hessian of :meth:`conjugate`, entrywise.

        Only for losses with ``separable_conjugate``; ``w`` must be positive. Returns
        ``(grad, hess)`` of the shape of ``Theta``; ``grad`` is the point ``Z`` with
        :math:`\\nabla L(Z) = \\Theta` (the primal outputs that ``Theta`` is the
        gradient of).
        """
        raise NotImplementedError(f"{type(self).__name__} has no separable conjugate")

    def domain_barrier(
        self, Theta: np.ndarray, Y: np.ndarray, w: np.ndarray
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """A logarithmic barrier of ``dom L*``: value, entrywise gradient and Hessian.

        Only for losses with ``separable_conjugate``. Zero when the domain is the
        whole space (squared loss); ``inf`` outside the domain's interior. An
        interior-point method adds ``mu`` times it to :math:`L^*` so that Newton's
        method stays well-behaved near the domain's boundary.
        """
        raise NotImplementedError(f"{type(self).__name__} has no separable conjugate")

    def dual_step_limit(
        self, Theta: np.ndarray, direction: np.ndarray, Y: np.ndarray, w: np.ndarray
    ) -> float:
        """Largest ``t`` with ``Theta + t * direction`` in ``dom L*`` (``inf`` if unbounded).

        Only for losses with ``separable_conjugate``.
        """
        raise NotImplementedError(f"{type(self).__name__} has no separable conjugate")

    @abstractmethod
    def link(self, Z: np.ndarray) -> np.ndarray:
        """Inverse link: predictions on the scale of the targets (probabilities)."""

    @abstractmethod
    def intercept_init(self, Y: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Optimal intercept of the constant model, shape ``(n_outputs,)``."""


class SquaredLoss(Loss):
    """Squared error :math:`\\ell(z, y) = \\tfrac12 \\lVert z - y\\rVert^2`.

    Conjugate :math:`\\ell^*(u) = \\tfrac12\\lVert u\\rVert^2 + \\langle u, y\\rangle`.
    """

    smoothness = 1.0

    def value(self, Z, Y, w):
        R = Z - Y
        return 0.5 * float(w @ np.einsum("ij,ij->i", R, R))

    def gradient(self, Z, Y, w):
        return w[:, None] * (Z - Y)

    def value_and_gradient(self, Z, Y, w):
        R = Z - Y
        return 0.5 * float(w @ np.einsum("ij,ij->i", R, R)), w[:, None] * R

    def conjugate(self, Theta, Y, w):
        # sum_i w_i (|u_i|^2 / 2 + <u_i, y_i>) with u_i = Theta_i / w_i
        pos = w > 0
        if np.any(Theta[~pos] != 0):
            return np.inf
        T, W = Theta[pos], w[pos][:, None]
        return float(np.sum(T * T / (2 * W) + T * Y[pos]))

    def project_dual(self, Theta, Y, w, total=None, largest=None):
        # Euclidean projection in the metric sum |Theta_i|^2 / w_i; domain is everything.
        total = total or _identity
        return Theta - w[:, None] * total(Theta.sum(axis=0))[None, :]

    separable_conjugate = True

    def conjugate_derivatives(self, Theta, Y, w):
        W = w[:, None]
        return Theta / W + Y, np.broadcast_to(1.0 / W, Theta.shape).copy()

    def domain_barrier(self, Theta, Y, w):
        zero = np.zeros_like(Theta)
        return 0.0, zero, zero

    def dual_step_limit(self, Theta, direction, Y, w):
        return np.inf

    def link(self, Z):
        return Z

    def intercept_init(self, Y, w):
        return w @ Y


class _ExponentialFamilyLoss(Loss):
    """Losses :math:`\\ell(z, y) = A(z) - \\langle y, z\\rangle` with a log-partition A.

    Their conjugate is the negative entropy of ``q = u + y`` (a probability vector),
    and ``dom L*`` is "every row ``q_i`` is a probability vector".
    """

    @abstractmethod
    def _probabilities(self, Q: np.ndarray) -> np.ndarray:
        """Rows ``q_i`` as full probability vectors (adds the implicit class 0 for binary)."""

    def conjugate(self, Theta, Y, w):
        pos = w > 0
        if np.any(Theta[~pos] != 0):
            return np.inf
        Q = Theta[pos] / w[pos][:, None] + Y[pos]
        P = self._probabilities(Q)
        tol = 1e-12
        if np.any(P < -tol) or np.any(np.abs(P.sum(axis=1) - 1) > 1e-9):
            return np.inf
        P = np.clip(P, 0.0, 1.0)
        return float(w[pos] @ xlogy(P, P).sum(axis=1))

    def project_dual(self, Theta, Y, w, total=None, largest=None):
        total, largest = total or _identity, largest or _identity
        pos = w > 0
        Q = np.zeros_like(Theta)
        Q[pos] = Theta[pos] / w[pos][:, None] + Y[pos]
        prior = total(w @ Y)  # weighted class frequencies pi
        # 1) the same shift for every sample makes sum_i w_i q_i = pi exactly
        Q = Q - (total(w @ Q) - prior)[None, :]
        # 2) mix with pi (which satisfies both constraints) just enough to re-enter
        #    the simplex; t is ~1e-15 when Theta came from an optimal intercept
        P = self._probabilities(Q)
        P_prior = self._probabilities(prior[None, :])[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            need = np.where(P < 0, -P / (P_prior[None, :] - P), 0.0)
        t = float(largest(np.max(need[pos], initial=0.0)))
        t = min(1.0, t * (1 + 1e-12) + (1e-16 if t > 0 else 0.0))
        Q = (1 - t) * Q + t * prior[None, :]
        return w[:, None] * (Q - Y) * pos[:, None]


class LogisticLoss(_ExponentialFamilyLoss):
    """Binary logistic loss :math:`\\ell(z, y) = \\log(1 + e^{z}) - y z`, ``y ∈ {0, 1}``.

    Equivalent to :math:`\\log(1 + e^{-s z})` with ``s = 2y - 1``.
    Conjugate: :math:`\\ell^*(u) = q \\log q + (1-q)\\log(1-q)` with ``q = u + y ∈ [0, 1]``.
    """

    smoothness = 0.25

    def value(self, Z, Y, w):
        return float(w @ (-log_expit(-Z) - Y * Z)[:, 0])

    def gradient(self, Z, Y, w):
        return w[:, None] * (expit(Z) - Y)

    def value_and_gradient(self, Z, Y, w):
        return self.value(Z, Y, w), self.gradient(Z, Y, w)

    def _probabilities(self, Q):
        return np.hstack([1 - Q, Q])

    separable_conjugate = True

    def conjugate_derivatives(self, Theta, Y, w):
        # q = theta / w + y in (0, 1); l*(theta) = w (q log q + (1 - q) log(1 - q))
        W = w[:, None]
        Q = Theta / W + Y
        with np.errstate(divide="ignore", invalid="ignore"):
            grad = np.log(Q) - np.log1p(-Q)
            hess = 1.0 / (W * Q * (1.0 - Q))
        return grad, hess

    def domain_barrier(self, Theta, Y, w):
        # -sum_i log q_i + log(1 - q_i); with the entropy it is self-concordant
        W = w[:, None]
        Q = Theta / W + Y
        if np.any(Q <= 0) or np.any(Q >= 1):
            return np.inf, np.full_like(Q, np.nan), np.full_like(Q, np.nan)
        value = -float(np.sum(np.log(Q) + np.log1p(-Q)))
        grad = (1.0 / (1.0 - Q) - 1.0 / Q) / W
        hess = (1.0 / Q**2 + 1.0 / (1.0 - Q) ** 2) / (W * W)
        return value, grad, hess

    def dual_step_limit(self, Theta, direction, Y, w):
        # keep q = theta / w + y inside [0, 1]
        W = w[:, None]
        Q, dQ = Theta / W + Y, direction / W
        with np.errstate(divide="ignore", invalid="ignore"):
            up = np.where(dQ > 0, (1.0 - Q) / dQ, np.inf)
            down = np.where(dQ < 0, -Q / dQ, np.inf)
        return float(min(up.min(initial=np.inf), down.min(initial=np.inf)))

    def link(self, Z):
        return expit(Z)

    def intercept_init(self, Y, w):
        p = float(np.clip(w @ Y[:, 0], 1e-12, 1 - 1e-12))
        return np.array([np.log(p / (1 - p))])


class SoftmaxCrossEntropy(_ExponentialFamilyLoss):
    """Multinomial cross-entropy :math:`\\ell(z, y) = \\log\\sum_j e^{z_j} - \\langle y, z\\rangle`.

    ``y`` is a one-hot row. Conjugate: :math:`\\sum_j q_j \\log q_j` with ``q = u + y``
    in the probability simplex.
    """

    smoothness = 0.5

    def value(self, Z, Y, w):
        return float(w @ (logsumexp(Z, axis=1) - np.einsum("ij,ij->i", Y, Z)))

    def gradient(self, Z, Y, w):
        return w[:, None] * (softmax(Z, axis=1) - Y)

    def _probabilities(self, Q):
        return Q

    def link(self, Z):
        return softmax(Z, axis=1)

    def intercept_init(self, Y, w):
        p = np.clip(w @ Y, 1e-12, None)
        logp = np.log(p)
        return logp - logp.mean()
