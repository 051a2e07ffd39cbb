"""ConvexMLPClassifier extras: class_weight, predict_proba by the loss's link,
decision_function."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, softmax
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError

from convexnn import ConvexMLPClassifier

N_PATTERNS = 15


def _imbalanced(seed: int = 0, n_samples: int = 80):
    """Two features, string labels, about one "rare" sample for four "common" ones."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, 2))
    score = X[:, 0] + 0.5 * X[:, 1] ** 2 - 1.2
    y = np.where(score > 0, "rare", "common")
    assert 8 <= np.sum(y == "rare") <= n_samples // 2  # precondition: imbalanced, not empty
    return X, y


def _three_classes(seed: int = 1, n_samples: int = 90):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, 2))
    score = X[:, 0] + X[:, 1] ** 2
    y = np.digitize(score, np.quantile(score, [0.6, 0.85]))  # ints 0, 1, 2, imbalanced
    return X, y


def _fit(X, y, **kwargs):
    params = dict(activation="gated_relu", alpha=1e-2, n_patterns=N_PATTERNS, random_state=0,
                  tol=1e-6, max_iter=20_000)
    sample_weight = kwargs.pop("sw", None)
    params.update(kwargs)
    return ConvexMLPClassifier(**params).fit(X, y, sample_weight=sample_weight)


def _logistic_objective(est, X, y, weights) -> float:
    """J of the fitted network, from its weights, with the given (unnormalised) weights."""
    W1, W2 = est.coefs_
    b1, b2 = est.intercepts_
    gates = est.gates_[:, est.neuron_patterns_]
    h = ((X @ gates[:-1] + gates[-1]) > 0) * (X @ W1 + b1)
    f = (h @ W2 + b2)[:, 0]
    s = np.where(y == est.classes_[1], 1.0, -1.0)
    w = weights / weights.sum()
    decay = np.sum(W1**2) + np.sum(b1**2) + np.sum(W2**2)
    return float(w @ np.logaddexp(0.0, -s * f) + est.alpha / 2 * decay)


# --------------------------------------------------------------------------- class_weight


def test_balanced_class_weight_equals_the_equivalent_sample_weight_fit():
    X, y = _imbalanced()
    labels, counts = np.unique(y, return_counts=True)
    # scikit-learn's "balanced": n_samples / (n_classes * count of the sample's class)
    balanced = len(y) / (len(labels) * counts[np.searchsorted(labels, y)])
    by_class = _fit(X, y, class_weight="balanced")
    by_sample = ConvexMLPClassifier(
        "gated_relu", alpha=1e-2, n_patterns=N_PATTERNS, random_state=0, tol=1e-6, max_iter=20_000
    ).fit(X, y, sample_weight=balanced)
    np.testing.assert_allclose(by_class.decision_function(X), by_sample.decision_function(X),
                               rtol=1e-10, atol=1e-10)
    assert by_class.certificate_.primal == pytest.approx(by_sample.certificate_.primal, rel=1e-10)
    # the weights really enter the objective: J by hand with the balanced weights
    assert by_class.certificate_.primal == pytest.approx(
        _logistic_objective(by_class, X, y, balanced), rel=1e-10
    )
    # ... and change the fit: the rare class gets a larger score than without weights
    plain = _fit(X, y)
    rare = y == "rare"
    assert by_class.decision_function(X)[rare].mean() > plain.decision_function(X)[rare].mean()
    assert not np.allclose(by_class.coefs_[1].sum(), plain.coefs_[1].sum())


def test_dict_class_weight_multiplies_sample_weight():
    X, y = _imbalanced(seed=2)
    sw = np.random.default_rng(3).uniform(0.5, 2.0, size=len(y))
    by_dict = _fit(X, y, class_weight={"rare": 4.0}, sw=sw)  # "common" defaults to 1
    combined = sw * np.where(y == "rare", 4.0, 1.0)
    by_sample = _fit(X, y, sw=combined)
    np.testing.assert_allclose(by_dict.decision_function(X), by_sample.decision_function(X),
                               rtol=1e-10, atol=1e-10)
    assert by_dict.certificate_.primal == pytest.approx(
        _logistic_objective(by_dict, X, y, combined), rel=1e-10
    )


def test_multiclass_balanced_class_weight():
    X, y = _three_classes()
    counts = np.bincount(y)
    balanced = len(y) / (3 * counts[y])
    a = _fit(X, y, class_weight="balanced")
    b = _fit(X, y, sw=balanced)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-9, atol=1e-12)


def test_class_weight_is_a_parameter():
    est = ConvexMLPClassifier(class_weight={0: 2.0})
    assert est.get_params()["class_weight"] == {0: 2.0}
    assert clone(est).class_weight == {0: 2.0}
    assert ConvexMLPClassifier().class_weight is None


@pytest.mark.parametrize(
    "class_weight, error, match",
    [
        ("balance", InvalidParameterError, "class_weight"),
        (3.0, InvalidParameterError, "class_weight"),
        ({"cat": 2.0}, ValueError, r"class_weight=\{'cat': 2.0\} does not fit the labels"),
    ],
)
def test_bad_class_weight_is_a_clear_error(class_weight, error, match):
    X, y = _imbalanced()
    with pytest.raises(error, match=match):
        _fit(X, y, class_weight=class_weight)


def test_class_weight_zero_everywhere_is_refused():
    X, y = _imbalanced()
    with pytest.raises(ValueError, match="sums to zero"):
        _fit(X, y, class_weight={"rare": 0.0, "common": 0.0})


# --------------------------------------------------------------------------- probabilities


def test_binary_predict_proba_is_the_sigmoid_of_decision_function():
    X, y = _imbalanced(seed=4)
    est = _fit(X, y, tol=1e-3)
    scores = est.decision_function(X)
    assert scores.shape == (len(y),)
    proba = est.predict_proba(X)
    assert proba.shape == (len(y), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(proba[:, 1], expit(scores), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(est.predict_log_proba(X), np.log(proba), rtol=1e-13)
    assert np.array_equal(est.predict(X), est.classes_[np.argmax(proba, axis=1)])
    # decision_function is the raw network output
    np.testing.assert_allclose(scores, est.to_network().forward(X)[:, 0], rtol=0, atol=0)


def test_multiclass_predict_proba_is_the_softmax_of_decision_function():
    X, y = _three_classes(seed=5)
    est = _fit(X, y, tol=1e-3)
    scores = est.decision_function(X)
    assert scores.shape == (len(y), 3)
    proba = est.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-14)
    np.testing.assert_allclose(proba, softmax(scores, axis=1), rtol=1e-12, atol=1e-15)
    assert np.array_equal(est.predict(X), est.classes_[np.argmax(proba, axis=1)])
    assert est.classes_.tolist() == [0, 1, 2]


def test_predict_proba_is_calibrated_by_the_loss():
    # at the optimum the free intercept's optimality condition says: the mean predicted
    # probability of each class equals its frequency (logistic loss, sigmoid link)
    X, y = _imbalanced(seed=6)
    est = _fit(X, y, tol=1e-9, max_iter=50_000)
    assert est.certificate_.converged
    frequencies = np.array([np.mean(y == c) for c in est.classes_])
    np.testing.assert_allclose(est.predict_proba(X).mean(axis=0), frequencies, atol=1e-5)
