"""Export a :class:`~convexnn.network.Network` as a ``torch.nn.Module``."""

from __future__ import annotations

import numpy as np

__all__ = ["to_torch_module", "torch_builder"]


def torch_builder(dtype=None):
    """``(torch, nn, t)`` for building an exported module: the torch modules and
    ``t(a)``, which turns an array into a tensor of ``dtype`` (default float64).

    Raises
    ------
    ImportError
        When torch is not installed, with the extra to install.
    """
    try:
        import torch
        from torch import nn
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("to_torch() needs the torch extra: pip install 'convexnn[torch]'") from exc

    dtype = torch.float64 if dtype is None else dtype

    def t(a: np.ndarray):
        return torch.as_tensor(np.ascontiguousarray(a, dtype=float), dtype=dtype)

    return torch, nn, t


def to_torch_module(network, squeeze_output: bool = False, dtype=None):
    """Build a ``torch.nn.Module`` computing ``network.forward``.

    Parameters
    ----------
    network : Network
    squeeze_output : bool
        Return shape ``(n_samples,)`` instead of ``(n_samples, 1)`` (matches the
        estimators' 1-D ``decision_function``/``predict``).
    dtype : torch.dtype, default torch.float64
    """
    torch, nn, t = torch_builder(dtype)

    class TwoLayerNetwork(nn.Module):
        """``act(x W1 + b1) W2 + b2`` with ``act`` ReLU, leaky ReLU (the network's
        negative slope), absolute value or gated ReLU (the gates are buffers); threshold
        units output ``s * 1[x W1 + b1 > 0]`` with a trainable amplitude ``s``."""

        def __init__(self):
            super().__init__()
            self.activation = network.activation
            self.squeeze_output = squeeze_output
            self.W1 = nn.Parameter(t(network.coefs[0]))
            self.b1 = nn.Parameter(t(network.intercepts[0]))
            self.W2 = nn.Parameter(t(network.coefs[1]))
            self.b2 = nn.Parameter(t(network.intercepts[1]))
            if network.activation == "gated_relu":
                self.register_buffer("gate_W", t(network.gates[:-1]))
                self.register_buffer("gate_b", t(network.gates[-1]))
            if network.activation == "threshold":
                self.amplitudes = nn.Parameter(t(network.amplitudes))
            if network.activation == "leaky_relu":
                # a buffer of the module's dtype: a Python float would be exported to
                # ONNX as a float32 constant
                self.register_buffer("negative_slope", t(np.asarray(network.negative_slope)))

        def forward(self, x):
            pre = x @ self.W1 + self.b1
            if self.activation == "relu":
                h = torch.relu(pre)
            elif self.activation == "leaky_relu":
                # not F.leaky_relu: onnxruntime has no double LeakyRelu kernel
                h = torch.where(pre > 0, pre, self.negative_slope * pre)
            elif self.activation == "abs":
                h = torch.abs(pre)
            elif self.activation == "threshold":
                h = (pre > 0).to(pre.dtype) * self.amplitudes
            else:
                h = ((x @ self.gate_W + self.gate_b) > 0).to(pre.dtype) * pre
            out = h @ self.W2 + self.b2
            return out[:, 0] if self.squeeze_output else out

    return TwoLayerNetwork()
