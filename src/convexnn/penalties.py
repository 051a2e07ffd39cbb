"""Penalties: functions of coefficient blocks only.

A coefficient array has shape ``(n_blocks, n_inputs, n_outputs)``: block ``k`` holds
the weights :math:`V_k` attached to one activation pattern (``n_inputs`` is
``n_features + 1``, the last row multiplying the constant column of ``Xa``).
A penalty :math:`R(V) = \\sum_k r(V_k)` is a sum of norms over blocks; the program
multiplies it by ``alpha``.

Each penalty also knows how a block factors into neurons ``u a^T`` whose weight-decay
cost :math:`\\tfrac12(\\lVert u\\rVert^2 + \\lVert a\\rVert^2)` sums to :math:`r(V_k)`
(the identity behind the exactness of the convex reformulation).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

__all__ = ["Penalty", "ColumnGroupL2", "NuclearNorm"]


class Penalty(ABC):
    """A block-separable norm penalty."""

    @abstractmethod
    def value(self, V: np.ndarray) -> float:
        """:math:`\\sum_k r(V_k)`."""

    @abstractmethod
    def prox(self, V: np.ndarray, threshold: float) -> np.ndarray:
        """Proximal operator of ``threshold * R`` evaluated at ``V``."""

    @abstractmethod
    def dual_norms(self, G: np.ndarray) -> np.ndarray:
        """Dual norm :math:`r^\\circ(G_k)` of every block, shape ``(n_blocks,)``.

        The dual of ``alpha * R`` is feasible iff every entry is ``<= alpha``.
        """

    @abstractmethod
    def neurons(self, V: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Factor the blocks into balanced rank-one neurons.

        Returns ``(U, A, block)``: ``U`` is ``(n_inputs, n_neurons)``, ``A`` is
        ``(n_neurons, n_outputs)`` and ``block[j]`` the block neuron ``j`` came from, with
        :math:`\\sum_{j: block_j = k} u_j a_j^T = V_k` and
        :math:`\\tfrac12\\sum_j (\\lVert u_j\\rVert^2 + \\lVert a_j\\rVert^2) = R(V)`.
        """


class ColumnGroupL2(Penalty):
    """Group lasso with one group per block *and output*:
    :math:`r(V_k) = \\sum_j \\lVert V_{k,:,j} \\rVert_2`.

    With one output this is the plain group lasso of DESIGN.md. With several outputs
    each neuron feeds exactly one output (the exact tractable choice for ReLU).
    """

    def value(self, V):
        return float(np.sqrt(np.einsum("kij,kij->kj", V, V)).sum())

    def prox(self, V, threshold):
        norms = np.sqrt(np.einsum("kij,kij->kj", V, V))
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(norms > threshold, 1 - threshold / norms, 0.0)
        return V * scale[:, None, :]

    def dual_norms(self, G):
        return np.sqrt(np.einsum("kij,kij->kj", G, G)).max(axis=1)

    def neurons(self, V):
        norms = np.sqrt(np.einsum("kij,kij->kj", V, V))  # (n_blocks, n_outputs)
        k_idx, j_idx = np.nonzero(norms > 0)
        r = np.sqrt(norms[k_idx, j_idx])
        U = V[k_idx, :, j_idx].T / r[None, :]
        A = np.zeros((len(k_idx), V.shape[2]))
        A[np.arange(len(k_idx)), j_idx] = r
        return U, A, k_idx


class NuclearNorm(Penalty):
    """Nuclear norm per block: :math:`r(V_k) = \\lVert V_k \\rVert_*`.

    Exact for gated networks with vector outputs: a neuron ``u a^T`` costs
    :math:`\\tfrac12(\\lVert u\\rVert^2+\\lVert a\\rVert^2) \\ge \\lVert u a^T\\rVert_*`, so
    the cheapest set of neurons that sums to ``V_k`` is its balanced SVD.
    With one output it equals :class:`ColumnGroupL2`.
    """

    def value(self, V):
        return float(np.linalg.svd(V, compute_uv=False).sum())

    def prox(self, V, threshold):
        U, s, Vt = np.linalg.svd(V, full_matrices=False)
        s = np.maximum(s - threshold, 0.0)
        return np.einsum("kir,kr,krj->kij", U, s, Vt)

    def dual_norms(self, G):
        return np.linalg.svd(G, compute_uv=False)[:, 0]

    def neurons(self, V):
        U, s, Vt = np.linalg.svd(V, full_matrices=False)  # (k,i,r), (k,r), (k,r,j)
        # singular values below rounding level of the block are numerical zeros
        tol = s[:, :1] * max(V.shape[1:]) * np.finfo(V.dtype).eps
        k_idx, r_idx = np.nonzero((s > tol) & (s > 0))
        root = np.sqrt(s[k_idx, r_idx])
        Uo = U[k_idx, :, r_idx].T * root[None, :]
        Ao = Vt[k_idx, r_idx, :] * root[:, None]
        return Uo, Ao, k_idx
