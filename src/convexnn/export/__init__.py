"""Exporters of fitted convexnn models to other frameworks and plain files.

- :func:`convexnn.export.onnx.to_onnx` (also ``estimator.to_onnx(path)``): an ONNX
  graph, run by onnxruntime and most inference engines.
- :func:`save_torch`: a ``torch.export`` program (``.pt2``), loaded without convexnn by
  ``torch.export.load(path).module()``.
- :func:`save_npz`: the network's weights as named float64 arrays in a NumPy ``.npz``
  archive (no pickle), for any language that reads ``.npy``.
- :func:`export_model`: one of the three by name (used by ``convexnn export``).

Each accepts a fitted convexnn estimator or a ``Pipeline(StandardScaler, estimator)``
(what ``convexnn fit`` saves); the scaler is included, so exported models take raw
features.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ._model import network_arrays, torch_module, unpack_model

__all__ = ["EXPORT_FORMATS", "export_model", "save_npz", "save_torch", "torch_module"]

#: Formats :func:`export_model` writes.
EXPORT_FORMATS = ("onnx", "torch", "npz")


def save_npz(model: Any, path: str | os.PathLike[str]) -> Path:
    """Write the fitted network's arrays to an ``.npz`` archive (keys: see
    :func:`convexnn.export._model.network_arrays`); read it with
    ``np.load(path, allow_pickle=False)``.

    The forward pass is ``act(x @ W1 + b1) @ W2 + b2`` (after
    ``(x - scaler_mean) / scaler_scale`` when those keys exist), where ``act`` is
    named by ``activation``.
    """
    arrays = network_arrays(model)
    path = Path(os.fspath(path))
    with open(path, "wb") as fh:
        np.savez(fh, allow_pickle=False, **arrays)
    return path


def save_torch(model: Any, path: str | os.PathLike[str]) -> Path:
    """Write the model as a ``torch.export`` program (``.pt2``), float64.

    ``torch.export.load(path).module()(X)`` returns what the ONNX export returns:
    ``predictions`` for regressors, ``(decision_function, probabilities)`` for
    classifiers. Needs the ``torch`` extra.
    """
    try:
        import torch
        from torch.export import Dim
    except ImportError as exc:
        raise ImportError(
            "exporting to torch needs the torch extra: pip install 'convexnn[torch]'"
        ) from exc
    _, est = unpack_model(model)
    module = torch_module(model)
    example = torch.zeros((2, est.n_features_in_), dtype=torch.float64)
    program = torch.export.export(module, (example,), dynamic_shapes=({0: Dim("n_samples")},))
    path = Path(os.fspath(path))
    torch.export.save(program, str(path))
    return path


def export_model(model: Any, path: str | os.PathLike[str], format: str) -> Path:
    """Export ``model`` to ``path`` in ``format`` (one of :data:`EXPORT_FORMATS`)."""
    if format == "onnx":
        from .onnx import to_onnx

        return to_onnx(model, path)
    if format == "torch":
        return save_torch(model, path)
    if format == "npz":
        return save_npz(model, path)
    raise ValueError(f"unknown export format {format!r}; choose one of {', '.join(EXPORT_FORMATS)}")

