"""Activation patterns: gates and the masks they induce on the training data.

A gate :math:`g \\in \\mathbb R^{d+1}` (last entry: the bias coefficient) defines the
mask :math:`D_g = \\operatorname{diag}(\\mathbb 1[X_a g > 0])` with :math:`X_a = [X, 1]`.
A sampler looks at ``X`` and a ``random_state`` only and returns :class:`Patterns`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from sklearn.utils import check_random_state

__all__ = [
    "Patterns",
    "PatternSampler",
    "GaussianSampler",
    "DataSampler",
    "ExhaustiveSampler",
    "FixedGates",
    "augment",
    "unique_patterns",
    "masks_from_gates",
    "make_sampler",
]


def augment(X: np.ndarray) -> np.ndarray:
    """Return ``Xa = [X, 1]``, shape ``(n_samples, n_features + 1)``."""
    return np.hstack([X, np.ones((X.shape[0], 1), dtype=X.dtype)])


# elements of a float64 temporary in the row-chunked mask computations (~32 MB)
_CHUNK_ELEMENTS = 4_000_000
# chunk lengths and offsets are multiples of this many rows (see :func:`_row_chunks`)
_ROW_ALIGN = 512


def _row_chunks(n_rows: int, width: int, elements: int | None = None):
    """Row slices covering ``range(n_rows)`` for products with ``width`` columns.

    Each chunk has ``rows`` rows, ``rows`` the largest multiple of 512 with
    ``rows * width <= elements`` (at least 512), so that a float64 temporary of a chunk
    holds about ``elements`` entries (default ``_CHUNK_ELEMENTS``, ~32 MB) whatever
    ``n_rows``; the last chunk also takes a remainder shorter than 512 rows, so it has
    fewer than ``rows + 512`` rows.

    Chunks start at multiples of 512 rows and no chunk is a short tail: BLAS splits a
    product's rows into blocks aligned the same way, so ``X[s] @ W`` reproduces the rows
    ``s`` of ``X @ W`` bit for bit (single-threaded OpenBLAS; a multi-threaded BLAS varies
    at the last bit with its thread count anyway).
    """
    elements = _CHUNK_ELEMENTS if elements is None else elements
    rows = max(_ROW_ALIGN, (elements // max(width, 1)) // _ROW_ALIGN * _ROW_ALIGN)
    start = 0
    while start < n_rows:
        stop = start + rows
        if n_rows - stop < _ROW_ALIGN:
            stop = n_rows
        yield slice(start, stop)
        start = stop


def _mask_chunks(X: np.ndarray, gates: np.ndarray):
    """``(rows, masks of those rows)`` over row chunks: no ``n x P`` float array is formed."""
    X = np.asarray(X)
    W, b = gates[:-1], gates[-1]
    for s in _row_chunks(X.shape[0], gates.shape[1]):
        H = X[s] @ W
        H += b
        M = H > 0
        del H  # one chunk's temporary alive at a time
        yield s, M


def _column_std(X: np.ndarray) -> np.ndarray:
    """``X.std(axis=0)`` over row chunks: ``np.std`` would form an ``n x d`` temporary
    (``X - mean``), a full copy of data that may be streamed from a memory map.

    The same operations as ``np.std`` chunk by chunk, so equal to it bit for bit when
    ``X`` is one chunk, and to rounding otherwise.
    """
    n, d = X.shape
    total = np.zeros(d)
    for s in _row_chunks(n, d):
        total += X[s].sum(axis=0)
    mean = total / n
    squares = np.zeros(d)
    for s in _row_chunks(n, d):
        D = X[s] - mean
        np.multiply(D, D, out=D)
        squares += D.sum(axis=0)
        del D
    return np.sqrt(squares / n)


def masks_from_gates(X: np.ndarray, gates: np.ndarray) -> np.ndarray:
    """Boolean activation masks ``Xa @ gates > 0``, shape ``(n_samples, n_patterns)``.

    Computed in row chunks (:func:`_row_chunks`): the only array of size
    ``n_samples x n_patterns`` is the boolean result.
    """
    X = np.asarray(X)
    out = np.empty((X.shape[0], gates.shape[1]), dtype=bool)
    for s, M in _mask_chunks(X, gates):
        out[s] = M
    return out


@dataclass(frozen=True)
class Patterns:
    """Gates and whether they are provably all the patterns the data admits.

    Attributes
    ----------
    gates : ndarray of shape (n_features + 1, n_patterns)
        One gate per column; the last row is the bias coefficient.
    complete : bool
        True when every pattern :math:`\\mathbb 1[X_a g > 0]` (over all ``g``), except the
        empty one, appears among the gates' masks. Only then does a duality gap certify
        the non-convex network globally.
    """

    gates: np.ndarray
    complete: bool = False

    @property
    def n_patterns(self) -> int:
        """Number of gates."""
        return self.gates.shape[1]


def unique_patterns(X: np.ndarray, gates: np.ndarray, keep_empty: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The first gate of each distinct, non-empty mask, and where every gate's mask went.

    With ``keep_empty``, the empty mask counts as a pattern too (leaky ReLU and abs: a
    unit negative on every sample is linear there, not zero).

    Masks are computed and bit-packed chunk by chunk (chunks start at multiples of 8
    rows, so the packed bytes are those of the whole mask): memory ``n x P / 8`` bytes.

    Returns
    -------
    keep : ndarray of int
        Columns of ``gates`` kept, in sampling order (the first of each distinct mask).
    representative : ndarray of int, shape (n_patterns,)
        For each column of ``gates``, the position in ``keep`` of the column with the
        same mask; ``-1`` for an empty mask (unless ``keep_empty``).
    """
    n, P = X.shape[0], gates.shape[1]
    nonempty = np.zeros(P, dtype=bool)
    packed = np.empty((P, (n + 7) // 8), dtype=np.uint8)  # one row of bytes per mask
    for s, M in _mask_chunks(X, gates):
        nonempty |= M.any(axis=0)
        packed[:, s.start // 8 : (s.stop + 7) // 8] = np.packbits(M, axis=0).T
    # first gate of each distinct packed mask: a dict on the masks' bytes (exact
    # comparison, first occurrence kept) is ~20x faster than np.unique(axis=1), which
    # sorts the columns as opaque records (2.7 s at n=100000, P=2000)
    first: dict[bytes, int] = {}
    owner = np.empty(P, dtype=np.int64)
    for k, row in enumerate(packed):
        owner[k] = first.setdefault(row.tobytes(), k)
    if keep_empty:
        nonempty[:] = True
    keep = np.flatnonzero(nonempty & (owner == np.arange(P)))
    position = np.full(P, -1, dtype=np.int64)
    position[keep] = np.arange(keep.size)
    representative = np.where(nonempty, position[owner], -1)
    return keep, representative


def _unique_nonempty(X: np.ndarray, gates: np.ndarray) -> np.ndarray:
    """Keep the first gate of each distinct, non-empty mask (keeps sampling order)."""
    return gates[:, unique_patterns(X, gates)[0]]


class PatternSampler(ABC):
    """Draws gates from ``X`` and a random state (nothing else)."""

    @abstractmethod
    def sample(self, X: np.ndarray, random_state=None) -> Patterns:
        """Return :class:`Patterns` for the data ``X`` (n_samples, n_features)."""


@dataclass
class GaussianSampler(PatternSampler):
    """Gates :math:`g \\sim N(0, I_{d+1})`, duplicate and empty masks removed.

    The classical choice of the hidden-convexity papers; it is not scale-aware, so it
    suits standardized features.
    """

    n_patterns: int = 100

    def sample(self, X, random_state=None):
        rng = check_random_state(random_state)
        gates = rng.standard_normal((X.shape[1] + 1, self.n_patterns))
        return Patterns(_unique_nonempty(X, gates))


@dataclass
class DataSampler(PatternSampler):
    """Hyperplanes through the data: direction :math:`w_j \\sim N(0, 1/\\sigma_j^2)`,
    offset so the hyperplane passes through a random point on the segment between two
    random training points.

    Every hyperplane cuts the data cloud whatever the features' scale or offset, so
    no mask is trivially empty or full. Duplicate and empty masks are removed.
    """

    n_patterns: int = 100

    def sample(self, X, random_state=None):
        rng = check_random_state(random_state)
        n, d = X.shape
        scale = _column_std(X)  # chunked: X may be a memory map
        scale[~(scale > 0)] = 1.0
        W = rng.standard_normal((d, self.n_patterns)) / scale[:, None]
        i = rng.randint(n, size=self.n_patterns)
        j = rng.randint(n, size=self.n_patterns)
        t = rng.uniform(size=self.n_patterns)
        # x_i . w_k and x_j . w_k of the k-th pair, read off X @ W chunk by chunk (the
        # same values as from the whole n x P product, which is never formed)
        proj_i, proj_j = np.empty(self.n_patterns), np.empty(self.n_patterns)
        for s in _row_chunks(n, self.n_patterns):
            proj = X[s] @ W
            for rows, dst in ((i, proj_i), (j, proj_j)):
                cols = np.flatnonzero((rows >= s.start) & (rows < s.stop))
                dst[cols] = proj[rows[cols] - s.start, cols]
            del proj
        threshold = t * proj_i + (1 - t) * proj_j
        gates = np.vstack([W, -threshold[None, :]])
        return Patterns(_unique_nonempty(X, gates))


@dataclass
class ExhaustiveSampler(PatternSampler):
    """Every pattern of one-dimensional data (``n_features == 1``): the complete set.

    For scalar inputs a hyperplane pattern is an upper set :math:`\\{x_i > t\\}` or a
    lower set :math:`\\{x_i < t\\}` of the sorted data; thresholds midway between
    consecutive distinct values enumerate all of them (plus the all-ones mask), at
    most ``2 * n_unique`` patterns. With this set the certificate is global.
    """

    def sample(self, X, random_state=None):
        if X.shape[1] != 1:
            raise ValueError(
                "sampler='exhaustive' enumerates every activation pattern and supports "
                f"one feature only; X has {X.shape[1]} features. Use sampler='data' or "
                "'gaussian' instead."
            )
        values = np.unique(X[:, 0])
        mids = (values[:-1] + values[1:]) / 2
        ones = np.ones_like(mids)
        upper = np.vstack([ones, -mids])  # 1[x > t]
        lower = np.vstack([-ones, mids])  # 1[x < t]
        below_all = np.array([[1.0], [-(values[0] - 1.0)]])  # all ones
        gates = np.hstack([below_all, upper, lower])
        return Patterns(gates, complete=True)


@dataclass
class FixedGates(PatternSampler):
    """Explicit gates given by the user, shape ``(n_features + 1, n_patterns)``; used as is."""

    gates: np.ndarray

    def sample(self, X, random_state=None):
        gates = np.asarray(self.gates, dtype=float)
        if gates.ndim != 2 or gates.shape[0] != X.shape[1] + 1 or gates.shape[1] < 1:
            raise ValueError(
                "explicit gates must have shape (n_features + 1, n_patterns) = "
                f"({X.shape[1] + 1}, P) with P >= 1, the last row holding the bias; "
                f"got shape {gates.shape}."
            )
        if not np.all(np.isfinite(gates)):
            raise ValueError("explicit gates contain NaN or infinity.")
        return Patterns(gates.copy())


SAMPLERS = {"data": DataSampler, "gaussian": GaussianSampler}


def make_sampler(spec, n_patterns: int) -> PatternSampler:
    """Turn the estimators' ``sampler`` parameter into a :class:`PatternSampler`.

    ``spec`` is a name (``"data"``, ``"gaussian"``, ``"exhaustive"``), a sampler object
    or an array of explicit gates.
    """
    if isinstance(spec, str):
        if spec == "exhaustive":
            return ExhaustiveSampler()
        if spec not in SAMPLERS:
            raise ValueError(
                f"unknown sampler {spec!r}; choose one of "
                f"{sorted([*SAMPLERS, 'exhaustive'])}, a PatternSampler or a gate array."
            )
        return SAMPLERS[spec](n_patterns=n_patterns)
    if isinstance(spec, PatternSampler):
        return spec
    if hasattr(spec, "sample") and callable(spec.sample):
        return spec
    return FixedGates(np.asarray(spec))
