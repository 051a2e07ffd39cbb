"""What an exporter needs from a fitted model: its torch module and its arrays.

A "model" is a fitted convexnn estimator (anything with ``to_torch()`` and
``to_network()``), or a scikit-learn :class:`~sklearn.pipeline.Pipeline` of a
:class:`~sklearn.preprocessing.StandardScaler` followed by one (what ``convexnn fit``
saves). For a pipeline the scaler becomes the first operation of the exported model,
``(x - mean_) / scale_``, so the exported file takes raw features.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["unpack_model", "network_arrays", "torch_module"]


def unpack_model(model: Any) -> tuple[Any, Any]:
    """Split ``model`` into ``(scaler or None, estimator)`` and check it is fitted.

    Raises
    ------
    ValueError
        If ``model`` is neither a convexnn estimator nor a StandardScaler + estimator
        pipeline, or is not fitted.
    """
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.utils.validation import check_is_fitted

    scaler = None
    est = model
    if isinstance(model, Pipeline):
        steps = [step for _, step in model.steps]
        if len(steps) != 2 or type(steps[0]) is not StandardScaler:
            described = ", ".join(type(step).__name__ for step in steps)
            raise ValueError(
                f"cannot export a Pipeline of ({described}): only a StandardScaler followed by "
                "one convexnn estimator (what `convexnn fit` saves) can be exported"
            )
        scaler, est = steps
    if not (hasattr(est, "to_torch") and hasattr(est, "to_network")):
        raise ValueError(
            f"cannot export a {type(est).__name__}: expected a convexnn estimator or a "
            "Pipeline(StandardScaler, convexnn estimator)"
        )
    check_is_fitted(est)
    if scaler is not None:
        check_is_fitted(scaler)
    return scaler, est


def _is_classifier(est: Any) -> bool:
    from sklearn.base import is_classifier

    return bool(is_classifier(est)) and hasattr(est, "classes_")


def _scaler_arrays(scaler: Any, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, scale)`` of a fitted StandardScaler (zeros / ones where it does not centre
    or scale)."""
    mean = getattr(scaler, "mean_", None)
    scale = getattr(scaler, "scale_", None)
    mean = np.zeros(n_features) if mean is None or not scaler.with_mean else mean
    scale = np.ones(n_features) if scale is None or not scaler.with_std else scale
    return np.asarray(mean, dtype=np.float64), np.asarray(scale, dtype=np.float64)


def torch_module(model: Any, *, dtype=None, probabilities: bool = True):
    """A ``torch.nn.Module`` computing the model's raw outputs from raw features.

    Parameters
    ----------
    model : estimator or Pipeline
        See the module docstring.
    dtype : torch.dtype, default torch.float64
    probabilities : bool, default=True
        For classifiers, return ``(decision_function, probabilities)``: the scores of
        :meth:`decision_function` and :meth:`predict_proba` (the loss's link: sigmoid
        of the logit for two classes, softmax for more). Otherwise return the scores
        only (regressors always return :meth:`predict`'s values).

    Returns
    -------
    module : torch.nn.Module
        In evaluation mode.
    """
    import torch
    from torch import nn

    scaler, est = unpack_model(model)
    dtype = torch.float64 if dtype is None else dtype
    network = est.to_torch(dtype=dtype)
    binary = _is_classifier(est) and len(est.classes_) == 2
    with_proba = probabilities and _is_classifier(est)
    if scaler is not None:
        mean, scale = _scaler_arrays(scaler, est.n_features_in_)
    else:
        mean = scale = None

    class ExportedModel(nn.Module):
        """Standardization (if any), the network, and the class probabilities."""

        def __init__(self):
            super().__init__()
            self.network = network
            self.standardize = mean is not None
            if self.standardize:
                self.register_buffer("mean", torch.as_tensor(mean, dtype=dtype))
                self.register_buffer("scale", torch.as_tensor(scale, dtype=dtype))

        def forward(self, x):
            if self.standardize:
                x = (x - self.mean) / self.scale
            scores = self.network(x)
            if not with_proba:
                return scores
            if binary:
                p = torch.sigmoid(scores)
                return scores, torch.stack([1 - p, p], dim=1)
            return scores, torch.softmax(scores, dim=1)

    return ExportedModel().eval()


def network_arrays(model: Any) -> dict[str, np.ndarray]:
    """The fitted network as named float64 arrays (plus a few descriptive strings).

    Keys: ``W1, W2`` (``coefs_``), ``b1, b2`` (``intercepts_``), one key per other
    array or number field of the estimator's network (for
    :class:`~convexnn.network.Network`: ``gates`` for gated ReLU, ``amplitudes`` for
    threshold units, ``negative_slope`` for leaky ReLU; other network types, e.g. the deep 1-D chains, export their own
    fields under their names), ``activation``, ``output``
    (``"decision_function"`` or ``"predict"``), ``classes`` for classifiers (when
    the labels are numbers or strings), and ``scaler_mean, scaler_scale`` for a
    pipeline (apply ``(x - scaler_mean) / scaler_scale`` first).
    """
    scaler, est = unpack_model(model)
    network = est.to_network()
    arrays: dict[str, np.ndarray] = {}
    for field in dataclasses.fields(network):
        value = getattr(network, field.name)
        if field.name == "coefs":
            arrays["W1"], arrays["W2"] = (np.asarray(v, dtype=np.float64) for v in value)
        elif field.name == "intercepts":
            arrays["b1"], arrays["b2"] = (np.asarray(v, dtype=np.float64) for v in value)
        elif isinstance(value, str):
            arrays[field.name] = np.array(value)
        elif isinstance(value, (np.ndarray, float, int, np.number)) and not isinstance(value, bool):
            arrays[field.name] = np.asarray(value, dtype=np.float64)
    arrays["output"] = np.array("decision_function" if _is_classifier(est) else "predict")
    if _is_classifier(est):
        classes = np.asarray(est.classes_)
        if classes.dtype.kind in "biufU":
            arrays["classes"] = classes
        elif all(isinstance(c, str) for c in classes.tolist()):
            arrays["classes"] = classes.astype(str)
    if scaler is not None:
        arrays["scaler_mean"], arrays["scaler_scale"] = _scaler_arrays(scaler, est.n_features_in_)
    return arrays
