r"""Second-order-cone algebra and small batched linear algebra of the interior-point methods.

Rows ``x = (x_0, \bar x)`` of an ``(m, q)`` array are points of the second-order cone
:math:`\mathcal Q = \{x : x_0 \ge \lVert\bar x\rVert\}`; the Jordan product,
its inverse, the Nesterov-Todd scaling and the step to the boundary act row by row.
Shared by :class:`~convexnn.solvers.ConeBarrier` (epigraph cones of the
cone-constrained programs) and :class:`~convexnn.solvers.GramBarrier` (epigraph cones
of the gated program).
"""

from __future__ import annotations

import numpy as np


def _bmv(A: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Batched matrix-vector products ``A[m] @ x[m]`` (matmul: einsum is 5-10x slower here)."""
    return np.matmul(A, x[:, :, None])[:, :, 0]


def _lower_inverse(L: np.ndarray) -> np.ndarray:
    r"""Inverses of a stack of lower-triangular matrices ``L`` (shape ``(m, q, q)``).

    Block recursion :math:`\begin{bmatrix} L_{11} & 0\\ L_{21} & L_{22}\end{bmatrix}^{-1}
    = \begin{bmatrix} L_{11}^{-1} & 0\\ -L_{22}^{-1} L_{21} L_{11}^{-1} & L_{22}^{-1}
    \end{bmatrix}`, with both diagonal halves inverted in one stacked call when they
    have the same size: about ``2 log2 q`` batched products instead of ``m`` LAPACK
    calls (``np.linalg.inv`` of 1000 blocks of 32 x 32 costs ~20 ms in per-matrix
    overhead; this ~3 ms).
    """
    q = L.shape[-1]
    if q == 1:
        return 1.0 / L
    h = q // 2
    if q - h == h:  # equal halves: one stacked recursion
        m = L.shape[0]
        both = _lower_inverse(np.concatenate([L[:, :h, :h], L[:, h:, h:]], axis=0))
        A, C = both[:m], both[m:]
    else:
        A, C = _lower_inverse(L[:, :h, :h]), _lower_inverse(L[:, h:, h:])
    out = np.empty_like(L)
    out[:, :h, h:] = 0.0
    out[:, :h, :h] = A
    out[:, h:, h:] = C
    out[:, h:, :h] = -np.matmul(C, np.matmul(L[:, h:, :h], A))
    return out


def _soc_det(x: np.ndarray) -> np.ndarray:
    """:math:`x_0^2 - \\lVert\\bar x\\rVert^2` without cancellation (rows ``x = (x_0, \\bar x)``)."""
    nb = np.linalg.norm(x[:, 1:], axis=1)
    return (x[:, 0] - nb) * (x[:, 0] + nb)


def _in_soc(x: np.ndarray) -> np.ndarray:
    """Rows strictly inside the second-order cone."""
    return (x[:, 0] > 0) & (x[:, 0] > np.linalg.norm(x[:, 1:], axis=1))


def _jprod(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Jordan product of the second-order cone, row by row: :math:`(a^\\top b, a_0\\bar b + b_0\\bar a)`."""
    out = a[:, :1] * b + b[:, :1] * a
    out[:, 0] = np.einsum("mq,mq->m", a, b)
    return out


def _jdiv(a: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``v`` with ``a o v = r`` (the arrow matrix of ``a`` inverted in closed form)."""
    det = _soc_det(a)
    v0 = (a[:, 0] * r[:, 0] - np.einsum("mq,mq->m", a[:, 1:], r[:, 1:])) / det
    out = np.empty_like(r)
    out[:, 0] = v0
    out[:, 1:] = (r[:, 1:] - v0[:, None] * a[:, 1:]) / a[:, :1]
    return out


def _jinv(x: np.ndarray) -> np.ndarray:
    """Jordan inverse :math:`J x / (x^\\top J x)` (``x o x^{-1} = e``)."""
    out = -x / _soc_det(x)[:, None]
    out[:, 0] = -out[:, 0]
    return out


def _nt_scaling(x: np.ndarray, z: np.ndarray, square: bool = False):
    """Nesterov-Todd scalings ``W`` (and ``W^{-1}``) with ``W x = W^{-1} z``, row by row.

    With :math:`J = \\operatorname{diag}(1, -I)`, :math:`\\hat x = x/\\sqrt{x^\\top Jx}`,
    :math:`\\hat z = z/\\sqrt{z^\\top Jz}`, :math:`\\gamma = \\sqrt{(1 + \\hat x^\\top\\hat z)/2}`
    and :math:`u = (\\hat z + J\\hat x)/(2\\gamma)` (so :math:`u^\\top J u = 1`), the
    reflection :math:`2uu^\\top - J` maps :math:`\\hat x` to :math:`\\hat z`; ``W`` is
    :math:`\\eta` times its square root, the symmetric Lorentz boost

    .. math::

        B(u) = \\begin{bmatrix} u_0 & \\bar u^\\top \\\\ \\bar u & I + \\bar u\\bar u^\\top/(1 + u_0)
        \\end{bmatrix}, \\qquad \\eta = (z^\\top Jz / x^\\top Jx)^{1/4},

    and :math:`W^{-1} = \\eta^{-1} J B(u) J` (so :math:`W^2 x = z`). With ``square``,
    also :math:`W^2 = \\eta^2 (2uu^\\top - J)` in closed form (``(W, W^{-1}, W^2)``; a
    stacked product ``W @ W`` costs more than the scaling itself).
    """
    dx, dz = _soc_det(x), _soc_det(z)
    xh = x / np.sqrt(dx)[:, None]
    zh = z / np.sqrt(dz)[:, None]
    gamma = np.sqrt(0.5 * (1.0 + np.einsum("mq,mq->m", xh, zh)))
    u = zh + xh * np.r_[1.0, -np.ones(x.shape[1] - 1)]
    u /= (2.0 * gamma)[:, None]
    eta = (dz / dx) ** 0.25
    m, q = x.shape
    Bu = np.empty((m, q, q))
    ub = u[:, 1:]
    Bu[:, 0, 0] = u[:, 0]
    Bu[:, 0, 1:] = ub
    Bu[:, 1:, 0] = ub
    us = ub / np.sqrt(1.0 + u[:, 0])[:, None]
    np.multiply(us[:, :, None], us[:, None, :], out=Bu[:, 1:, 1:])
    _diagonal(Bu)[:, 1:] += 1.0
    W = eta[:, None, None] * Bu
    Winv = Bu
    Winv[:, 0, 1:] *= -1.0
    Winv[:, 1:, 0] *= -1.0
    Winv /= eta[:, None, None]
    if not square:
        return W, Winv
    e2 = eta * eta
    v = u * np.sqrt(2.0 * e2)[:, None]
    W2 = v[:, :, None] * v[:, None, :]  # 2 eta^2 u u^T, then - eta^2 J on the diagonal
    diag = _diagonal(W2)
    diag[:, 0] -= e2
    diag[:, 1:] += e2[:, None]
    return W, Winv, W2


def _diagonal(A: np.ndarray) -> np.ndarray:
    """Writable view of the diagonals of a C-contiguous stack ``A`` (``(m, q, q)``)."""
    m, q, _ = A.shape
    return A.reshape(m, q * q)[:, :: q + 1]


def _soc_step(x: np.ndarray, dx: np.ndarray) -> float:
    """Largest ``a`` with ``x + a dx`` in the second-order cone (rows; ``x`` interior)."""
    s0 = _soc_det(x)
    c1 = x[:, 0] * dx[:, 0] - np.einsum("mq,mq->m", x[:, 1:], dx[:, 1:])
    c2 = dx[:, 0] ** 2 - np.einsum("mq,mq->m", dx[:, 1:], dx[:, 1:])
    disc = c1 * c1 - s0 * c2
    with np.errstate(invalid="ignore", divide="ignore"):
        sq = np.sqrt(np.maximum(disc, 0.0))
        roots = np.concatenate([
            np.where((disc >= 0) & (c2 != 0), (-c1 - sq) / c2, np.inf),
            np.where((disc >= 0) & (c2 != 0), (-c1 + sq) / c2, np.inf),
            np.where((c2 == 0) & (c1 < 0), -s0 / (2.0 * c1), np.inf),
            np.where(dx[:, 0] < 0, -x[:, 0] / dx[:, 0], np.inf),
        ])
    roots = roots[roots > 0]
    return float(roots.min()) if roots.size else np.inf
