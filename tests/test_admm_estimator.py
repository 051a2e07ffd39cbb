"""``solver="admm"`` on the estimators: what it fits, and the clear refusals.

ADMM (:class:`convexnn.solvers.ADMM`) solves the cone-constrained programs (ReLU,
leaky ReLU, abs) with the squared loss. Checked here: the regressor fits with it and its
certificate agrees with FISTA's on the same sampled program within the two certified
gaps (each primal is within its own gap of the common optimum, so the two primals are
within the sum of the gaps of each other, and each dual is below the other's primal);
gated ReLU and the classifiers' losses are refused before any work with a
``ValueError`` that names the solver to use.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from convexnn import ConvexMLPClassifier, ConvexMLPRegressor, ConvexMLPRegressorCV
from convexnn.solvers import ADMM, FISTA


def _data(n_samples: int = 80, seed: int = 0, n_outputs: int = 1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, 3))
    y = np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2] - 0.3 * X[:, 2] ** 2
    if n_outputs > 1:
        y = np.column_stack([y, np.cos(X[:, 1]) - X[:, 0]])
    return X, y


def _hand_J(est, X, y) -> float:
    """``J`` of the exported ReLU network, from its weights."""
    W1, W2 = est.coefs_
    b1, b2 = est.intercepts_
    f = np.maximum(X @ W1 + b1, 0.0) @ W2 + b2
    Y = y.reshape(len(y), -1)
    return 0.5 * np.mean(np.sum((f - Y) ** 2, axis=1)) + est.alpha / 2 * (
        np.sum(W1**2) + np.sum(b1**2) + np.sum(W2**2)
    )


@pytest.mark.parametrize("n_outputs", [1, 2])
def test_admm_regressor_agrees_with_fista_within_the_certified_gaps(n_outputs):
    X, y = _data(n_outputs=n_outputs)
    params = dict(activation="relu", alpha=1e-2, n_patterns=30, tol=1e-5, max_iter=50_000,
                  random_state=0)
    admm = ConvexMLPRegressor(solver="admm", **params).fit(X, y)
    fista = ConvexMLPRegressor(solver="fista", **params).fit(X, y)
    np.testing.assert_array_equal(admm.gates_, fista.gates_)  # the same program
    a, f = admm.certificate_, fista.certificate_
    assert a.converged and f.converged
    assert admm.stop_reason_ == fista.stop_reason_ == "converged"
    assert a.primal == pytest.approx(_hand_J(admm, X, y), rel=1e-10)
    assert a.cone_violation <= 1e-12
    # weak duality across the two solvers, and the primals within the gaps
    assert a.dual <= f.primal + 1e-12 and f.dual <= a.primal + 1e-12
    assert abs(a.primal - f.primal) <= a.gap + f.gap
    assert 0 <= a.gap <= 1e-5 * a.primal
    np.testing.assert_allclose(admm.predict(X), fista.predict(X), atol=0.05 * np.std(y))
    assert admm.n_iter_ > 0


@pytest.mark.parametrize("activation", ["leaky_relu", "abs"])
def test_admm_other_cone_activations(activation):
    X, y = _data(n_samples=50, seed=1)
    params = dict(activation=activation, alpha=1e-2, n_patterns=12, tol=1e-4, max_iter=50_000,
                  random_state=0)
    admm = ConvexMLPRegressor(solver="admm", **params).fit(X, y)
    fista = ConvexMLPRegressor(solver="fista", **params).fit(X, y)
    a, f = admm.certificate_, fista.certificate_
    assert a.converged and a.dual <= f.primal + 1e-12 and f.dual <= a.primal + 1e-12


def _no_solve(monkeypatch):
    def fail(self, *args, **kwargs):  # pragma: no cover - must not be reached
        raise AssertionError("ADMM.solve ran before the refusal")

    monkeypatch.setattr(ADMM, "solve", fail)


def test_admm_refuses_gated_relu_with_what_to_use(monkeypatch):
    X, y = _data()
    _no_solve(monkeypatch)
    with pytest.raises(ValueError, match=r"solver 'admm' handles the ReLU program only; use "
                                         r"solver='fista'.*activation='gated_relu'"):
        ConvexMLPRegressor(activation="gated_relu", solver="admm", n_patterns=10).fit(X, y)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("activation", ["relu", "gated_relu"])
def test_admm_refuses_the_classifiers_losses(monkeypatch, n_classes, activation):
    X, score = _data()
    y = np.digitize(score, np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1]))
    _no_solve(monkeypatch)
    if activation == "relu":
        loss = "LogisticLoss" if n_classes == 2 else "SoftmaxCrossEntropy"
        match = rf"solver 'admm' cannot solve this program: the {loss} .*squared loss.*solver='fista'"
    else:
        match = r"solver 'admm' handles the ReLU program only; use solver='fista'"
    with pytest.raises(ValueError, match=match):
        ConvexMLPClassifier(activation=activation, solver="admm", n_patterns=10).fit(X, y)


def test_admm_is_a_valid_solver_string_and_unknown_names_are_not():
    X, y = _data(n_samples=30)
    ConvexMLPRegressor(solver="admm", n_patterns=6, alpha=1e-1, random_state=0).fit(X, y)
    cv = ConvexMLPRegressorCV(solver="admm", n_patterns=6, n_alphas=2, cv=2, tol=1e-2,
                              random_state=0).fit(X, y)
    assert cv.best_estimator_.solver == "admm" and cv.certificate_.converged
    with pytest.raises(InvalidParameterError, match=r"'solver' parameter .*'admm'"):
        ConvexMLPRegressor(solver="adm").fit(X, y)


def test_a_gated_only_solver_refusing_relu_mentions_admm():
    X, y = _data(n_samples=30)

    class GatedOnly(FISTA):
        handles_cone = False

    with pytest.raises(ValueError, match=r"does not handle the cone-constrained ReLU program; "
                                         r"use solver='fista', 'admm' \(squared loss\)"):
        ConvexMLPRegressor(activation="relu", solver=GatedOnly(), n_patterns=6).fit(X, y)
