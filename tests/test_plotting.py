"""ConvergenceDisplay and NetworkFunctionDisplay: the drawn data, checked against the
fitted estimators and against brute-force evaluation of the network."""

import subprocess
import sys
import warnings

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer, StandardScaler  # noqa: E402

from convexnn import ConvexMLPClassifier, ConvexMLPRegressor  # noqa: E402
from convexnn.plotting import ConvergenceDisplay, NetworkFunctionDisplay  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


@pytest.fixture(scope="module")
def data_1d():
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(25, 1))
    y = np.abs(X[:, 0]) - 0.5 * np.maximum(X[:, 0] - 0.7, 0) + 0.05 * rng.normal(size=25)
    return X, y


@pytest.fixture(scope="module")
def relu_1d(data_1d):
    X, y = data_1d
    return _fit(ConvexMLPRegressor(alpha=1e-2, sampler="exhaustive", max_iter=300), X, y)


@pytest.fixture(scope="module")
def gated_2d():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 2))
    y = np.where(X[:, 0] ** 2 + X[:, 1] > 0.5, "a", "b")
    return X, y, _fit(ConvexMLPClassifier("gated_relu", alpha=3e-3, n_patterns=25, random_state=0), X, y)


# ------------------------------------------------------------------------- convergence
def test_convergence_display_draws_history(relu_1d):
    est = relu_1d
    h = est.history_
    disp = ConvergenceDisplay.from_estimator(est)
    assert disp.ax_.shape == (2,)
    assert disp.figure_ is disp.ax_[0].figure
    np.testing.assert_array_equal(disp.lines_["primal"].get_xdata(), h["iteration"])
    np.testing.assert_array_equal(disp.lines_["primal"].get_ydata(), h["primal"])
    np.testing.assert_array_equal(disp.lines_["dual"].get_ydata(), h["dual"])
    p, d = np.array(h["primal"]), np.array(h["dual"])
    np.testing.assert_allclose(disp.lines_["relative_gap"].get_ydata(), (p - d) / np.abs(p), rtol=1e-14)
    curve = disp.lines_["objective_curve"]
    np.testing.assert_array_equal(curve.get_ydata(), est.loss_curve_)
    np.testing.assert_array_equal(curve.get_xdata(), np.arange(1, len(est.loss_curve_) + 1))
    assert disp.lines_["certificate"].get_ydata()[0] == est.certificate_.primal
    assert disp.lines_["tol"].get_ydata()[0] == est.certificate_.tol
    assert disp.lines_["relative_gap"].axes is disp.ax_[1]


def test_convergence_display_time_axis_and_single_kind(gated_2d):
    est = gated_2d[2]
    fig, ax = plt.subplots()
    disp = ConvergenceDisplay.from_estimator(est, x="time", kind="gap", ax=ax)
    assert disp.ax_ is ax and disp.figure_ is fig
    np.testing.assert_array_equal(disp.lines_["relative_gap"].get_xdata(), est.history_["time"])
    assert "primal" not in disp.lines_
    disp = ConvergenceDisplay.from_estimator(make_pipeline(StandardScaler(), est), x="time", kind="objective")
    # no time stamps per iteration: the per-iteration curve is not drawn against time
    assert set(disp.lines_) == {"primal", "dual", "certificate"}
    np.testing.assert_array_equal(disp.lines_["primal"].get_xdata(), est.history_["time"])


def test_convergence_display_bad_input(gated_2d):
    est = gated_2d[2]
    with pytest.raises(ValueError, match="x must be"):
        ConvergenceDisplay.from_estimator(est, x="epoch")
    with pytest.raises(ValueError, match="kind must be"):
        ConvergenceDisplay.from_estimator(est, kind="all")
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="draws on 2 Axes"):
        ConvergenceDisplay.from_estimator(est, ax=ax)
    with pytest.raises(ValueError, match="call fit first"):
        ConvergenceDisplay.from_estimator(ConvexMLPRegressor())
    with pytest.raises(ValueError, match="one value per"):
        ConvergenceDisplay(iteration=[1, 2], time=[0.1], primal=[1.0, 0.5], dual=[0.0, 0.4])


# ------------------------------------------------------------------- 1-D function plot
def _kinks_from_weights(W1, b1, W2, lo, hi):
    w, b = W1[0], b1
    keep = (w != 0) & np.any(W2 != 0, axis=1)
    k = -b[keep] / w[keep]
    return np.unique(k[(k > lo) & (k < hi)])


def test_1d_relu_kinks_are_where_the_function_bends(relu_1d, data_1d):
    X, y = data_1d
    est = relu_1d
    disp = NetworkFunctionDisplay.from_estimator(est, X, y)
    line, markers = disp.lines_[0], disp.kink_markers_[0]
    x = line.get_xdata()
    lo, hi = x.min(), x.max()
    assert lo < X.min() and hi > X.max()
    # the curve is the model's prediction
    np.testing.assert_allclose(line.get_ydata(), est.predict(x[:, None]), rtol=0, atol=1e-12)
    # markers: -b1/W1 of every unit in range, sitting on the curve
    W1, W2 = est.coefs_
    expected = _kinks_from_weights(W1, est.intercepts_[0], W2, lo, hi)
    assert expected.size >= 2
    np.testing.assert_allclose(np.unique(markers.get_xdata()), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(markers.get_ydata(), est.predict(markers.get_xdata()[:, None]), atol=1e-12)
    # brute force: affine between consecutive kinks (so no kink is missing) ...
    tol = 1e-9 * (hi - lo)
    knots = np.concatenate([[lo], expected[np.diff(expected, prepend=-np.inf) > tol], [hi]])
    for a, b in zip(knots[:-1], knots[1:]):
        t = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
        pts = a + t * (b - a)
        f = est.predict(pts[:, None])
        np.testing.assert_allclose(f, f[0] + t * (f[-1] - f[0]), rtol=0, atol=1e-9 * (1 + np.abs(f).max()))
    # ... and at each kink the slope jumps by sum_j W2_j |W1_j| over the units there
    w, a2 = W1[0], W2[:, 0]
    kink = np.where(w != 0, -est.intercepts_[0] / np.where(w != 0, w, 1), np.nan)
    gaps = np.diff(knots)
    for i, k in enumerate(knots[1:-1]):
        h = 0.25 * min(gaps[i], gaps[i + 1])
        f = est.predict(np.array([[k - h], [k], [k + h]]))
        jump = np.sum((a2 * np.abs(w))[np.abs(kink - k) <= tol])
        np.testing.assert_allclose(((f[2] - f[1]) - (f[1] - f[0])) / h, jump, rtol=1e-6, atol=1e-9)
    assert disp.ax_.get_xlim() == (lo, hi)
    np.testing.assert_array_equal(disp.scatter_.get_offsets()[:, 0], X[:, 0])


def test_1d_kinks_through_a_scaling_pipeline(data_1d):
    X, y = data_1d
    X = 10 * X + 3
    pipe = _fit(make_pipeline(StandardScaler(), ConvexMLPRegressor(alpha=1e-2, sampler="exhaustive", max_iter=200)), X, y)
    disp = NetworkFunctionDisplay.from_estimator(pipe, X)
    sc, est = pipe[0], pipe[-1]
    lo, hi = disp.lines_[0].get_xdata()[[0, -1]]
    z = _kinks_from_weights(est.coefs_[0], est.intercepts_[0], est.coefs_[1], -np.inf, np.inf)
    expected = sc.mean_[0] + sc.scale_[0] * z
    expected = expected[(expected > lo) & (expected < hi)]
    np.testing.assert_allclose(np.unique(disp.kink_markers_[0].get_xdata()), expected, rtol=1e-12)
    # each kink is where that unit's pre-activation, computed by the pipeline, vanishes
    pre = sc.transform(expected[:, None]) @ est.coefs_[0] + est.intercepts_[0]
    assert np.all(np.min(np.abs(pre), axis=1) < 1e-10)


def test_1d_gated_units_switch_at_their_gates(data_1d):
    X, y = data_1d
    est = _fit(ConvexMLPRegressor("gated_relu", alpha=1e-2, n_patterns=10, random_state=0), X, y)
    disp = NetworkFunctionDisplay.from_estimator(est, X, y)
    G = est.gates_[:, est.neuron_patterns_]
    lo, hi = disp.lines_[0].get_xdata()[[0, -1]]
    expected = _kinks_from_weights(G[:1], G[1], est.coefs_[1], lo, hi)
    np.testing.assert_allclose(np.unique(disp.kink_markers_[0].get_xdata()), expected, rtol=1e-12)
    # the network is affine between gates: brute force on midpoints
    knots = np.concatenate([[lo], expected, [hi]])
    for a, b in zip(knots[:-1], knots[1:]):
        pts = a + np.array([0.1, 0.5, 0.9]) * (b - a)
        f = est.predict(pts[:, None])
        np.testing.assert_allclose(f[1], 0.5 * (f[0] + f[2]), atol=1e-9)


def test_1d_multiclass_marks_each_output(data_1d):
    X, _ = data_1d
    y = np.digitize(X[:, 0], [-0.7, 0.7])
    est = _fit(ConvexMLPClassifier(alpha=1e-2, sampler="exhaustive", max_iter=100), X, y)
    disp = NetworkFunctionDisplay.from_estimator(est, X, y)
    assert len(disp.lines_) == 3
    x = disp.lines_[0].get_xdata()
    Z = est.decision_function(x[:, None])
    W1, W2 = est.coefs_
    for k in range(3):
        np.testing.assert_allclose(disp.lines_[k].get_ydata(), Z[:, k], atol=1e-12)
        expected = _kinks_from_weights(W1, est.intercepts_[0], W2[:, [k]], x[0], x[-1])
        np.testing.assert_allclose(np.unique(disp.kink_markers_[k].get_xdata()), expected, rtol=1e-12)


# -------------------------------------------------------------------- 2-D region plot
def _box(disp):
    xx0, xx1 = disp.grid
    return xx0.min(), xx0.max(), xx1.min(), xx1.max()


def test_2d_regions_and_hyperplanes(gated_2d):
    X, y, clf = gated_2d
    disp = NetworkFunctionDisplay.from_estimator(clf, X, y, grid_resolution=60)
    xx0, xx1 = disp.grid
    assert xx0.shape == (60, 60)
    grid = np.column_stack([xx0.ravel(), xx1.ravel()])
    codes = np.searchsorted(clf.classes_, clf.predict(grid)).reshape(xx0.shape)
    np.testing.assert_array_equal(disp.response, codes)
    assert set(np.unique(codes)) == {0, 1}
    G = clf.gates_[:, clf.neuron_patterns_]
    x0a, x0b, x1a, x1b = _box(disp)
    corners = np.array([[x0a, x1a], [x0a, x1b], [x0b, x1a], [x0b, x1b]])
    s = corners @ G[:2] + G[2]
    crossing = np.flatnonzero((s.max(axis=0) > 0) & (s.min(axis=0) < 0))  # brute force
    np.testing.assert_array_equal(disp.neuron_indices_, crossing)
    assert len(disp.neuron_lines_) == crossing.size > 0
    for j, line in zip(disp.neuron_indices_, disp.neuron_lines_):
        pts = np.column_stack([line.get_xdata(), line.get_ydata()])
        assert pts.shape == (2, 2)
        np.testing.assert_allclose(pts @ G[:2, j] + G[2, j], 0, atol=1e-9 * np.abs(G[:, j]).sum())
        on_edge = np.isclose(pts[:, 0], x0a) | np.isclose(pts[:, 0], x0b) | np.isclose(pts[:, 1], x1a) | np.isclose(pts[:, 1], x1b)
        assert on_edge.all()
    assert disp.ax_.get_xlim() == (x0a, x0b)
    assert disp.scatter_.get_offsets().shape == (80, 2)


def test_2d_probability_surface_needs_output(gated_2d):
    X, y, clf = gated_2d
    disp = NetworkFunctionDisplay.from_estimator(clf, X, response_method="predict_proba", output=1, grid_resolution=30)
    xx0, xx1 = disp.grid
    p = clf.predict_proba(np.column_stack([xx0.ravel(), xx1.ravel()]))[:, 1]
    np.testing.assert_allclose(disp.response, p.reshape(xx0.shape), rtol=1e-13)
    with pytest.raises(ValueError, match="pass output=INDEX"):
        NetworkFunctionDisplay.from_estimator(clf, X, response_method="predict_proba", grid_resolution=30)


def test_2d_relu_regressor_hyperplanes_in_original_units():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 2)) * [5.0, 0.2] + [100.0, -3.0]
    y = np.maximum(X[:, 0] - 100, 0) + 10 * X[:, 1]
    pipe = _fit(make_pipeline(StandardScaler(), ConvexMLPRegressor(alpha=1e-2, n_patterns=8, max_iter=200, random_state=0)), X, y)
    disp = NetworkFunctionDisplay.from_estimator(pipe, X, y, grid_resolution=20)
    xx0, xx1 = disp.grid
    np.testing.assert_allclose(disp.response, pipe.predict(np.column_stack([xx0.ravel(), xx1.ravel()])).reshape(xx0.shape))
    sc, est = pipe[0], pipe[-1]
    assert len(disp.neuron_lines_) > 0
    for j, line in zip(disp.neuron_indices_, disp.neuron_lines_):
        pts = np.column_stack([line.get_xdata(), line.get_ydata()])
        pre = sc.transform(pts) @ est.coefs_[0][:, j] + est.intercepts_[0][j]
        np.testing.assert_allclose(pre, 0, atol=1e-9 * (1 + np.abs(est.coefs_[0][:, j]).sum()))


def test_network_function_display_bad_input(gated_2d, data_1d):
    X, y, clf = gated_2d
    with pytest.raises(ValueError, match="one or two input features"):
        NetworkFunctionDisplay.from_estimator(clf, np.hstack([X, X[:, :1]]))
    with pytest.raises(ValueError, match="response_method"):
        NetworkFunctionDisplay.from_estimator(clf, X, response_method="proba")
    with pytest.raises(ValueError, match="two-layer estimator"):
        NetworkFunctionDisplay.from_estimator(StandardScaler().fit(X), X)
    X1, y1 = data_1d
    pipe = _fit(make_pipeline(FunctionTransformer(np.tanh), ConvexMLPRegressor("gated_relu", n_patterns=5, random_state=0)), X1, y1)
    with pytest.raises(ValueError, match="affine"):
        NetworkFunctionDisplay.from_estimator(pipe, X1)


def test_import_does_not_load_matplotlib():
    code = "import sys, convexnn.plotting; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
