"""Exact Euclidean projections onto the ReLU program's polyhedral cones.

Each block ``u`` of the ReLU program must lie in the cone

.. math::

    \\mathcal K_k = \\{u \\in \\mathbb R^{d+1} : E_k X_a u \\ge 0\\},
    \\qquad E_k = \\operatorname{diag}(2\\,\\mathbb 1[X_a g_k > 0] - 1),

one halfspace per sample. Two things need the projection :math:`\\Pi_{\\mathcal K}`:

* the proximal operator of :math:`\\alpha\\lVert u\\rVert + \\iota_{\\mathcal K}(u)` is
  *project, then shrink*: :math:`(1 - \\alpha/\\lVert\\Pi_{\\mathcal K} x\\rVert)_+
  \\Pi_{\\mathcal K} x` (because :math:`\\mathcal K` is a cone, the cross term
  :math:`\\langle u, \\Pi_{\\mathcal K}x - x\\rangle` vanishes along :math:`\\Pi_{\\mathcal K}x`
  and is non-negative elsewhere on :math:`\\mathcal K`), which turns FISTA into an
  exactly feasible ReLU solver;
* the dual norm of the ReLU program is
  :math:`\\max_{u \\in \\mathcal K, \\lVert u\\rVert \\le 1}\\langle c, u\\rangle =
  \\lVert\\Pi_{\\mathcal K}(c)\\rVert` (Moreau), so the exact dual bound of a residual
  needs one projection per block.

The projection solves :math:`\\min \\tfrac12\\lVert x-u\\rVert^2` s.t. :math:`Gx \\ge 0`
through its dual, the non-negative least-squares problem
:math:`\\min_{\\lambda\\ge0}\\lVert u + G^\\top\\lambda\\rVert` (then
:math:`x = u + G^\\top\\lambda`), by Lawson & Hanson's active-set method: with the
active rows :math:`A`, :math:`z = -(G_A G_A^\\top)^{-1}G_A u`; if some :math:`z_i \\le 0`
the multipliers move towards :math:`z` until one reaches zero and its row leaves
:math:`A`, otherwise the most violated row of :math:`Gx \\ge 0` enters. At the
projection at most ``d + 1`` rows are active, so each solve is tiny. All blocks
advance in lock-step (one batched solve and one matrix product per round), and the
active set of every block is remembered, so inside an iterative solver the projection
of a block whose active set did not change costs one round. Blocks that do not
settle within the round budget (degenerate cycling) fall back to the NNLS-based
:func:`_project_on_cone`.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from ._nnls import nnls
from .data import AugmentedData

__all__ = ["ConeProjector"]


class ConeProjector:
    """Batched, warm-started exact projections onto cones ``{u : s_k * (Xa u) >= 0}``.

    Parameters
    ----------
    Xa : ndarray of shape (n_samples, n_features + 1) or AugmentedData
        Augmented data; an :class:`~convexnn.data.AugmentedData` may be streamed from
        a memory map (products run over row chunks either way).
    signs : ndarray of shape (n_samples, n_cones)
        Diagonals of :math:`E_k` (entries ``±1``).
    max_rounds : int, default=200
        Active-set rounds before the remaining blocks fall back to NNLS.

    Attributes
    ----------
    stats : dict
        Counts of projections finished in the first round (``"warm"``), in later
        rounds (``"rounds"``), by the NNLS fallback (``"fallback"``), and rows
        proven shorter than ``zero_below`` early (``"bounded"``).
    """

    def __init__(self, Xa: np.ndarray | AugmentedData, signs: np.ndarray, max_rounds: int = 200):
        self.data = Xa if isinstance(Xa, AugmentedData) else AugmentedData.from_augmented(Xa)
        self.signs = signs
        self.max_rounds = max_rounds
        self._active: dict[Hashable, tuple[int, ...]] = {}
        self._signs_T: np.ndarray | None = None  # int8 (n_cones, n_samples), on first use
        self.stats = {"warm": 0, "rounds": 0, "fallback": 0, "bounded": 0}

    def project(
        self,
        U: np.ndarray,
        cones: np.ndarray,
        keys: Sequence[Hashable] | None = None,
        zero_below: float | np.ndarray = 0.0,
    ) -> np.ndarray:
        """Project row ``i`` of ``U`` onto cone ``cones[i]``.

        Parameters
        ----------
        U : ndarray of shape (m, n_features + 1)
        cones : ndarray of int, shape (m,)
            Column of ``signs`` defining each row's cone.
        keys : sequence of hashables, optional
            Identify the blocks across calls so that their active sets warm-start the
            next projection (``None``: cold start, nothing remembered).
        zero_below : float or ndarray of shape (m,), default=0
            Rows whose projection is provably no longer than this are returned as
            zero without finishing: every intermediate ``x = u + G_A^T lam`` with
            ``lam >= 0`` bounds :math:`\\lVert\\Pi_{\\mathcal K}u\\rVert =
            \\operatorname{dist}(u, \\mathcal K^\\circ) \\le \\lVert x\\rVert`. The
            proximal step shrinks such blocks to zero anyway, and a dual-norm check
            only needs to know they are below the bound.

        Returns
        -------
        X : ndarray of shape (m, n_features + 1)
            The projections, exact up to rounding (``s_k * (Xa x) >= -1e-12 * scale``).
        """
        U = np.asarray(U, dtype=float)
        m, p = U.shape
        X = U.copy()
        if m == 0:
            return X
        cones = np.asarray(cones, dtype=np.intp)
        # Lawson-Hanson NNLS on the projection's dual, min_{lam >= 0} |u + G^T lam|,
        # run for all rows in lock-step, as arrays: row i's active set (the rows of G
        # with lam > 0) is idx[i, :size[i]], in the order they entered, and lam[i] their
        # multipliers, zero-padded (warm sets start at lam = 0, always feasible)
        idx = np.zeros((m, p), dtype=np.intp)
        size = np.zeros(m, dtype=np.intp)
        if keys is not None:
            for i, k in enumerate(keys):
                a = self._active.get(k, ())
                idx[i, : len(a)] = a
                size[i] = len(a)
        lam = np.zeros((m, p))
        norms = np.linalg.norm(U, axis=1)
        zero_below = np.broadcast_to(np.asarray(zero_below, dtype=float), (m,))
        X[norms <= zero_below] = 0.0
        pending = np.nonzero((norms > 0) & (norms > zero_below))[0]
        first = True
        for _ in range(self.max_rounds):
            if pending.size == 0:
                break
            sz = size[pending]
            Xp, z, (rows, gmin, gmax) = self._solve(U[pending], cones[pending], idx[pending], sz)
            zfull = np.zeros((pending.size, p))
            zfull[:, : z.shape[1]] = z
            z = zfull
            # per-row checks, batched: multipliers' signs, bound, most violated row
            zmask = np.arange(p)[None, :] < sz[:, None]
            neg = (z <= 0) & zmask
            lh_ok = ~neg.any(axis=1)
            xnorm = np.linalg.norm(Xp, axis=1)
            feasible = gmin >= -1e-12 * np.maximum(gmax, 1e-300)
            # valid multipliers and x = 0 up to rounding: the active rows span the
            # space, so the projection is exactly the apex 0
            bounded = lh_ok & (xnorm <= np.maximum(zero_below[pending], 1e-10 * norms[pending]))
            done = lh_ok & feasible & ~bounded
            X[pending[done]] = Xp[done]
            X[pending[bounded]] = 0.0  # the projection is shorter still: shrunk to zero
            self.stats["warm" if first else "rounds"] += int(done.sum())
            self.stats["bounded"] += int(bounded.sum())
            first = False
            # invalid multipliers: interpolate towards z until one reaches zero; drop it
            # (from a warm start, lam = 0: drop every row of the wrong sign)
            drop = np.flatnonzero(~lh_ok)
            if drop.size:
                i = pending[drop]
                li, zi, ni, mi = lam[i], z[drop], neg[drop], zmask[drop]
                warm = ~(li != 0.0).any(axis=1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratios = np.where(ni, li / np.maximum(li - zi, 1e-300), np.inf)
                block = np.argmin(ratios, axis=1)
                r = ratios[np.arange(drop.size), block]
                moved = li + np.where(warm, 0.0, r)[:, None] * (zi - li)
                moved[np.arange(drop.size), block] = 0.0
                top = np.maximum(moved.max(axis=1, initial=0.0), 1e-300)
                keep = np.where(warm[:, None], ~ni, moved > 1e-15 * top[:, None]) & mi
                new_lam = np.where(warm[:, None], zi, moved)
                # the kept rows first, in their order: a stable sort on "not kept"
                order = np.argsort(~keep, axis=1, kind="stable")
                idx[i] = np.take_along_axis(idx[i], order, axis=1)
                kept = np.take_along_axis(keep, order, axis=1)
                lam[i] = np.where(kept, np.take_along_axis(new_lam, order, axis=1), 0.0)
                size[i] = keep.sum(axis=1)
            # valid multipliers, infeasible point: the most violated row enters
            add = np.flatnonzero(lh_ok & ~feasible & ~bounded)
            fallback = np.zeros(0, dtype=np.intp)
            if add.size:
                i = pending[add]
                row = rows[add]
                present = ((idx[i] == row[:, None]) & zmask[add]).any(axis=1)
                stuck = present | (size[i] >= p)  # degenerate (dependent rows): NNLS
                fallback = i[stuck]
                i, row, za = i[~stuck], row[~stuck], z[add[~stuck]]
                lam[i] = za  # z is zero beyond each active set
                idx[i, size[i]] = row
                size[i] += 1
            if fallback.size:
                self._fallback(U, X, cones, idx, size, lam, fallback)
            still = np.zeros(m, dtype=bool)
            still[pending[~(done | bounded)]] = True
            still[fallback] = False
            pending = np.flatnonzero(still)
        self._fallback(U, X, cones, idx, size, lam, pending)
        # a projection at rounding level of zero is zero (the cone's apex)
        small = np.linalg.norm(X, axis=1) <= 1e-12 * np.maximum(norms, 1e-300)
        X[small] = 0.0
        if keys is not None:
            for i, k in enumerate(keys):
                if size[i]:
                    self._active[k] = tuple(idx[i, : size[i]].tolist())
                else:
                    self._active.pop(k, None)
        return X

    def project_blocks(self, U: np.ndarray, zero_below: float = 0.0) -> np.ndarray:
        """Project every column of every block of a program's coefficients.

        ``U`` has shape ``(n_blocks, n_features + 1, n_outputs)``; block ``b`` lies in
        cone ``b mod n_cones`` (the ReLU program's ``2P`` blocks on ``P`` patterns).
        Columns no longer than ``zero_below`` are zero without any work, others as in
        :meth:`project`; active sets are remembered per ``(block, column)``.
        """
        out = np.zeros_like(U)
        norms = np.sqrt(np.einsum("bpc,bpc->bc", U, U))
        blocks, cols = np.nonzero(norms > zero_below)
        if blocks.size:
            keys = list(zip(blocks.tolist(), cols.tolist()))
            out[blocks, :, cols] = self.project(
                U[blocks, :, cols], blocks % self.signs.shape[1], keys, zero_below=zero_below
            )
        return out

    def _solve(self, U, cones, idx, sizes):
        """One batched round: least squares on every row's active set (``idx[i, :sizes[i]]``),
        ``x = u + G_A^T z``.

        Returns ``(X, z, (rows, gmin, gmax))``: ``z`` of shape ``(m, max(sizes))``, zero
        beyond each active set; of ``Gx = E_k Xa x`` (one column per projected row) only
        its most violated row, that row's value and ``max |Gx|`` per column, reduced over
        row chunks (the ``n x m`` matrix is never formed).
        """
        m, p = U.shape
        amax = int(sizes.max(initial=0))
        if amax:
            idx = idx[:, :amax]
            valid = np.arange(amax)[None, :] < sizes[:, None]
            GA = self.data.rows(idx) * (self.signs[idx, cones[:, None]] * valid)[:, :, None]
            M = GA @ GA.transpose(0, 2, 1)
            diag = np.arange(amax)
            M[:, diag, diag] += ~valid  # padding rows: identity, multiplier 0
            rhs = np.einsum("map,mp->ma", GA, U)
            try:
                mu = np.linalg.solve(M, rhs[:, :, None])[:, :, 0]
            except np.linalg.LinAlgError:  # dependent active rows: least squares
                mu = np.stack([np.linalg.lstsq(Mi, ri, rcond=None)[0] for Mi, ri in zip(M, rhs)])
            X = U - np.einsum("map,ma->mp", GA, mu)
            z = -mu  # x = u + G_A^T z: z are the multipliers of the active rows
        else:
            X = U.copy()
            z = np.zeros((m, 0))
        rows = np.zeros(m, dtype=np.intp)
        gmin = np.full(m, np.inf)
        gmax = np.zeros(m)
        cols = np.arange(m)
        signs = self._signs_int8()[cones]  # (m, n)
        for s in self.data.chunks(m):
            # one projected row per row of Gx (m x chunk): the reductions run along
            # contiguous memory (an argmin down the columns of the (chunk, m) product
            # took 60 % of the round on pmlb_magic), and the signs are read as int8
            # (a float64 sign matrix per round is 8 times the memory traffic; a masked
            # np.negative(where=) is 4 times slower on the few-row rounds)
            Gx = X @ self.data.rows(s).T
            Gx *= signs[:, s]
            loc = Gx.argmin(axis=1)
            val = Gx[cols, loc]
            # strictly smaller: the first row of the minimum wins, as in one argmin
            better = val < gmin
            rows[better] = loc[better] + s.start
            gmin[better] = val[better]
            np.maximum(gmax, np.maximum(Gx.max(axis=1), -val), out=gmax)  # max |Gx|
            del Gx
        return X, z, (rows, gmin, gmax)

    def _signs_int8(self) -> np.ndarray:
        """The signs as an int8 ``(n_cones, n_samples)`` array (formed once)."""
        if self._signs_T is None:
            self._signs_T = np.ascontiguousarray(np.asarray(self.signs).T, dtype=np.int8)
        return self._signs_T

    @property
    def Xa(self) -> np.ndarray:
        """The augmented data as one in-memory matrix (see :class:`~convexnn.data.AugmentedData`)."""
        return self.data.dense()

    def _cone_matrix(self, cone: int) -> np.ndarray:
        """:math:`E_k X_a`, built chunk by chunk from the data (an ``n x (d + 1)`` array:
        the NNLS fallback needs it whole; streamed data are not kept in RAM after it)."""
        G = np.empty(self.data.shape)
        for s in self.data.chunks(0):
            G[s] = self.signs[s, cone, None] * self.data.rows(s)
        return G

    def _fallback(self, U, X, cones, idx, size, lam, items) -> None:
        """Rows ``items`` by NNLS (:func:`_project_on_cone`); their active sets become the
        rows active at the result (to warm-start the next call)."""
        for i in items:
            G = self._cone_matrix(int(cones[i]))
            X[i] = _project_on_cone(G, U[i])
            gx = G @ X[i]
            scale = max(float(np.abs(gx).max()), 1e-300)
            active = np.nonzero(np.abs(gx) <= 1e-9 * scale)[0][: U.shape[1] - 1]
            idx[i, : active.size] = active
            size[i] = active.size
            lam[i] = 0.0
            self.stats["fallback"] += 1


def _project_on_cone(G: np.ndarray, u: np.ndarray, passes: int = 4) -> np.ndarray:
    """Euclidean projection of ``u`` onto :math:`\\{x : G x \\ge 0\\}`.

    NNLS on the projection's dual finds the active constraints ``A`` (BVLS is accurate
    to ~1e-10 only); the projection is then recomputed exactly as the projection of
    ``u`` onto the null space of ``G_A`` (an SVD), adding any row still violated to
    ``A``. The projection is positively homogeneous, so ``u`` is normalised first. A
    result at rounding level of zero is zero.
    """
    scale = np.linalg.norm(u)
    if scale == 0:
        return u
    u = u / scale
    mu = nnls(G.T, -u)
    # rows that carry a multiplier: the constraints active at the projection (tiny
    # multipliers are BVLS noise, not active constraints)
    active = mu > 1e-9 * max(mu.max(), 1e-300)
    x = u + G.T @ mu
    for _ in range(passes):
        if active.any():
            _, sv, Vt = np.linalg.svd(G[active], full_matrices=False)
            rank = int((sv > sv[0] * max(G.shape) * np.finfo(float).eps).sum())
            Q = Vt[:rank]
            x = u - Q.T @ (Q @ u)
        g = G @ x
        violated = g < -1e-13 * max(np.abs(g).max(), 1e-300)
        if not violated.any():
            break
        active |= violated
    if np.linalg.norm(x) <= 1e-12:
        return np.zeros_like(u)
    return scale * x
