"""Export a fitted model to ONNX through ``torch.onnx.export``.

Needs the ``torch`` and ``onnx`` extras (``pip install 'convexnn[torch,onnx]'``; the
``onnx`` extra brings ``onnx``, ``onnxscript`` for torch's exporter and
``onnxruntime`` to run the file).

The ONNX graph has one input ``X`` of shape ``(n_samples, n_features)`` (any number of
rows) and

- regressors: one output ``predictions``, equal to :meth:`predict`;
- classifiers: ``decision_function`` (equal to :meth:`decision_function`) and
  ``probabilities`` (equal to :meth:`predict_proba`, columns in ``classes_`` order).
  The label of a row is ``classes_[argmax(probabilities)]``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from ._model import _is_classifier, torch_module, unpack_model

__all__ = ["to_onnx"]

_DTYPES = ("float64", "float32")


def to_onnx(
    model: Any,
    path: str | os.PathLike[str],
    *,
    dtype: str = "float64",
    opset_version: int | None = None,
    dynamo: bool = True,
) -> Path:
    """Write ``model`` (a fitted estimator, or a StandardScaler + estimator Pipeline) to
    an ONNX file.

    Parameters
    ----------
    model : estimator or Pipeline
        Fitted convexnn estimator, or ``Pipeline(StandardScaler, estimator)``; the
        scaler becomes the graph's first operation, so the file takes raw features.
    path : str or path-like
        Destination ``.onnx`` file (a single self-contained file).
    dtype : {"float64", "float32"}, default="float64"
        Element type of the input, weights and outputs. ``"float64"`` reproduces the
        estimator to rounding; ``"float32"`` suits runtimes without double kernels.
    opset_version : int, optional
        ONNX opset; torch's default when None.
    dynamo : bool, default=True
        Use torch's ``torch.export``-based exporter (needs ``onnxscript``; a few
        seconds). ``False`` uses the older TorchScript exporter (fast, deprecated by
        torch, kept for torch builds without ``onnxscript``).

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    ImportError
        If torch, onnx (or, with ``dynamo=True``, onnxscript) is missing.
    ValueError
        If ``model`` is not a fitted convexnn model, or ``dtype`` is not supported.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
    _, est = unpack_model(model)
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
        import torch
    except ImportError as exc:
        raise ImportError(
            "to_onnx() needs the torch and onnx extras: pip install 'convexnn[torch,onnx]'"
        ) from exc
    if dynamo:
        try:
            import onnxscript  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                "to_onnx(dynamo=True) needs onnxscript (in the onnx extra): pip install "
                "'convexnn[onnx]', or pass dynamo=False for torch's TorchScript exporter"
            ) from exc

    torch_dtype = torch.float64 if dtype == "float64" else torch.float32
    module = torch_module(model, dtype=torch_dtype)
    example = torch.zeros((2, est.n_features_in_), dtype=torch_dtype)
    if _is_classifier(est):
        outputs = ["decision_function", "probabilities"]
    else:
        outputs = ["predictions"]
    path = Path(os.fspath(path))
    kwargs: dict[str, Any] = {
        "input_names": ["X"],
        "output_names": outputs,
        "opset_version": opset_version,
    }
    with warnings.catch_warnings():
        if dynamo:
            from torch.export import Dim

            kwargs.update(
                dynamo=True,
                dynamic_shapes=({0: Dim("n_samples")},),
                external_data=False,
                verbose=False,
            )
        else:
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.")
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export")
            kwargs.update(
                dynamo=False,
                dynamic_axes={name: {0: "n_samples"} for name in ["X", *outputs]},
            )
        torch.onnx.export(module, (example,), str(path), **kwargs)
    return path
