"""The augmented data matrix :math:`X_a = [X, 1]`, held in RAM or streamed from a memory map.

Every product of the programs with data goes through :class:`AugmentedData`. When ``X``
is an ordinary array, ``Xa`` is built once in RAM (as fast as it gets). When ``X`` is a
memory-mapped file (``np.load(path, mmap_mode="r")``, :class:`numpy.memmap`), ``Xa`` is
never built: each row chunk is read from the map and gets its column of ones on the
fly, so the only copies of the data in anonymous memory are one chunk's (a few MB) and
data larger than RAM is streamed from the operating system's page cache.

Both paths split products into the same row chunks and hand BLAS the same numbers, so
a fit streamed from a memory map equals the in-memory fit bit for bit.

A memory map is streamed only when it is float64 and C-contiguous (rows contiguous on
disk); anything else would need a full in-memory conversion, so :func:`check_streamable`
refuses it and :func:`to_npy` writes a streamable copy chunk by chunk instead (the
estimators do that by themselves, into a temporary file: :func:`as_streamable`).
"""

from __future__ import annotations

import mmap
import os
import tempfile
import weakref

import numpy as np

from .patterns import _row_chunks, augment

__all__ = ["AugmentedData", "is_memmap", "check_streamable", "as_streamable", "to_npy", "temporary_npy"]


def _memmap_base(X) -> np.memmap | mmap.mmap | None:
    """The memory map under ``X`` (``X`` itself or a base of its views), or None."""
    a = X
    while isinstance(a, np.ndarray):
        if isinstance(a, np.memmap):
            return a
        a = a.base
    return a if isinstance(a, mmap.mmap) else None


def is_memmap(X) -> bool:
    """Whether ``X`` is (a view of) a memory-mapped file.

    ``np.asarray`` and scikit-learn's ``validate_data`` turn a :class:`numpy.memmap`
    into a plain ``ndarray`` view of the same buffer; its ``base`` chain still leads
    to the map, which is what this follows.
    """
    return _memmap_base(X) is not None


def _streamable_problems(X: np.ndarray) -> list[str]:
    problems = []
    if X.ndim != 2:
        problems.append(f"it has {X.ndim} dimensions, not 2")
    if X.dtype != np.float64:
        problems.append(f"its dtype is {X.dtype}, not float64")
    if not X.flags.c_contiguous:
        problems.append("it is not C-contiguous (rows are not contiguous on disk)")
    return problems


def check_streamable(X) -> None:
    """Refuse a memory map that cannot be streamed without a full in-memory copy.

    Raises
    ------
    ValueError
        When ``X`` is not 2-D, not float64 or not C-contiguous: converting it would
        silently copy the whole file into RAM. The message names :func:`to_npy`, which
        converts chunk by chunk into a new ``.npy`` file.
    """
    X = np.asarray(X)  # a view: no copy
    problems = _streamable_problems(X)
    if problems:
        raise ValueError(
            "X is a memory-mapped array, which convexnn streams in row chunks without "
            f"copying it, but {' and '.join(problems)}: converting it would copy all of "
            f"X ({X.nbytes / 2**20:.0f} MiB) into memory. Convert it once, chunk by "
            "chunk, with convexnn.data.to_npy(X, 'X64.npy') and fit on the array it "
            "returns (or pass np.asarray(X, dtype=np.float64) to load it into memory)."
        )


def as_streamable(X):
    """``X`` itself when it can be streamed or is no memory map; otherwise (a 2-D map of
    another real dtype, or not C-contiguous) a float64 C-ordered copy in a temporary
    ``.npy`` file, written chunk by chunk (:func:`temporary_npy`): never an in-memory one.

    Anything else (e.g. a map of strings) is returned as is, for the usual validation
    to reject.
    """
    if not is_memmap(X):
        return X
    A = np.asarray(X)  # a view: no copy
    real = np.issubdtype(A.dtype, np.integer) or np.issubdtype(A.dtype, np.floating) or A.dtype == bool
    if A.ndim != 2 or not real or not _streamable_problems(A):
        return X
    return temporary_npy(A)


def to_npy(X, path, rows: np.ndarray | None = None) -> np.memmap:
    """Write ``X`` (or the rows ``rows`` of it) to a float64 C-ordered ``.npy`` file, chunk
    by chunk, and return it memory-mapped read-only.

    Makes a memory map of another dtype or layout streamable (see
    :func:`check_streamable`) with at most one row chunk (~32 MB) in memory.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Any array, typically a memory map.
    path : str or path-like
        The ``.npy`` file to write (overwritten).
    rows : ndarray of int or bool, optional
        Row indices (or a boolean mask) to keep, in order; all rows by default.

    Returns
    -------
    X64 : numpy.memmap of shape (n_rows, n_features), float64, mode ``"r"``
    """
    if rows is not None:
        rows = np.asarray(rows)
        rows = np.flatnonzero(rows) if rows.dtype == bool else rows.astype(np.intp)
    n = X.shape[0] if rows is None else rows.size
    d = X.shape[1]
    out = np.lib.format.open_memmap(os.fspath(path), mode="w+", dtype=np.float64, shape=(n, d))
    for s in _row_chunks(n, d):
        out[s] = X[s] if rows is None else X[rows[s]]
    out.flush()
    del out  # closes the writable map before the read-only one opens
    return np.load(os.fspath(path), mmap_mode="r")


def temporary_npy(X, rows: np.ndarray | None = None) -> np.memmap:
    """:func:`to_npy` into a temporary file that disappears with the returned map.

    The file is written next to ``X``'s own file when that directory is writable
    (a system temporary directory may be a RAM disk, which would defeat streaming),
    else in :func:`tempfile.gettempdir`. On POSIX it is unlinked at once (the map keeps
    the data readable until it is closed); elsewhere it is removed when the map is
    garbage-collected.
    """
    base = _memmap_base(X)
    directory = None
    name = getattr(base, "filename", None)
    if name and os.access(os.path.dirname(os.path.abspath(name)), os.W_OK):
        directory = os.path.dirname(os.path.abspath(name))
    fd, path = tempfile.mkstemp(suffix=".npy", prefix="convexnn-", dir=directory)
    os.close(fd)
    try:
        out = to_npy(X, path, rows)
    except BaseException:
        os.remove(path)
        raise
    try:
        os.remove(path)  # POSIX: the mapping stays valid, the space is freed when it closes
    except OSError:  # Windows cannot remove a mapped file: remove it with the map
        weakref.finalize(out, _remove_quietly, path)
    return out


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


class AugmentedData:
    """:math:`X_a = [X, 1]`, in RAM or streamed from a memory map in row chunks.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data (not augmented). A float64 C-contiguous memory map is streamed (see the
        module docstring); anything else is converted to float64 and augmented in RAM.
    stream : bool, optional
        Force streaming (True) or an in-memory ``Xa`` (False); by default streaming
        exactly when ``X`` is a memory map.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features)
        The data, not copied (the memory map itself when streamed).
    streamed : bool
        Whether ``Xa`` is read from ``X`` chunk by chunk rather than held in RAM.
    """

    def __init__(self, X: np.ndarray, stream: bool | None = None):
        self.streamed = is_memmap(X) if stream is None else bool(stream)
        if self.streamed:
            check_streamable(X)
            self.X = np.asarray(X)  # a view of the map: no copy
            self._Xa = None
        else:
            self.X = np.asarray(X, dtype=float)
            self._Xa = augment(self.X)

    @classmethod
    def from_augmented(cls, Xa: np.ndarray) -> AugmentedData:
        """Wrap an already augmented in-memory matrix (not copied)."""
        self = cls.__new__(cls)
        self._Xa = np.asarray(Xa, dtype=float)
        self.X = self._Xa[:, :-1]
        self.streamed = False
        return self

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_samples, n_features + 1)``."""
        return (self.X.shape[0], self.X.shape[1] + 1)

    @property
    def n_samples(self) -> int:
        """Number of rows ``n``."""
        return self.X.shape[0]

    @property
    def n_inputs(self) -> int:
        """``n_features + 1``."""
        return self.X.shape[1] + 1

    def rows(self, index) -> np.ndarray:
        """Rows of :math:`X_a`: ``Xa[index]`` for a slice or an integer index array of any
        shape (result shape ``index_shape + (n_features + 1,)``).

        In RAM a slice is a view; streamed, the rows are read from the map into a new
        array with the ones column appended (equal values either way).
        """
        if self._Xa is not None:
            return self._Xa[index]
        part = self.X[index]
        out = np.empty(part.shape[:-1] + (part.shape[-1] + 1,))
        out[..., :-1] = part
        out[..., -1] = 1.0
        return out

    def chunks(self, width: int):
        """Row slices for a product with ``width`` output columns: each chunk's temporaries
        (its rows of ``Xa`` when streamed, and the ``rows x width`` result) stay ~32 MB.
        The same chunks in RAM and streamed, so both give identical results."""
        return _row_chunks(self.n_samples, width + self.n_inputs)

    def matmul(self, W: np.ndarray) -> np.ndarray:
        """:math:`X_a W`, shape ``(n_samples, k)`` for ``W`` of shape ``(n_features + 1, k)``."""
        out = np.empty((self.n_samples, W.shape[1]))
        for s in self.chunks(W.shape[1]):
            out[s] = self.rows(s) @ W
        return out

    def rmatmul(self, T: np.ndarray) -> np.ndarray:
        """:math:`X_a^\\top T`, shape ``(n_features + 1, k)`` for ``T`` of shape ``(n_samples, k)``
        (summed over row chunks)."""
        G = np.zeros((self.n_inputs, T.shape[1]))
        for s in self.chunks(T.shape[1]):
            G += self.rows(s).T @ T[s]
        return G

    def dense(self) -> np.ndarray:
        """The whole :math:`X_a` in RAM, shape ``(n_samples, n_features + 1)``.

        For the methods that need it as one matrix (the barrier's and ADMM's direct
        systems, cvxpy, a device upload). Streamed data is copied into memory here,
        once (then kept): ``8 n (d + 1)`` bytes, the one place that happens.
        """
        if self._Xa is None:
            Xa = np.empty(self.shape)
            for s in self.chunks(0):
                Xa[s] = self.rows(s)
            self._Xa = Xa
        return self._Xa
