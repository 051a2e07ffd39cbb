"""Operators: the only code that multiplies by data.

:class:`GatedOperator` is the linear map of the gated-ReLU program,

.. math::

    \\mathcal A(V) = \\sum_{k=1}^{P} D_k X_a V_k, \\qquad
    \\mathcal A^*(\\Theta)_k = X_a^\\top D_k \\Theta,

with ``V`` of shape ``(P, d + 1, c)`` and ``Theta`` of shape ``(n, c)``.
:class:`ConeOperator` is the map of the cone-constrained programs (ReLU, leaky ReLU,
absolute value) on ``2P`` blocks ``[v_1..v_P, w_1..w_P]``:
:math:`\\sum_k S_k X_a (v_k - w_k)`, plus the cone constraints
:math:`E_k X_a u \\ge 0` with :math:`E_k = 2D_k - I`. On the cone of pattern ``k`` a
piecewise-linear activation acts linearly, :math:`\\sigma(X_a u) = S_k X_a u`, with the
activation's diagonal :math:`S_k = a D_k + b I` (:func:`activation_diagonal`):
:math:`S_k = D_k` for ReLU, :math:`D_k + s (I - D_k)` for leaky ReLU with negative slope
``s``, and :math:`E_k` for the absolute value (Ergen & Pilanci, "Training two-layer
networks with piecewise linear activations as finite-dimensional convex programs").

Rows are processed in chunks so that no array larger than
``chunk_rows x P x c`` is formed; an ``n x P x d`` array never is. The masks are the
only per-pattern data stored: one boolean ``n x P`` array (``n P`` bytes), computed
chunk by chunk; the products use it directly (float64 arithmetic, exact 0/1 factors)
and signs :math:`E_k` or diagonals :math:`S_k` are formed per chunk of rows.

The data enter only through :class:`~convexnn.data.AugmentedData`: a memory-mapped
``X`` (``np.load(path, mmap_mode="r")``) is streamed chunk by chunk and never copied
into RAM, so data larger than memory can be fitted.
"""

from __future__ import annotations

import contextlib

import numpy as np

from .data import AugmentedData
from .patterns import _row_chunks, masks_from_gates

__all__ = ["CONE_ACTIVATIONS", "GatedOperator", "ConeOperator", "DictionaryOperator",
           "activation_diagonal"]

# elements per temporary (chunk_rows * n_blocks * n_outputs); ~32 MB in float64
_CHUNK_ELEMENTS = 4_000_000

#: patterns per band of GatedOperator.block_gram's products (one matrix product per band
#: and row chunk; larger bands cost more redundant entries within the band)
BLOCK_GRAM_BAND = 8

#: Activations of the cone-constrained programs (:class:`ConeOperator`).
CONE_ACTIVATIONS = ("relu", "leaky_relu", "abs")


def activation_diagonal(activation: str, negative_slope: float = 0.01) -> tuple[float, float]:
    """``(a, b)`` with :math:`\\sigma(X_a u) = (a D_k + b I) X_a u` on the cone of pattern ``k``.

    On :math:`\\mathcal K_k = \\{u : E_k X_a u \\ge 0\\}` the signs of :math:`X_a u` are
    those of the pattern (non-negative where :math:`D_k = 1`, non-positive elsewhere), so
    a piecewise-linear activation is a fixed diagonal :math:`S_k = a D_k + b I` there:

    * ``"relu"``: :math:`S_k = D_k`, ``(1, 0)``;
    * ``"leaky_relu"``: :math:`S_k = D_k + s (I - D_k)`, ``(1 - s, s)`` with
      ``s = negative_slope`` in ``[0, 1)``;
    * ``"abs"``: :math:`S_k = E_k = 2 D_k - I`, ``(2, -1)``.

    Raises
    ------
    ValueError
        For another activation, or a negative slope outside ``[0, 1)``.
    """
    if activation == "relu":
        return 1.0, 0.0
    if activation == "leaky_relu":
        s = float(negative_slope)
        if not 0.0 <= s < 1.0:
            raise ValueError(f"negative_slope must be in [0, 1), got {negative_slope!r}.")
        return 1.0 - s, s
    if activation == "abs":
        return 2.0, -1.0
    raise ValueError(
        f"unknown activation {activation!r} for the cone-constrained program; choose one of "
        f"{', '.join(CONE_ACTIVATIONS)}."
    )


def _power_norm_squared(matvec, rmatvec, shape, w: np.ndarray, n_iter: int, random_state) -> float:
    """Power-iteration estimate of :math:`\\lambda_{max}(\\mathcal A^* W \\mathcal A)`
    (inflated by 2 %: power iteration approaches the top eigenvalue from below)."""
    rng = np.random.default_rng(random_state)
    V = rng.standard_normal(shape)
    lam = 0.0
    for _ in range(n_iter):
        V /= np.linalg.norm(V)
        V = rmatvec(w[:, None] * matvec(V))
        lam = float(np.linalg.norm(V))
    return 1.02 * lam


def _symmetric_square(B: np.ndarray, single: bool = False) -> np.ndarray:
    """:math:`B B^\\top` by BLAS ``syrk`` (half the flops of a general product).

    ``single`` computes it in float32 (twice as fast; returned as float64).
    """
    from scipy.linalg.blas import dsyrk, ssyrk

    if B.shape[1] == 0:
        return np.zeros((B.shape[0], B.shape[0]))
    syrk = dsyrk
    if single:
        B, syrk = B.astype(np.float32), ssyrk
    # B.T is Fortran-ordered when B is C-ordered: no copy; the result's lower triangle is 0
    upper = syrk(1.0, B.T, trans=1) if B.flags.c_contiguous else syrk(1.0, B)
    out = (upper + upper.T).astype(float, copy=False)
    out[np.diag_indices_from(out)] *= 0.5
    return out


class GatedOperator:
    """:math:`V \\mapsto \\sum_k D_k X_a V_k` and its adjoint.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features) or AugmentedData
        Data (not augmented). A float64 C-contiguous memory map is streamed in row
        chunks, never copied into RAM (see :mod:`convexnn.data`).
    gates : ndarray of shape (n_features + 1, n_patterns)
        Gates defining the masks :math:`D_k`.
    """

    def __init__(self, X: np.ndarray | AugmentedData, gates: np.ndarray):
        #: :math:`X_a`, in RAM or streamed: every product with data goes through it
        self.data = X if isinstance(X, AugmentedData) else AugmentedData(X)
        self.gates = np.asarray(gates, dtype=float)
        #: boolean masks :math:`D_k`, shape ``(n_samples, n_patterns)``: the only copy
        self.masks = masks_from_gates(self.data.X, self.gates)

    @property
    def Xa(self) -> np.ndarray:
        """The whole :math:`X_a` as one in-memory matrix (see
        :meth:`~convexnn.data.AugmentedData.dense`: streamed data are copied into RAM
        on first access; the iterative products never ask for it)."""
        return self.data.dense()

    @property
    def streamed(self) -> bool:
        """Whether the data are streamed from a memory map."""
        return self.data.streamed

    @property
    def n_samples(self) -> int:
        """Number of rows ``n``."""
        return self.data.n_samples

    @property
    def n_inputs(self) -> int:
        """``n_features + 1``."""
        return self.data.n_inputs

    @property
    def n_patterns(self) -> int:
        """Number of masks ``P``."""
        return self.masks.shape[1]

    n_blocks = n_patterns

    #: rounding unit of the products (float64 here; a device operator may work in float32)
    eps: float = float(np.finfo(np.float64).eps)

    def exact_products(self):
        """Context in which every product runs in float64: the certificate's precision.

        A no-op here (numpy products are float64 already); a device operator working
        in float32 (:class:`convexnn.devices.TorchGatedOperator`) switches to float64
        copies of its data inside the block.
        """
        return contextlib.nullcontext()

    def promote(self) -> bool:
        """Run the iteration products in float64 from now on; True if that changed them
        (never here: see :class:`convexnn.devices.TorchGatedOperator`)."""
        return False

    def _chunks(self, width: int):
        # callers add n_inputs to ``width``: streamed data copy each chunk's rows of Xa
        rows = max(1, _CHUNK_ELEMENTS // max(width, 1))
        for start in range(0, self.n_samples, rows):
            yield slice(start, min(start + rows, self.n_samples))

    def matvec(self, V: np.ndarray) -> np.ndarray:
        """:math:`\\sum_k D_k X_a V_k`, shape ``(n_samples, n_outputs)``."""
        P, p, c = V.shape
        out = np.empty((self.n_samples, c))
        if c > 1 and p < P:
            # sum_k D_k X_a V_k = rowsum_l X_a[:, l] * ([d_1 .. d_P] V)[:, l, :]: one
            # product of the masks with all blocks, then n x (d+1) x c products instead
            # of n x P x c ones (same flops; far less memory traffic when d + 1 < P)
            V2 = V.reshape(P, p * c)
            for s in self._chunks(P + p * c):
                H = (self.masks[s].astype(float) @ V2).reshape(-1, p, c)
                out[s] = np.einsum("nlc,nl->nc", H, self.data.rows(s))
                del H
            return out
        W = V.transpose(1, 0, 2).reshape(p, P * c)
        for s in self._chunks(P * c + p):
            H = (self.data.rows(s) @ W).reshape(-1, P, c)
            # 0/1 factors: exact. With several outputs numpy's einsum is ~4x faster on a
            # float copy of the chunk's masks than on the booleans (the copy is n x P,
            # 1/c of H); with one output it is the other way round
            M = self.masks[s] if c == 1 else self.masks[s].astype(H.dtype)
            out[s] = np.einsum("npc,np->nc", H, M)
            del H  # one chunk's temporary alive at a time
        return out

    def rmatvec(self, Theta: np.ndarray) -> np.ndarray:
        """:math:`(X_a^\\top D_k \\Theta)_k`, shape ``(n_patterns, n_inputs, n_outputs)``."""
        n, c = Theta.shape
        P = self.n_patterns
        p = self.n_inputs
        if c == 1 or p >= P:
            G = np.zeros((p, P * c))
            for s in self._chunks(P * c + p):
                T = (self.masks[s][:, :, None] * Theta[s][:, None, :]).reshape(-1, P * c)
                G += self.data.rows(s).T @ T
                del T
            return G.reshape(p, P, c).transpose(1, 0, 2)
        # several outputs: X_a^T D_k theta_j = (theta_j * X_a)^T d_k, so all blocks and
        # outputs are one product [theta_1 * X_a, .., theta_c * X_a]^T [d_1 .. d_P] per
        # chunk; it builds n x (d+1) x c scaled rows instead of n x P x c masked
        # residuals (the same flops; less memory traffic when d + 1 < P)
        G = np.zeros((p * c, P))
        for s in self._chunks(P + p * c):
            A = (self.data.rows(s)[:, :, None] * Theta[s][:, None, :]).reshape(-1, p * c)
            G += A.T @ self.masks[s].astype(float)
        return G.reshape(p, c, P).transpose(2, 0, 1)

    def weighted_gram(self, c: np.ndarray, single: bool = False) -> np.ndarray:
        """:math:`\\sum_k c_k D_k X_a X_a^\\top D_k`, shape ``(n_samples, n_samples)``.

        The kernel of the program's dual in sample space: with
        :math:`M = [\\mathrm{diag}(D_1) \\dots \\mathrm{diag}(D_P)]` it is
        :math:`(X_a X_a^\\top) \\circ (M \\operatorname{diag}(c) M^\\top)`, so it costs
        one ``n x P x n`` product (never ``P`` separate ``n x n`` ones). Meant for
        moderate ``n_samples``: the result is dense. ``single`` forms the product in
        float32 (twice as fast; for Newton matrices, whose rounding only affects steps).
        """
        c = np.asarray(c, dtype=float)
        if np.any(c < 0):
            raise ValueError("weighted_gram needs non-negative weights")
        if not hasattr(self, "_gram"):
            self._gram = self.Xa @ self.Xa.T
        used = np.flatnonzero(c > 0)  # zero weights cost nothing
        out = _symmetric_square(self.masks[:, used] * np.sqrt(c[used])[None, :], single)
        out *= self._gram  # in place: one n x n array, not two
        return out

    def block_gram(self, w: np.ndarray, single: bool = True, diagonals=None) -> np.ndarray:
        r"""The program's Gram matrix in coefficient space, shape ``(P p, P p)``.

        With rows :math:`a_i = (d_{i1} x_i, \dots, d_{iP} x_i) \in \mathbb R^{P p}`
        (:math:`x_i` the ``i``-th row of :math:`X_a`, ``p = d + 1``), it is
        :math:`\sum_i w_i a_i a_i^\top`: the block ``(k, l)`` is
        :math:`X_a^\top \operatorname{diag}(w\, d_k d_l) X_a`, and
        :math:`\lVert \mathcal A(V)\rVert_W^2 = \operatorname{vec}(V)^\top H
        \operatorname{vec}(V)` for one output (``V`` of shape ``(P, p)`` flattened in C
        order). Every block is symmetric, so only its :math:`p (p + 1) / 2` distinct
        entries are formed, from the rows' products :math:`z_i = (w_i x_{ia}
        x_{ib})_{a \le b}`: those of block ``(k, l)`` are :math:`\sum_i z_i d_{ik}
        d_{il}`, for ``l >= k`` one matrix product per band of ``BLOCK_GRAM_BAND``
        patterns ``k`` and row chunk: :math:`n P^2 p (p + 1) / 4` multiply-adds in all,
        where a syrk of the ``n x P p`` rows needs :math:`n (P p)^2 / 2` (1.8x more at
        ``p = 11``). Worth it where ``n`` is much larger than ``P p``. ``single``
        accumulates in float32 (twice as fast; meant for Newton matrices, whose rounding
        only affects steps); weights must be non-negative. ``diagonals(rows)``, if
        given, returns the ``(rows, P)`` diagonals to use in place of the masks
        :math:`d_{ik}` (the cone programs' :math:`S_k`: :meth:`ConeOperator.diagonals`).
        """
        w = np.asarray(w, dtype=float)
        if w.shape != (self.n_samples,) or np.any(w < 0):
            raise ValueError("block_gram needs one non-negative weight per sample")
        P, p = self.n_patterns, self.n_inputs
        m = P * p
        dtype = np.float32 if single else np.float64
        ra, rb = np.triu_indices(p)
        q = ra.size  # distinct entries of a symmetric p x p block
        band = BLOCK_GRAM_BAND
        starts = range(0, P, band)
        # sums[b][(kk, e), l]: entry e of block (k0 + kk, k0 + l), band b = patterns k0..
        sums = [np.zeros(((min(P, k0 + band) - k0) * q, P - k0), dtype=dtype) for k0 in starts]
        for s in self._chunks(band * q + P + p):
            rows = self.data.rows(s)
            z = (rows[:, ra] * rows[:, rb] * w[s][:, None]).astype(dtype)  # (rows, q)
            d = (self.masks[s] if diagonals is None else diagonals(s)).astype(dtype)
            for total, k0 in zip(sums, starts):
                k1 = min(P, k0 + band)
                left = (d[:, k0:k1, None] * z[:, None, :]).reshape(-1, (k1 - k0) * q)
                total += left.T @ d[:, k0:]
                del left
        index = np.empty((p, p), dtype=np.intp)  # block entry (a, b) -> its distinct entry
        index[ra, rb] = np.arange(q)
        index[rb, ra] = np.arange(q)
        H = np.empty((m, m), dtype=dtype)
        blocks = H.reshape(P, p, P, p)
        for total, k0 in zip(sums, starts):
            for kk in range(total.shape[0] // q):
                k = k0 + kk
                full = total[kk * q:(kk + 1) * q, kk:][index]  # (p, p, P - k): blocks (k, l >= k)
                blocks[k, :, k:, :] = full.transpose(0, 2, 1)
                blocks[k:, :, k, :] = full.transpose(2, 0, 1)  # (l, k) = (k, l): symmetric
        return H

    def block_images(self, G: np.ndarray) -> np.ndarray:
        """:math:`D_k X_a g_k` for every block, as columns: shape ``(n_samples, n_patterns)``.

        ``G`` has shape ``(n_patterns, n_inputs)`` (one vector per block, one output).
        """
        return self.masks * self.data.matmul(G.T)

    def norm_squared(self, w: np.ndarray, n_iter: int = 30, random_state=0) -> float:
        """Power-iteration estimate of :math:`\\lambda_{max}(\\mathcal A^* W \\mathcal A)`.

        ``w`` are sample weights; the estimate is inflated by 2 % because power
        iteration approaches the top eigenvalue from below.
        """
        return _power_norm_squared(
            self.matvec, self.rmatvec, (self.n_patterns, self.n_inputs, 1), w, n_iter, random_state
        )


class ConeOperator:
    """The cone-constrained program's operator on ``2P`` blocks ``U = [v_1..v_P, w_1..w_P]``.

    :math:`\\mathcal A(U) = \\sum_k S_k X_a (v_k - w_k)` with the activation's diagonal
    :math:`S_k = a D_k + b I` (:func:`activation_diagonal`; :math:`S_k = D_k` for ReLU);
    the cone constraints are :math:`E_k X_a v_k \\ge 0` and :math:`E_k X_a w_k \\ge 0`,
    the same for every activation. On them, block ``v_k`` is the hidden unit
    :math:`\\sigma(X_a v_k) = S_k X_a v_k` exactly, and ``w_k`` one with a negative
    output weight.

    Parameters
    ----------
    gated : GatedOperator
        Data and patterns (masks :math:`D_k`).
    activation : {"relu", "leaky_relu", "abs"}, default="relu"
        The hidden activation :math:`\\sigma`.
    negative_slope : float, default=0.01
        Slope of leaky ReLU for negative inputs, in ``[0, 1)`` (ignored otherwise).
    """

    def __init__(self, gated: GatedOperator, activation: str = "relu", negative_slope: float = 0.01):
        self.gated = gated
        self.activation = activation
        self._scale, self._shift = activation_diagonal(activation, negative_slope)
        #: leaky ReLU's slope; None for the other activations
        self.negative_slope = float(negative_slope) if activation == "leaky_relu" else None
        # nothing per pattern is stored: E_k and S_k come from the masks, per row chunk

    @property
    def n_samples(self) -> int:
        """Number of rows ``n``."""
        return self.gated.n_samples

    @property
    def n_inputs(self) -> int:
        """``n_features + 1``."""
        return self.gated.n_inputs

    @property
    def n_patterns(self) -> int:
        """Number of masks ``P`` (there are ``2P`` blocks)."""
        return self.gated.n_patterns

    @property
    def n_blocks(self) -> int:
        """``2P``: a positive and a negative neuron per pattern."""
        return 2 * self.gated.n_patterns

    @property
    def masks(self) -> np.ndarray:
        """Boolean masks, shape ``(n_samples, n_patterns)``."""
        return self.gated.masks

    @property
    def eps(self) -> float:
        """Rounding unit of the products (the gated operator's)."""
        return self.gated.eps

    def exact_products(self):
        """Products in float64 inside the block (see :meth:`GatedOperator.exact_products`)."""
        return self.gated.exact_products()

    def promote(self) -> bool:
        """Iteration products in float64 from now on (see :meth:`GatedOperator.promote`)."""
        return self.gated.promote()

    @property
    def _masked_only(self) -> bool:
        """Whether :math:`S_k = D_k` (ReLU, or leaky ReLU with slope 0)."""
        return self._scale == 1.0 and self._shift == 0.0

    def diagonals(self, rows: slice = slice(None)) -> np.ndarray:
        """Diagonals of :math:`S_k` for the ``P`` patterns, shape ``(n_samples, n_patterns)``
        (float64, formed on each call; ``rows`` selects a chunk of rows)."""
        M = self.gated.masks[rows]
        if self._masked_only:
            return M.astype(float)
        return self._scale * M + self._shift

    def _signs(self, rows: slice = slice(None)) -> np.ndarray:
        """Diagonals of :math:`E_k = 2 D_k - I` (float64 ``±1``) of the rows ``rows``."""
        return 2.0 * self.gated.masks[rows] - 1.0

    def _row_chunks(self, width: int):
        """Row chunks for float64 temporaries of ``width`` entries per row, plus the
        chunk's rows of ``Xa`` when streamed (~32 MB in all; aligned so that a chunk's
        products are the rows of the whole product)."""
        return _row_chunks(self.n_samples, width + self.n_inputs)

    def split(self, U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(v, w)`` halves of ``U``."""
        P = self.n_patterns
        return U[:P], U[P:]

    def pattern_matvec(self, V: np.ndarray) -> np.ndarray:
        """:math:`\\sum_k S_k X_a V_k` for ``P`` blocks ``V``, shape ``(n_samples, n_outputs)``.

        :math:`S_k = a D_k + b I`, so this is ``a`` times the gated product plus ``b``
        times one plain product :math:`X_a \\sum_k V_k`.
        """
        out = self.gated.matvec(V)
        if self._masked_only:
            return out
        return self._scale * out + self._shift * self.gated.data.matmul(V.sum(axis=0))

    def pattern_rmatvec(self, Theta: np.ndarray) -> np.ndarray:
        """:math:`(X_a^\\top S_k \\Theta)_k`, shape ``(n_patterns, n_inputs, n_outputs)``."""
        G = self.gated.rmatvec(Theta)
        if self._masked_only:
            return G
        return self._scale * G + self._shift * self.gated.data.rmatmul(Theta)[None]

    def pattern_norm_squared(self, w: np.ndarray, n_iter: int = 30, random_state=0) -> float:
        """Power-iteration estimate of the top eigenvalue of the ``P``-block map
        :math:`V \\mapsto \\sum_k S_k X_a V_k` weighted by ``w`` (the ``2P``-block
        operator's is twice this); for ReLU that of :meth:`GatedOperator.norm_squared`."""
        if self._masked_only:
            return self.gated.norm_squared(w, n_iter=n_iter, random_state=random_state)
        return _power_norm_squared(
            self.pattern_matvec, self.pattern_rmatvec, (self.n_patterns, self.n_inputs, 1),
            w, n_iter, random_state,
        )

    def matvec(self, U: np.ndarray) -> np.ndarray:
        """:math:`\\sum_k S_k X_a (v_k - w_k)`."""
        v, w = self.split(U)
        return self.pattern_matvec(v - w)

    def rmatvec(self, Theta: np.ndarray) -> np.ndarray:
        """Adjoint: ``[G, -G]`` on the ``2P`` blocks, :math:`G_k = X_a^\\top S_k \\Theta`."""
        G = self.pattern_rmatvec(Theta)
        return np.concatenate([G, -G])

    def preactivations(self, U: np.ndarray) -> np.ndarray:
        """:math:`X_a u_j` for every block, shape ``(n_samples, 2P, n_outputs)``."""
        B, p, c = U.shape
        return self.gated.data.matmul(U.transpose(1, 0, 2).reshape(p, B * c)).reshape(-1, B, c)

    @property
    def gated_signs(self) -> np.ndarray:
        """Diagonals of :math:`E_k` for the ``P`` patterns, shape ``(n_samples, P)``.

        ``int8`` entries ``±1`` (``n P`` bytes, formed on each access from the masks):
        exact in any product with floats, as :class:`~convexnn.cones.ConeProjector` uses them.
        """
        signs = self.gated.masks.astype(np.int8)
        signs *= 2
        signs -= 1
        return signs

    def signs(self) -> np.ndarray:
        """Diagonals of :math:`E_k` for the ``2P`` blocks, shape ``(n_samples, 2P)``
        (float64, formed on each call)."""
        E = self._signs()
        return np.concatenate([E, E], axis=1)

    def cone_matrix(self, block: int) -> np.ndarray:
        """:math:`E_k X_a` for block ``block`` (pattern ``k = block mod P``), shape
        ``(n_samples, n_features + 1)``: its cone is ``{u : cone_matrix(block) @ u >= 0}``."""
        out = np.empty((self.n_samples, self.n_inputs))
        k = block % self.n_patterns
        for s in self._row_chunks(0):  # an n x (d + 1) result, but no second copy of Xa
            out[s] = (2.0 * self.gated.masks[s, k, None] - 1.0) * self.gated.data.rows(s)
        return out

    def cone_values(self, U: np.ndarray) -> np.ndarray:
        """:math:`E_k X_a u_j` (must be ``>= 0``), shape ``(n_samples, 2P, n_outputs)``."""
        C = self.preactivations(U)
        P = self.n_patterns
        for s in self._row_chunks(C.shape[1] * C.shape[2]):
            E = self._signs(s)[:, :, None]
            C[s, :P] *= E
            C[s, P:] *= E
        return C

    def cone_extremes(self, U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per block and output: :math:`\\min_i (E_k X_a u_j)_i` and
        :math:`\\max_i |X_a u_j|_i`, each of shape ``(2P, n_outputs)``.

        What a feasibility check needs of :meth:`cone_values` and :meth:`preactivations`,
        computed over row chunks without their ``n x 2P x c`` arrays.
        """
        B, p, c = U.shape
        P = self.n_patterns
        W = U.transpose(1, 0, 2).reshape(p, B * c)
        cmin = np.full((B, c), np.inf)
        hmax = np.zeros((B, c))
        for s in self._row_chunks(B * c):
            H = (self.gated.data.rows(s) @ W).reshape(-1, B, c)
            np.maximum(hmax, np.abs(H).max(axis=0, initial=0.0), out=hmax)
            E = self._signs(s)[:, :, None]
            H[:, :P] *= E
            H[:, P:] *= E
            np.minimum(cmin, H.min(axis=0, initial=np.inf), out=cmin)
            del H
        return cmin, hmax

    def forward_from_preactivations(self, H: np.ndarray) -> np.ndarray:
        """:math:`\\mathcal A(U)` from ``H = preactivations(U)`` without a second product."""
        P = self.n_patterns
        out = np.empty((H.shape[0], H.shape[2]))
        for s in self._row_chunks(P * H.shape[2]):
            out[s] = np.einsum("npc,np->nc", H[s, :P] - H[s, P:], self.diagonals(s))
        return out

    def adjoint_combined(self, Theta: np.ndarray, Lam: np.ndarray) -> np.ndarray:
        """:math:`\\mathcal A^*(\\Theta) - (X_a^\\top E_j \\Lambda_j)_j` in one product.

        ``Lam`` has shape ``(n_samples, 2P, n_outputs)`` (cone multipliers, scaled so
        that the cone term of the Lagrangian is :math:`-\\sum_j\\langle\\Lambda_j,
        E_j X_a u_j\\rangle`).
        """
        P = self.n_patterns
        n, B, c = Lam.shape
        G = np.zeros((self.n_inputs, B * c))
        # T is built and applied per row chunk: S_k, E_k and T are never formed whole
        for s in self._row_chunks(B * c):
            S = self.diagonals(s)[:, :, None]
            E = self._signs(s)[:, :, None]
            T = np.empty((s.stop - s.start, B, c))
            T[:, :P] = S * Theta[s, None, :]
            T[:, P:] = -S * Theta[s, None, :]
            T[:, :P] -= E * Lam[s, :P]
            T[:, P:] -= E * Lam[s, P:]
            G += self.gated.data.rows(s).T @ T.reshape(-1, B * c)
            del T
        return G.reshape(self.n_inputs, B, c).transpose(1, 0, 2)


class DictionaryOperator:
    """:math:`V \\mapsto A V` for a fixed feature dictionary ``A`` (Lasso programs).

    Threshold networks and deep networks on 1-D data reduce to a Lasso over a fixed
    dictionary of features built from the training points. Each dictionary column is
    one block of size 1 (``n_inputs == 1``), so :class:`~convexnn.penalties.ColumnGroupL2`
    is the plain :math:`\\ell_1` norm and the gated-program machinery (FISTA, duality
    gap, certificates) applies unchanged.

    Parameters
    ----------
    A : ndarray of shape (n_samples, n_atoms)
        Dictionary; column ``j`` is feature ``j`` evaluated on the training points.
    """

    def __init__(self, A: np.ndarray):
        self.A = np.asarray(A, dtype=float)
        if self.A.ndim != 2:
            raise ValueError(f"the dictionary must be a 2-D array, got shape {self.A.shape}.")

    @property
    def n_samples(self) -> int:
        """Number of rows ``n``."""
        return self.A.shape[0]

    @property
    def n_inputs(self) -> int:
        """Block size: 1 (one coefficient per atom and output)."""
        return 1

    @property
    def n_patterns(self) -> int:
        """Number of atoms (dictionary columns)."""
        return self.A.shape[1]

    n_blocks = n_patterns

    eps: float = float(np.finfo(np.float64).eps)

    def exact_products(self):
        """A no-op: dictionary products are float64 (see :meth:`GatedOperator.exact_products`)."""
        return contextlib.nullcontext()

    def promote(self) -> bool:
        """Never changes anything (float64 already)."""
        return False

    def matvec(self, V: np.ndarray) -> np.ndarray:
        """:math:`A V`, shape ``(n_samples, n_outputs)``; ``V`` has shape ``(n_atoms, 1, c)``."""
        return self.A @ V[:, 0, :]

    def rmatvec(self, Theta: np.ndarray) -> np.ndarray:
        """:math:`A^\\top \\Theta`, shape ``(n_atoms, 1, n_outputs)``."""
        return (self.A.T @ Theta)[:, None, :]

    def norm_squared(self, w: np.ndarray, n_iter: int = 30, random_state=0) -> float:
        """:math:`\\lambda_{max}(A^\\top W A)` (exact: the largest singular value squared)."""
        B = np.sqrt(w)[:, None] * self.A
        if B.size == 0:
            return 0.0
        return 1.02 * float(np.linalg.norm(B, 2) ** 2)
