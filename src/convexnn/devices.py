"""Where the products run: numpy on the host, or torch on a device (``device=``).

The solvers see programs only, and a program multiplies by data only through its
operator (:mod:`convexnn.operators`). So one operator class is all a backend needs:
:class:`TorchGatedOperator` is a :class:`~convexnn.operators.GatedOperator` whose data
(the augmented features :math:`X_a` and the masks :math:`D_k`) also live as torch
tensors on a device, and whose products

.. math::

    \\mathcal A(V) = \\sum_k D_k X_a V_k, \\qquad \\mathcal A^*(\\Theta)_k = X_a^\\top D_k\\Theta

run there, row chunk by row chunk, in the device's working precision. Every solver
(FISTA, the barrier, the regularization path, the cone-constrained programs through
:class:`~convexnn.operators.ConeOperator`, which delegates its products to the gated
operator) runs unchanged: there is no second copy of any solver per backend. The
coefficients ``V`` (``P x (d+1) x c``) and the outputs (``n x c``) cross between host
and device once per product; the ``n x d`` and ``n x P`` data never do.

Precision. On a GPU the products run in float32 by default (``dtype="float32"``),
twice the speed of float64 and half the memory. The *certificate* is never computed
in float32: inside :meth:`TorchGatedOperator.exact_products` (entered by
:func:`convexnn.certificates.dual_value` and :func:`~convexnn.certificates.certify`,
and so by every solver's duality-gap checks) the same products run in float64 on
float64 copies of the data, so the dual bound and the gap are those of the float64
program. The masks are computed once, on the host, in float64
(:func:`~convexnn.patterns.masks_from_gates`), so host and device agree on every
activation pattern. The final primal objective is evaluated on the exported network on
the host, in float64.

Float32 products carry relative errors of about :math:`10^{-7}` (more for long sums),
which limits how far a float32 solver can drive the gap. :attr:`TorchGatedOperator.eps`
tells solvers the products' rounding unit (FISTA widens its line-search slack with it),
and :meth:`TorchGatedOperator.promote` switches the iteration products to float64 for
the rest of a solve, which FISTA does when float32 stops improving the gap.
"""

from __future__ import annotations

import contextlib
import re

import numpy as np

from .operators import _CHUNK_ELEMENTS, GatedOperator
from .patterns import _row_chunks

__all__ = ["TorchGatedOperator", "check_device", "resolve_dtype"]

#: elements per device temporary (``chunk_rows x P x c``) on a GPU: 256 MB in float32
_CUDA_CHUNK_ELEMENTS = 1 << 26

_DEVICE_RE = re.compile(r"^(cpu|cuda(:\d+)?)$")


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ImportError(
            "device='cpu' or 'cuda' runs the products in PyTorch, which is not installed: "
            "pip install 'convexnn[torch]' (or leave device=None for numpy)."
        ) from exc
    return torch


def check_device(device) -> str | None:
    """Validate a ``device`` argument; returns it (``None``: numpy on the host).

    Parameters
    ----------
    device : None, "cpu", "cuda" or "cuda:N"
        ``None`` keeps every product in numpy. ``"cpu"`` runs them in torch on the CPU
        (the same code path as a GPU; useful for testing it), ``"cuda"`` on the
        current GPU, ``"cuda:N"`` on GPU ``N``.

    Raises
    ------
    ValueError
        For another value, or a CUDA device when torch sees no GPU (or not that many).
    ImportError
        For a torch device when torch is not installed.
    """
    if device is None:
        return None
    if not isinstance(device, str) or not _DEVICE_RE.match(device):
        raise ValueError(
            f"device must be None (numpy), 'cpu' or 'cuda'/'cuda:N' (PyTorch), got {device!r}."
        )
    torch = _torch()
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} but PyTorch sees no CUDA GPU (torch.cuda.is_available() "
                "is False); use device=None or 'cpu', or install a CUDA build of torch."
            )
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} but PyTorch sees {torch.cuda.device_count()} GPU(s)."
            )
    return device


def resolve_dtype(device: str, dtype: str | None) -> str:
    """The working precision of products on ``device``: ``dtype``, or float32 on a GPU
    and float64 on the CPU when ``dtype`` is None.

    Raises
    ------
    ValueError
        For a dtype other than None, "float32" and "float64".
    """
    if dtype is None:
        return "float32" if device.startswith("cuda") else "float64"
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be None, 'float32' or 'float64', got {dtype!r}.")
    return dtype


class TorchGatedOperator(GatedOperator):
    """:class:`~convexnn.operators.GatedOperator` whose products run in torch on a device.

    The host arrays of the base class (``Xa`` in float64, boolean ``masks``) are kept:
    the parts of convexnn that work on them directly (the exact cone projector, the
    barrier's Newton matrices) use them unchanged. The device holds ``Xa`` and the
    masks in the working precision, and float64 copies once the first exact product
    is asked for.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data (not augmented).
    gates : ndarray of shape (n_features + 1, n_patterns)
        Gates defining the masks :math:`D_k` (computed on the host, in float64).
    device : {"cpu", "cuda", "cuda:N"}
        Where the products run (see :func:`check_device`).
    dtype : {"float32", "float64"} or None, default=None
        Working precision of the iteration products; None: float32 on a GPU, float64
        on the CPU. Products inside :meth:`exact_products` are always float64.
    """

    def __init__(self, X: np.ndarray, gates: np.ndarray, device: str = "cpu", dtype: str | None = None):
        super().__init__(X, gates)
        torch = _torch()
        device = check_device(device)
        self.device = torch.device(device)
        self.dtype = resolve_dtype(device, dtype)
        self._work = getattr(torch, self.dtype)
        self._chunk_elements = _CUDA_CHUNK_ELEMENTS if self.device.type == "cuda" else _CHUNK_ELEMENTS
        self._data = {self._work: self._upload(self._work)}
        self._exact = 0  # depth of nested exact_products() blocks
        self._promoted = False

    # -- precision -------------------------------------------------------------------
    @property
    def eps(self) -> float:
        """Rounding unit of the iteration products (float32's or float64's)."""
        return float(np.finfo(np.float64 if self._current == _torch().float64 else np.float32).eps)

    @property
    def _current(self):
        torch = _torch()
        return torch.float64 if (self._exact or self._promoted) else self._work

    @contextlib.contextmanager
    def exact_products(self):
        """Run every product inside the block in float64 (the certificate's precision)."""
        self._exact += 1
        try:
            yield
        finally:
            self._exact -= 1

    def promote(self) -> bool:
        """Switch the iteration products to float64 for good; True if that changed them."""
        changed = self._current != _torch().float64
        self._promoted = True
        return changed

    def _upload(self, dtype):
        torch = _torch()
        # uploaded row chunk by row chunk: streamed data (a memory map) never sit in host RAM whole
        Xa = torch.empty(self.data.shape, device=self.device, dtype=dtype)
        for s in self.data.chunks(0):
            Xa[s] = torch.from_numpy(self.data.rows(s)).to(device=self.device, dtype=dtype)
        # 0/1 in any float format: the masked products stay exact in their precision
        masks = torch.from_numpy(self.masks).to(device=self.device).to(dtype)
        return Xa, masks

    def _tensors(self):
        dtype = self._current
        if dtype not in self._data:
            self._data[dtype] = self._upload(dtype)
        return dtype, self._data[dtype]

    def _to_device(self, a: np.ndarray, dtype):
        torch = _torch()
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)).to(device=self.device, dtype=dtype)

    @staticmethod
    def _to_host(t) -> np.ndarray:
        return t.detach().to("cpu").double().numpy()

    # -- products --------------------------------------------------------------------
    def matvec(self, V: np.ndarray) -> np.ndarray:
        """:math:`\\sum_k D_k X_a V_k`, shape ``(n_samples, n_outputs)`` (float64 on the host)."""
        torch = _torch()
        dtype, (Xa, M) = self._tensors()
        P, p, c = V.shape
        out = torch.empty((self.n_samples, c), dtype=dtype, device=self.device)
        if c > 1 and p < P:  # masks first: see GatedOperator.matvec
            V2 = self._to_device(V.reshape(P, p * c), dtype)
            for s in _row_chunks(self.n_samples, P + p * c, self._chunk_elements):
                H = (M[s] @ V2).view(-1, p, c)
                out[s] = (H * Xa[s].unsqueeze(2)).sum(dim=1)
                del H
            return self._to_host(out)
        W = self._to_device(V.transpose(1, 0, 2).reshape(p, P * c), dtype)
        for s in _row_chunks(self.n_samples, P * c, self._chunk_elements):
            H = (Xa[s] @ W).view(-1, P, c)
            out[s] = (H * M[s].unsqueeze(2)).sum(dim=1)
            del H
        return self._to_host(out)

    def rmatvec(self, Theta: np.ndarray) -> np.ndarray:
        """:math:`(X_a^\\top D_k \\Theta)_k`, shape ``(n_patterns, n_inputs, n_outputs)``."""
        torch = _torch()
        dtype, (Xa, M) = self._tensors()
        n, c = Theta.shape
        P = self.n_patterns
        T_all = self._to_device(Theta, dtype)
        p = self.n_inputs
        if c > 1 and p < P:  # [theta_j X_a]^T [d_1 .. d_P]: see GatedOperator.rmatvec
            G = torch.zeros((p * c, P), dtype=dtype, device=self.device)
            for s in _row_chunks(self.n_samples, P + p * c, self._chunk_elements):
                A = (Xa[s].unsqueeze(2) * T_all[s].unsqueeze(1)).reshape(-1, p * c)
                G += A.T @ M[s]
                del A
            return self._to_host(G).reshape(p, c, P).transpose(2, 0, 1)
        G = torch.zeros((self.n_inputs, P * c), dtype=dtype, device=self.device)
        for s in _row_chunks(self.n_samples, P * c, self._chunk_elements):
            T = (M[s].unsqueeze(2) * T_all[s].unsqueeze(1)).reshape(-1, P * c)
            G += Xa[s].T @ T
            del T
        return self._to_host(G).reshape(self.n_inputs, P, c).transpose(1, 0, 2)

    def __repr__(self) -> str:
        return (
            f"TorchGatedOperator(n_samples={self.n_samples}, n_inputs={self.n_inputs}, "
            f"n_patterns={self.n_patterns}, device='{self.device}', dtype='{self.dtype}')"
        )
