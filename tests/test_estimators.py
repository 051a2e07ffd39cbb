"""Tests of the scikit-learn estimators ConvexMLPRegressor and ConvexMLPClassifier."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from convexnn import Certificate, ConvexMLPClassifier, ConvexMLPRegressor, Network
from convexnn.solvers import FISTA

# Fits here only need a network, not a certified one, unless a test says otherwise;
# tests about convergence use pytest.warns, which records warnings regardless.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ACTIVATIONS = ["relu", "gated_relu"]
FAST = dict(n_patterns=10, tol=1e-3, max_iter=300, random_state=0)


# --------------------------------------------------------------------------- data


def _regression(n=40, d=3, n_outputs=1, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Y = np.column_stack([np.sin(2 * X[:, 0]) + X[:, 1] ** 2, X[:, 0] * X[:, -1]][:n_outputs])
    Y = Y + 0.05 * rng.normal(size=Y.shape)
    return X, (Y[:, 0] if n_outputs == 1 else Y)


def _classification(n=45, d=3, n_classes=2, seed=0, labels=None):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    if n_classes == 2:
        codes = (X[:, 0] * X[:, 1] + 0.2 * rng.normal(size=n) > 0).astype(int)
    else:
        codes = np.argmax(np.column_stack([X[:, 0], X[:, 1], -X[:, 0] - X[:, 1]]), axis=1)
    labels = np.arange(n_classes) if labels is None else np.asarray(labels)
    return X, labels[codes]


def _hand_forward(est, X):
    """relu(X W1 + b1) W2 + b2 (gated ReLU: each unit gated by gates_[:, neuron_patterns_])."""
    W1, W2 = est.coefs_
    b1, b2 = est.intercepts_
    pre = X @ W1 + b1
    if est.activation == "relu":
        h = np.maximum(pre, 0.0)
    else:
        g = est.gates_[:, est.neuron_patterns_]
        h = (X @ g[:-1] + g[-1] > 0) * pre
    return h @ W2 + b2


def _hand_objective(est, X, y, sample_weight=None):
    """J of DESIGN.md §1 with normalised sample weights, from the exported weights."""
    X = np.asarray(X, dtype=float)
    Z = _hand_forward(est, X)
    w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, float)
    w = w / w.sum()
    if isinstance(est, ConvexMLPRegressor):
        Y = np.asarray(y, float).reshape(len(X), -1)
        per = 0.5 * np.sum((Z - Y) ** 2, axis=1)
    elif len(est.classes_) == 2:
        s = np.where(np.asarray(y) == est.classes_[1], 1.0, -1.0)
        per = np.logaddexp(0.0, -s * Z[:, 0])
    else:
        idx = np.searchsorted(est.classes_, y)
        m = Z.max(axis=1)
        per = m + np.log(np.exp(Z - m[:, None]).sum(axis=1)) - Z[np.arange(len(X)), idx]
    W1, W2 = est.coefs_
    decay = np.sum(W1**2) + np.sum(est.intercepts_[0] ** 2) + np.sum(W2**2)
    return float(w @ per) + 0.5 * est.alpha * float(decay)


# --------------------------------------------------------------------------- scikit-learn checks

_SAMPLE_WEIGHT_REASON = (
    "genuine limitation: the program's optimum pins the predictions down only to "
    "~sqrt(tol) (first-order solver stopped at a duality gap), far from the check's "
    "rtol=1e-7; and sampler='data' draws gates through random training rows, so "
    "repeating rows changes the sampled patterns. Integer-weight equivalence is tested "
    "at the level of the objective in test_integer_weights_equal_repeated_rows."
)


def _expected_failed_checks(estimator):
    failed = {"check_sample_weight_equivalence_on_dense_data": _SAMPLE_WEIGHT_REASON}
    return failed


CHECKED = [
    Est(activation=a, n_patterns=20, max_iter=100, random_state=0)
    for Est in (ConvexMLPRegressor, ConvexMLPClassifier)
    for a in ACTIVATIONS
] + [
    # the other cone-program activations (tests/test_piecewise_linear.py), one estimator each
    ConvexMLPRegressor("leaky_relu", negative_slope=0.1, n_patterns=20, max_iter=100, random_state=0),
    ConvexMLPClassifier("abs", n_patterns=20, max_iter=100, random_state=0),
]


@parametrize_with_checks(CHECKED, expected_failed_checks=_expected_failed_checks, xfail_strict=True)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# --------------------------------------------------------------------------- predictions


@pytest.mark.parametrize("n_outputs", [1, 2])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_regressor_predict_is_the_numpy_forward_pass(activation, n_outputs):
    X, y = _regression(n_outputs=n_outputs)
    est = ConvexMLPRegressor(activation=activation, alpha=1e-2, **FAST).fit(X, y)
    Xt = _regression(n=17, seed=5)[0]
    pred = est.predict(Xt)
    assert pred.shape == ((17,) if n_outputs == 1 else (17, 2))
    expected = _hand_forward(est, Xt)
    np.testing.assert_allclose(pred.reshape(17, -1), expected, rtol=1e-10, atol=1e-10)
    W1, W2 = est.coefs_
    assert W1.shape == (3, est.n_neurons_) and W2.shape == (est.n_neurons_, n_outputs)
    assert est.intercepts_[0].shape == (est.n_neurons_,) and est.intercepts_[1].shape == (n_outputs,)
    assert est.n_outputs_ == n_outputs and est.n_neurons_ >= 1
    # the value object gives the same outputs
    net = est.to_network()
    assert isinstance(net, Network)
    np.testing.assert_allclose(net.forward(Xt), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_classifier_outputs(activation, n_classes):
    labels = ["cat", "dog"] if n_classes == 2 else ["b", "a", "c"]
    X, y = _classification(n_classes=n_classes, labels=labels)
    est = ConvexMLPClassifier(activation=activation, alpha=1e-2, **FAST).fit(X, y)
    np.testing.assert_array_equal(est.classes_, sorted(labels))
    Xt = _classification(n=23, seed=7)[0]
    Z = _hand_forward(est, Xt)
    dec = est.decision_function(Xt)
    if n_classes == 2:
        assert dec.shape == (23,)
        np.testing.assert_allclose(dec, Z[:, 0], rtol=1e-10, atol=1e-10)
    else:
        assert dec.shape == (23, 3)
        np.testing.assert_allclose(dec, Z, rtol=1e-10, atol=1e-10)
    proba = est.predict_proba(Xt)
    assert proba.shape == (23, n_classes)
    assert np.all(proba >= 0) and np.all(proba <= 1)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    pred = est.predict(Xt)
    assert set(pred) <= set(labels)
    np.testing.assert_array_equal(pred, est.classes_[proba.argmax(axis=1)])
    np.testing.assert_allclose(est.predict_log_proba(Xt), np.log(proba), atol=1e-12)
    if n_classes == 2:  # the output is the logit of classes_[1]
        np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-Z[:, 0])), rtol=1e-12)
    # training accuracy far above chance on this easy problem
    assert est.score(X, y) >= 0.8


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("kind", ["reg1", "reg2", "binary", "multiclass"])
def test_to_torch_matches(kind, activation):
    torch = pytest.importorskip("torch")
    if kind.startswith("reg"):
        X, y = _regression(n_outputs=int(kind[-1]))
        est = ConvexMLPRegressor(activation=activation, alpha=1e-2, **FAST).fit(X, y)
        expected = est.predict(X)
    else:
        X, y = _classification(n_classes=2 if kind == "binary" else 3)
        est = ConvexMLPClassifier(activation=activation, alpha=1e-2, **FAST).fit(X, y)
        expected = est.decision_function(X)
    module = est.to_torch()
    assert isinstance(module, torch.nn.Module)
    with torch.no_grad():
        out = module(torch.as_tensor(X)).numpy()
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    with torch.no_grad():
        out32 = est.to_torch(dtype=torch.float32)(torch.as_tensor(X, dtype=torch.float32)).numpy()
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    # the module's weights are the estimator's
    np.testing.assert_array_equal(module.W1.detach().numpy(), est.coefs_[0])


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_patterns(activation):
    X, y = _regression()
    est = ConvexMLPRegressor(activation=activation, **FAST).fit(X, y)
    Xt = _regression(n=19, seed=3)[0]
    M = est.activation_patterns(Xt)
    assert M.dtype == bool and M.shape == (19, est.gates_.shape[1])
    g = est.gates_
    np.testing.assert_array_equal(M, Xt @ g[:-1] + g[-1] > 0)
    assert est.gates_.shape[0] == 4 and 1 <= est.gates_.shape[1]
    assert est.neuron_patterns_.shape == (est.n_neurons_,)
    assert est.neuron_patterns_.min() >= 0 and est.neuron_patterns_.max() < g.shape[1]
    with pytest.raises(ValueError, match="3 features"):
        est.activation_patterns(Xt[:, :2])


def test_fitted_attributes_absent_before_fit():
    from sklearn.exceptions import NotFittedError

    for est in (ConvexMLPRegressor(), ConvexMLPClassifier()):
        with pytest.raises(NotFittedError):
            est.predict(np.zeros((2, 3)))
        with pytest.raises(NotFittedError):
            est.to_torch()


def test_same_random_state_same_network():
    X, y = _regression()
    a = ConvexMLPRegressor(activation="gated_relu", **FAST).fit(X, y)
    b = ConvexMLPRegressor(activation="gated_relu", **FAST).fit(X, y)
    np.testing.assert_array_equal(a.gates_, b.gates_)
    np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])
    c = ConvexMLPRegressor(activation="gated_relu", **{**FAST, "random_state": 1}).fit(X, y)
    assert not np.array_equal(a.gates_, c.gates_)


# --------------------------------------------------------------------------- sample weights


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_zero_weights_equal_removed_rows(activation):
    X, y = _regression(seed=2)
    sw = np.ones(len(y))
    sw[::4] = 0.0
    kw = dict(activation=activation, alpha=1e-2, **FAST)
    a = ConvexMLPRegressor(**kw).fit(X, y, sample_weight=sw)
    b = ConvexMLPRegressor(**kw).fit(X[sw > 0], y[sw > 0])
    np.testing.assert_array_equal(a.gates_, b.gates_)
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-12, atol=1e-12)
    assert a.certificate_.primal == pytest.approx(b.certificate_.primal, rel=1e-12)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_integer_weights_equal_repeated_rows(activation):
    """With the same (explicit) gates, weight 2 is the same objective as a repeated row:
    both fits reach the same optimum, up to their certified gaps."""
    X, y = _regression(n=30, seed=4)
    gates = np.random.default_rng(0).normal(size=(4, 8))
    sw = np.random.default_rng(1).integers(1, 4, size=len(y))
    tol = 1e-6 if activation == "gated_relu" else 1e-4
    kw = dict(activation=activation, alpha=1e-2, sampler=gates, tol=tol, max_iter=20_000)
    a = ConvexMLPRegressor(**kw).fit(X, y, sample_weight=sw)
    b = ConvexMLPRegressor(**kw).fit(np.repeat(X, sw, axis=0), np.repeat(y, sw))
    ca, cb = a.certificate_, b.certificate_
    assert ca.converged and cb.converged
    # each dual bound is valid for the other's program (they are the same program)
    assert ca.primal >= cb.dual - 1e-12 and cb.primal >= ca.dual - 1e-12
    assert ca.primal == pytest.approx(cb.primal, rel=2 * tol)
    # and the weighted fit's J, recomputed on the repeated data, is the same number
    assert _hand_objective(a, np.repeat(X, sw, axis=0), np.repeat(y, sw)) == pytest.approx(ca.primal, rel=1e-9)
    # non-uniform weights do change the problem
    c = ConvexMLPRegressor(**kw).fit(X, y)
    assert abs(c.certificate_.primal - ca.primal) > 10 * tol * ca.primal


@pytest.mark.parametrize("Est", [ConvexMLPRegressor, ConvexMLPClassifier])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_certificate_primal_is_J_of_exported_network(Est, activation):
    if Est is ConvexMLPRegressor:
        X, y = _regression(n_outputs=2)
    else:
        X, y = _classification(n_classes=3)
    sw = np.random.default_rng(3).uniform(0.5, 2.0, len(y))
    est = Est(activation=activation, alpha=2e-2, **FAST).fit(X, y, sample_weight=sw)
    J = _hand_objective(est, X, y, sw)
    assert est.certificate_.primal == pytest.approx(J, rel=1e-6)
    assert _hand_objective(est, X, y) != pytest.approx(J, rel=1e-6)  # weights matter


# --------------------------------------------------------------------------- meta-estimators


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_pipeline_gridsearch_cross_val(activation):
    X, y = _classification(n=60, seed=1)
    X = X * [1.0, 100.0, 0.01] + 5.0
    pipe = make_pipeline(StandardScaler(), ConvexMLPClassifier(activation=activation, **FAST))
    pipe.fit(X, y)
    assert pipe.score(X, y) >= 0.8
    assert isinstance(pipe[-1].certificate_, Certificate)
    grid = GridSearchCV(pipe, {"convexmlpclassifier__alpha": [1e-3, 1e-1]}, cv=3)
    grid.fit(X, y)
    assert grid.best_params_["convexmlpclassifier__alpha"] in (1e-3, 1e-1)
    assert grid.predict(X).shape == (60,)
    scores = cross_val_score(Pipeline([("s", StandardScaler()), ("m", ConvexMLPRegressor(activation=activation, **FAST))]),
                             *_regression(n=45), cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))


def test_pandas_dataframe_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = _regression()
    df = pd.DataFrame(X, columns=["age", "height", "weight"])
    est = ConvexMLPRegressor(activation="gated_relu", **FAST).fit(df, pd.Series(y))
    np.testing.assert_array_equal(est.feature_names_in_, ["age", "height", "weight"])
    assert est.n_features_in_ == 3
    with pytest.warns(UserWarning, match="valid feature names"):
        np.testing.assert_allclose(est.predict(df), est.predict(X), rtol=0, atol=0)
    with pytest.raises(ValueError, match="feature names"):
        est.predict(df.rename(columns={"age": "AGE"}))
    clf = ConvexMLPClassifier(activation="relu", **FAST).fit(df, pd.Series(np.where(y > np.median(y), "hi", "lo")))
    np.testing.assert_array_equal(clf.classes_, ["hi", "lo"])
    assert not hasattr(ConvexMLPRegressor(**FAST).fit(X, y), "feature_names_in_")


# --------------------------------------------------------------------------- bad input


def _fit_raises(est, X, y, match, **fit_params):
    with pytest.raises(ValueError, match=match):
        est.fit(X, y, **fit_params)


@pytest.mark.parametrize("Est", [ConvexMLPRegressor, ConvexMLPClassifier])
def test_bad_input_raises_helpful_errors(Est):
    X, y = _regression() if Est is ConvexMLPRegressor else _classification()
    est = Est(**FAST)
    Xn = X.copy()
    Xn[3, 1] = np.nan
    _fit_raises(est, Xn, y, "Input X contains NaN")
    Xi = X.copy()
    Xi[0, 0] = np.inf
    _fit_raises(est, Xi, y, "Input X contains infinity")
    yn = y.astype(float)
    yn[2] = np.nan
    _fit_raises(est, X, yn, "Input y contains NaN")
    _fit_raises(est, X[:-1], y, "inconsistent numbers of samples")
    _fit_raises(est, X[:0], y[:0], "0 sample")
    _fit_raises(Est(**{**FAST, "n_patterns": 0}), X, y, "'n_patterns' parameter")
    _fit_raises(Est(**FAST, alpha=0.0), X, y, "'alpha' parameter .* range \\(0.0, inf\\)")
    _fit_raises(Est(**FAST, alpha=-1.0), X, y, "'alpha' parameter")
    _fit_raises(Est(**FAST, activation="tanh"), X, y, "'activation' parameter")
    _fit_raises(Est(**{**FAST, "tol": 0.0}), X, y, "'tol' parameter")
    _fit_raises(Est(**{k: v for k, v in FAST.items()}, sampler=np.ones((3, 5))), X, y,
                r"shape \(n_features \+ 1, n_patterns\) = \(4, P\).*got shape \(3, 5\)")
    _fit_raises(Est(**FAST, sampler="nope"), X, y, "'sampler' parameter")
    _fit_raises(Est(**FAST, solver="nope"), X, y, "'solver' parameter")
    _fit_raises(Est(**FAST, sampler="exhaustive"), X, y, "one feature only; X has 3 features")
    sw = np.ones(len(y))
    sw[5] = -1.0
    _fit_raises(est, X, y, "Negative values in data passed to `sample_weight`", sample_weight=sw)
    _fit_raises(est, X, y, "at least one non-zero", sample_weight=np.zeros(len(y)))
    _fit_raises(est, X, y, "sample_weight", sample_weight=np.ones(len(y) + 1))
    # wrong number of features at predict time
    est.fit(X, y)
    with pytest.raises(ValueError, match="X has 2 features, but .* is expecting 3 features"):
        est.predict(X[:, :2])


def test_classifier_rejects_one_class_and_continuous_targets():
    X, _ = _classification()
    _fit_raises(ConvexMLPClassifier(**FAST), X, np.array(["a"] * len(X)), "at least 2 classes")
    _fit_raises(ConvexMLPClassifier(**FAST), X, np.linspace(0, 1, len(X)), "Unknown label type")


def test_incompatible_solver_fails_before_work():
    X, y = _regression()

    class GatedOnly(FISTA):
        handles_cone = False

        def solve(self, *args, **kwargs):  # pragma: no cover - must not be reached
            raise AssertionError("solve() ran before the program/solver check")

    _fit_raises(ConvexMLPRegressor(activation="relu", solver=GatedOnly(), **FAST), X, y,
                "does not handle the cone")


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("case", ["constant_column", "duplicated_rows", "scaled_1e6", "one_sample_per_side"])
def test_robust_to_degenerate_data(case, activation):
    X, y = _regression(n=30)
    if case == "constant_column":
        X[:, 1] = 3.0
    elif case == "duplicated_rows":
        X, y = np.vstack([X, X[:10], X[:10]]), np.concatenate([y, y[:10], y[:10]])
    elif case == "scaled_1e6":
        X = X * 1e6
    else:  # a tiny data set
        X, y = X[:2], y[:2]
    est = ConvexMLPRegressor(activation=activation, alpha=1e-2, **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # anything but a ConvergenceWarning is a failure
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
        pred = est.predict(X)
    assert np.all(np.isfinite(pred))
    cert = est.certificate_
    assert np.isfinite(cert.primal) and np.isfinite(cert.dual) and np.isfinite(cert.gap)
    assert cert.gap >= -1e-12 * abs(cert.primal)
    assert cert.primal == pytest.approx(_hand_objective(est, X, y), rel=1e-6)


def test_classifier_robust_to_scaled_features():
    X, y = _classification(n_classes=3)
    est = ConvexMLPClassifier(activation="gated_relu", alpha=1e-2, **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X * 1e6, y)
    proba = est.predict_proba(X * 1e6)
    assert np.all(np.isfinite(proba))
    assert est.certificate_.gap >= 0
    assert est.certificate_.primal == pytest.approx(_hand_objective(est, X * 1e6, y), rel=1e-6)


# --------------------------------------------------------------------------- certificate


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_exhaustive_sampler_gives_global_certificate(activation):
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(12, 1))
    y = np.sin(3 * X[:, 0])
    est = ConvexMLPRegressor(activation=activation, sampler="exhaustive", alpha=1e-2, tol=1e-4,
                             max_iter=20_000).fit(X, y)
    cert = est.certificate_
    assert cert.scope == "global"
    text = cert.certifies.lower()
    assert "global certificate" in text and "enumerated completely" in text
    assert "not a global" not in text
    assert est.gates_.shape[1] == 1 + 2 * (len(np.unique(X)) - 1)  # every pattern
    sampled = ConvexMLPRegressor(activation=activation, alpha=1e-2, **FAST).fit(X, y).certificate_
    assert sampled.scope == "sampled"
    assert "not a global certificate" in sampled.certifies.lower()
    assert f"{sampled.n_patterns} sampled activation patterns" in sampled.certifies
    assert ("gated-ReLU" in cert.certifies) == (activation == "gated_relu")


@pytest.mark.parametrize("Est", [ConvexMLPRegressor, ConvexMLPClassifier])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_non_convergence_warns_with_the_numbers(Est, activation):
    X, y = _regression() if Est is ConvexMLPRegressor else _classification()
    est = Est(activation=activation, n_patterns=10, max_iter=2, tol=1e-6, random_state=0)
    with pytest.warns(ConvergenceWarning) as record:
        est.fit(X, y)
    messages = [str(w.message) for w in record if issubclass(w.category, ConvergenceWarning)]
    assert len(messages) == 1
    msg = messages[0]
    cert = est.certificate_
    assert not cert.converged and est.n_iter_ <= 2
    assert f"{cert.relative_gap:.2e}" in msg
    assert "tol=1.0e-06" in msg and "max_iter=2" in msg
    assert Est.__name__ in msg


@pytest.mark.parametrize("Est", [ConvexMLPRegressor, ConvexMLPClassifier])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_converged_fit_does_not_warn(Est, activation):
    X, y = _regression() if Est is ConvexMLPRegressor else _classification()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = Est(activation=activation, alpha=3e-2, n_patterns=8, tol=1e-3, max_iter=20_000,
                  random_state=0).fit(X, y)
    assert est.certificate_.converged and est.certificate_.relative_gap <= 1e-3


@pytest.mark.parametrize("activation", ["gated_relu", "relu"])
def test_warm_start_needs_fewer_iterations(activation):
    X, y = _classification(n=40)
    # FISTA's iterates continue from the init (the interior-point solver's path restarts
    # from the constant model, see tests/test_solver_barrier.py)
    kw = dict(activation=activation, alpha=1e-2, n_patterns=10, tol=1e-5, max_iter=20_000, random_state=0,
              solver="fista")
    est = ConvexMLPClassifier(**kw).fit(X, y)
    cold = est.n_iter_
    gates = est.gates_.copy()
    est.set_params(warm_start=True).fit(X, y)  # same problem: already solved
    np.testing.assert_array_equal(est.gates_, gates)
    assert est.certificate_.converged
    assert est.n_iter_ <= 0.5 * cold, (est.n_iter_, cold)
    if activation == "gated_relu":
        # a nearby problem: faster than from scratch
        est.set_params(alpha=1.2e-2).fit(X, y)
        scratch = ConvexMLPClassifier(**{**kw, "alpha": 1.2e-2}).fit(X, y)
        assert est.n_iter_ < scratch.n_iter_
        assert est.certificate_.primal == pytest.approx(scratch.certificate_.primal, rel=2e-5)


@pytest.mark.parametrize("Est", [ConvexMLPRegressor, ConvexMLPClassifier])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_diagnostic_attributes_are_consistent(Est, activation):
    X, y = _regression() if Est is ConvexMLPRegressor else _classification()
    est = Est(activation=activation, alpha=1e-2, n_patterns=10, tol=1e-4, max_iter=20_000,
              random_state=0).fit(X, y)
    cert = est.certificate_
    assert est.dual_gap_ == cert.gap
    assert cert.gap == pytest.approx(cert.primal - cert.dual, rel=1e-12, abs=1e-15)
    assert cert.relative_gap == pytest.approx(cert.gap / cert.primal, rel=1e-12)
    assert cert.activation == activation and cert.tol == 1e-4
    assert cert.n_patterns == est.gates_.shape[1]
    assert 0 < est.n_iter_ <= 20_000
    assert len(est.loss_curve_) == est.n_iter_
    assert all(np.isfinite(est.loss_curve_))
    h = est.history_
    assert set(h) == {"iteration", "time", "primal", "dual"}
    assert len({len(v) for v in h.values()}) == 1 and len(h["iteration"]) >= 2
    assert h["iteration"][0] == 0 and h["iteration"][-1] == est.n_iter_
    assert np.all(np.diff(h["iteration"]) > 0) and np.all(np.diff(h["time"]) >= 0)
    assert np.all(np.diff(h["dual"]) >= 0)  # the best dual bound so far
    # the last check is the certificate (up to the exported network's exact J)
    assert h["dual"][-1] <= cert.dual + 1e-12 * abs(cert.dual)
    assert h["primal"][-1] == pytest.approx(cert.primal, rel=1e-6)
    assert (h["primal"][-1] - h["dual"][-1]) / h["primal"][-1] <= 1e-4
    if activation == "gated_relu":  # FISTA: the curve is the objective of each iterate
        assert est.loss_curve_[-1] == pytest.approx(cert.primal, rel=1e-12)
        assert min(est.loss_curve_) >= cert.dual - 1e-12
    # certificate round trip
    assert Certificate.from_dict(cert.to_dict()) == cert
    assert re.search(r"gap [0-9.e+-]+ \(relative", str(cert))


def test_clone_and_params_are_untouched_by_fit():
    X, y = _regression()
    gates = np.random.default_rng(0).normal(size=(4, 6))
    est = ConvexMLPRegressor(activation="gated_relu", sampler=gates, **{k: v for k, v in FAST.items() if k != "n_patterns"})
    params = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in est.get_params().items()}
    est.fit(X, y)
    for k, v in est.get_params().items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(v, params[k])
        else:
            assert v == params[k]
    np.testing.assert_array_equal(est.gates_[:, : gates.shape[1]], gates)
    c = clone(est)
    assert not hasattr(c, "coefs_")


def test_a_trained_networks_patterns_make_it_feasible_so_the_certified_optimum_beats_it():
    """The user guide's recipe: a gradient-trained ReLU network can beat the sampled
    program's optimum (here 4 sampled patterns: its certified lower bound is far above the
    network's J); with the network's first layer added as gates the network is feasible,
    so the certified optimum is at most its J."""
    from sklearn.neural_network import MLPRegressor

    from convexnn.losses import SquaredLoss

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = np.sin(2 * X[:, 0]) + np.abs(X[:, 1]) - X[:, 2] ** 2 / 2 + 0.05 * rng.normal(size=200)
    alpha = 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPRegressor(hidden_layer_sizes=(16,), alpha=1e-4, max_iter=3000, random_state=0).fit(X, y)
    net = Network(list(mlp.coefs_), list(mlp.intercepts_), "relu")
    J_net = net.objective(X, y[:, None], np.full(200, 1 / 200), SquaredLoss(), alpha)
    sampled = ConvexMLPRegressor(alpha=alpha, n_patterns=4, tol=1e-5, random_state=0).fit(X, y)
    assert sampled.certificate_.dual > J_net  # the network is outside the sampled cones
    gates = np.c_[sampled.gates_, np.vstack([mlp.coefs_[0], mlp.intercepts_[0]])]
    est = ConvexMLPRegressor(alpha=alpha, sampler=gates, tol=1e-5, random_state=0).fit(X, y)
    c = est.certificate_
    assert c.converged and c.primal <= J_net + c.gap  # primal <= optimum + gap <= J_net + gap
    assert est.score(X, y) > sampled.score(X, y)
