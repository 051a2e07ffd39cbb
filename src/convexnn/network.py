"""The trained network as a plain value object (DESIGN.md §1 layout).

.. math::

    f(x) = \\sigma(x W_1 + b_1) W_2 + b_2

with :math:`\\sigma = \\mathrm{ReLU}`, leaky ReLU :math:`\\sigma(h) = \\max(h, s h)` with
negative slope :math:`s \\in [0, 1)`, the absolute value :math:`\\sigma(h) = |h|`, or, for
gated ReLU, :math:`\\sigma_j(h) = \\mathbb 1[x g_{1:d,j} + g_{d+1,j} > 0]\\, h` with a
fixed gate per hidden unit.

Threshold (step) networks (Ergen, Gulluk, Lacotte & Pilanci, ICLR 2023) have a trainable
amplitude :math:`s_j` per hidden unit: :math:`\\sigma_j(h) = s_j \\mathbb 1[h > 0]`.
Their weight decay is :math:`\\tfrac12(\\lVert s\\rVert^2 + \\lVert W_2\\rVert^2)`: the
step is invariant to positive rescaling of :math:`(W_1, b_1)`, so the first layer is
not penalised (see :mod:`convexnn.threshold`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .losses import Loss
from .patterns import _row_chunks

__all__ = ["Network"]


@dataclass
class Network:
    """A two-layer network in scikit-learn's ``MLP`` layout.

    Attributes
    ----------
    coefs : list of ndarray
        ``[W1 (n_features, n_neurons), W2 (n_neurons, n_outputs)]``.
    intercepts : list of ndarray
        ``[b1 (n_neurons,), b2 (n_outputs,)]``.
    activation : str
        ``"relu"``, ``"leaky_relu"``, ``"abs"``, ``"gated_relu"`` or ``"threshold"``.
    gates : ndarray of shape (n_features + 1, n_neurons) or None
        The gate of each hidden unit (gated ReLU only; last row is the bias).
    amplitudes : ndarray of shape (n_neurons,) or None
        The amplitude :math:`s_j` of each threshold unit (``"threshold"`` only):
        unit ``j`` outputs :math:`s_j \\mathbb 1[x W_{1,:,j} + b_{1,j} > 0]`.
    negative_slope : float or None
        Slope of ``"leaky_relu"`` for negative inputs, in ``[0, 1)`` (leaky ReLU only).
    """

    coefs: list[np.ndarray]
    intercepts: list[np.ndarray]
    activation: str = "relu"
    gates: np.ndarray | None = None
    amplitudes: np.ndarray | None = None
    negative_slope: float | None = None

    @property
    def n_neurons(self) -> int:
        """Hidden width."""
        return self.coefs[0].shape[1]

    def hidden(self, X: np.ndarray) -> np.ndarray:
        """Hidden-layer activations, shape ``(n_samples, n_neurons)``."""
        pre = X @ self.coefs[0] + self.intercepts[0]
        if self.activation == "relu":
            return np.maximum(pre, 0.0)
        if self.activation == "leaky_relu":
            if self.negative_slope is None:
                raise ValueError("a leaky_relu network needs its negative_slope")
            return np.where(pre > 0, pre, self.negative_slope * pre)
        if self.activation == "abs":
            return np.abs(pre)
        if self.activation == "gated_relu":
            return ((X @ self.gates[:-1] + self.gates[-1]) > 0) * pre
        if self.activation == "threshold":
            return (pre > 0) * self.amplitudes[None, :]
        raise ValueError(f"unknown activation {self.activation!r}")

    def forward(self, X: np.ndarray) -> np.ndarray:
        """Outputs, shape ``(n_samples, n_outputs)``.

        Computed in chunks of rows, so the hidden activations (``n_samples x n_neurons``)
        are never formed whole; each row's value is the one :meth:`hidden` gives.
        """
        X = np.asarray(X)
        W2, b2 = self.coefs[1], self.intercepts[1]
        # up to three chunk-wide temporaries live at once in hidden() (pre-activations,
        # gate products, activations): chunks sized for all three stay ~32 MB
        parts = [self.hidden(X[s]) @ W2 + b2 for s in _row_chunks(X.shape[0], 3 * self.n_neurons)]
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else self.hidden(X) @ W2 + b2

    def weight_decay(self) -> float:
        """:math:`\\tfrac12(\\lVert W_1\\rVert^2 + \\lVert b_1\\rVert^2 + \\lVert W_2\\rVert^2)`.

        For ``"threshold"`` networks: :math:`\\tfrac12(\\lVert s\\rVert^2 + \\lVert W_2\\rVert^2)`
        with the amplitudes ``s`` (the scale-invariant first layer is not penalised).
        """
        W1, W2 = self.coefs
        if self.activation == "threshold":
            s = self.amplitudes
            return 0.5 * float(np.vdot(s, s) + np.vdot(W2, W2))
        return 0.5 * float(np.vdot(W1, W1) + np.vdot(self.intercepts[0], self.intercepts[0]) + np.vdot(W2, W2))

    def objective(self, X: np.ndarray, Y: np.ndarray, sample_weight: np.ndarray, loss: Loss, alpha: float) -> float:
        """The training objective ``J`` of DESIGN.md §1 (weights sum to one)."""
        return loss.value(self.forward(X), Y, sample_weight) + alpha * self.weight_decay()

    @classmethod
    def from_convex(cls, program, coef: np.ndarray, intercept: np.ndarray) -> Network:
        """Read the network off a convex solution.

        Each block factors into balanced neurons ``u a^T`` (see
        :meth:`Penalty.neurons`); the cone programs' ``w`` blocks give neurons with
        negated output weights (for ``"abs"``: :math:`a = -\\sqrt{\\lVert w\\rVert}` on
        :math:`|X_a u|`). The activation is the cone operator's (ReLU, leaky ReLU with its
        slope, absolute value). For a feasible solution ``J`` of this network equals the
        convex objective exactly.
        """
        U, A, block = program.penalty.neurons(coef)
        P = program.gates.shape[1]
        if program.has_cone:
            A = np.where((block >= P)[:, None], -A, A)
        pattern = block % P
        op = program.operator
        return cls(
            coefs=[U[:-1].copy(), A.copy()],
            intercepts=[U[-1].copy(), np.asarray(intercept, dtype=float).copy()],
            activation=op.activation if program.has_cone else "gated_relu",
            gates=None if program.has_cone else program.gates[:, pattern].copy(),
            negative_slope=op.negative_slope if program.has_cone else None,
        )

    def to_torch(self, squeeze_output: bool = False, dtype=None):
        """The same network as a ``torch.nn.Module`` (needs the ``torch`` extra)."""
        from .export.torch import to_torch_module

        return to_torch_module(self, squeeze_output=squeeze_output, dtype=dtype)
