"""Deep threshold (step) networks (Ergen, Gulluk, Lacotte & Pilanci, ICLR 2023, Section 3;
issue 5 §2): the exported L-layer network's objective, computed here from its weights
only, equals the Lasso / water-filling optimum; cvxpy + Clarabel as the oracle."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from convexnn import ConvexThresholdClassifier, ConvexThresholdRegressor
from convexnn.patterns import masks_from_gates
from convexnn.threshold import (
    DeepThresholdNetwork,
    apply_layers,
    collapsed_objective,
    has_full_row_rank,
    shattering_layers,
    water_filling,
)

cp = pytest.importorskip("cvxpy")

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# --------------------------------------------------------------------------- independent oracles


def _hand_forward(est, X):
    """h_l = s_l * 1[h_{l-1} W_l + b_l > 0]; f = h_{L-1} W_L + b_L, from the attributes only."""
    h = np.asarray(X, float)
    for W, b, s in zip(est.coefs_[:-1], est.intercepts_[:-1], est.amplitudes_):
        h = (h @ W + b > 0).astype(float) * s[None, :]
    return h @ est.coefs_[-1] + est.intercepts_[-1]


def _hand_features(est, X):
    h = np.asarray(X, float)
    for W, b, s in zip(est.coefs_[:-2], est.intercepts_[:-2], est.amplitudes_[:-1]):
        h = (h @ W + b > 0).astype(float) * s[None, :]
    return h


def _targets(est, y):
    if isinstance(est, ConvexThresholdRegressor):
        return np.asarray(y, float).reshape(len(y), -1), "squared"
    if len(est.classes_) == 2:
        return (np.asarray(y) == est.classes_[1]).astype(float)[:, None], "logistic"
    return (np.asarray(y)[:, None] == est.classes_[None, :]).astype(float), "softmax"


def _per_sample(Z, Y, kind):
    if kind == "squared":
        return 0.5 * np.sum((Z - Y) ** 2, axis=1)
    if kind == "logistic":
        return np.logaddexp(0.0, Z[:, 0]) - Y[:, 0] * Z[:, 0]
    m = Z.max(axis=1)
    return m + np.log(np.exp(Z - m[:, None]).sum(axis=1)) - np.sum(Y * Z, axis=1)


def _hand_objective(est, X, y, w):
    """J = sum_i w_i loss + alpha/2 (|s_{L-1}|^2 + |W_L|^2) (the paper's penalty on the last
    hidden layer's amplitudes and the output weights)."""
    Y, kind = _targets(est, y)
    per = _per_sample(_hand_forward(est, X), Y, kind)
    decay = np.sum(est.amplitudes_[-1] ** 2) + np.sum(est.coefs_[-1] ** 2)
    return float(w @ per) + 0.5 * est.alpha * float(decay)


def _cvxpy_lasso(D, Y, w, alpha, kind):
    """min_{C,b} sum_i w_i loss((DC)_i + b) + alpha sum_k |C_k|_2, Clarabel."""
    n, P = D.shape
    c = Y.shape[1]
    C = cp.Variable((P, c))
    b = cp.Variable(c)
    Z = D @ C + np.ones((n, 1)) @ cp.reshape(b, (1, c), order="C")
    if kind == "squared":
        data = 0.5 * cp.sum(cp.multiply(w[:, None], cp.square(Z - Y)))
    elif kind == "logistic":
        data = cp.sum(cp.multiply(w[:, None], cp.logistic(Z) - cp.multiply(Y, Z)))
    else:
        data = cp.sum(cp.multiply(w, cp.log_sum_exp(Z, axis=1) - cp.sum(cp.multiply(Y, Z), axis=1)))
    prob = cp.Problem(cp.Minimize(data + alpha * cp.sum(cp.norm(C, 2, axis=1))))
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11)
    assert prob.status == "optimal", prob.status
    return float(prob.value)


def _all_patterns(n):
    """Every non-empty d in {0,1}^n (the dictionary of a shattering layer)."""
    return np.array([p for p in itertools.product([0.0, 1.0], repeat=n) if any(p)]).T


# --------------------------------------------------------------------------- closed form (shattered)


@pytest.mark.parametrize("sizes", [(40, 40), (39, 39, 39), (60, 45, 50, 40)])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("weighted", [False, True])
def test_deep_network_attains_water_filling_optimum(sizes, seed, weighted):
    rng = np.random.default_rng(seed)
    n, d = 40, 2
    X = rng.normal(size=(n, d))
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2 + 0.2 * rng.normal(size=n)
    w = rng.uniform(0.2, 2.0, size=n) if weighted else None
    wn = np.full(n, 1 / n) if w is None else w / w.sum()
    alpha = float(10 ** rng.uniform(-3, -1.5))
    est = ConvexThresholdRegressor(alpha=alpha, hidden_layer_sizes=sizes).fit(X, y, sample_weight=w)
    assert not has_full_row_rank(X)  # a two-layer network cannot reach every pattern here
    assert est.closed_form_ and est.certificate_.scope == "global"
    optimum = collapsed_objective(water_filling(y, alpha, wn), y, alpha, wn)
    J = _hand_objective(est, X, y, wn)
    assert J == pytest.approx(optimum, rel=1e-9)
    assert est.certificate_.primal == pytest.approx(J, rel=1e-12)
    assert est.certificate_.relative_gap < 1e-9
    # architecture: L - 1 hidden layers, each within the requested width
    assert len(est.coefs_) == len(sizes) + 1
    widths = [W.shape[1] for W in est.coefs_[:-1]]
    assert all(m <= M for m, M in zip(widths, sizes))
    assert est.n_neurons_ == widths[-1] == len(est.amplitudes_[-1])
    np.testing.assert_allclose(_hand_forward(est, X)[:, 0], est.predict(X), rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_collapse_is_lasso_over_every_pattern_cvxpy(seed):
    """Oracle: cvxpy on the Lasso over all 2^n - 1 binary patterns (what a shattering layer
    makes reachable) equals the exported deep network's J and the water-filling value."""
    rng = np.random.default_rng(10 + seed)
    n = 8
    X = rng.normal(size=(n, 1))  # [X, 1] has rank 2 < n: two layers cannot reach most patterns
    y = rng.normal(size=n)
    w = rng.uniform(0.3, 1.5, size=n) if seed % 2 else None
    wn = np.full(n, 1 / n) if w is None else w / w.sum()
    alpha = float(10 ** rng.uniform(-2.5, -1))
    oracle = _cvxpy_lasso(_all_patterns(n), y[:, None], wn, alpha, "squared")
    est = ConvexThresholdRegressor(alpha=alpha, hidden_layer_sizes=(n, n)).fit(X, y, sample_weight=w)
    J = _hand_objective(est, X, y, wn)
    assert J == pytest.approx(oracle, rel=1e-7)
    assert collapsed_objective(water_filling(y, alpha, wn), y, alpha, wn) == pytest.approx(oracle, rel=1e-7)
    # a two-layer network (every pattern of 1-D data: exhaustive) is never better
    two = ConvexThresholdRegressor(alpha=alpha, sampler="exhaustive", tol=1e-10, max_iter=100_000).fit(X, y, sample_weight=w)
    assert two.certificate_.dual >= J * (1 - 1e-9)


def test_random_deep_networks_never_beat_the_optimum():
    """Random threshold networks of the same architecture (random layers, least-squares
    output with the same penalty) never go below the certified optimum."""
    rng = np.random.default_rng(7)
    n, alpha = 25, 5e-3
    X = rng.normal(size=(n, 2))
    y = np.cos(3 * X[:, 0]) + 0.1 * rng.normal(size=n)
    est = ConvexThresholdRegressor(alpha=alpha, hidden_layer_sizes=(30, 30)).fit(X, y)
    best = est.certificate_.dual
    for _ in range(200):
        h = X
        for m in (30, 30):
            W = rng.normal(size=(h.shape[1], m))
            b = rng.normal(size=m) * h.std()
            s = rng.normal(size=m)
            h = (h @ W + b > 0) * s
        # for fixed layers the best output layer solves a ridge on [h, 1] with the
        # balanced penalty alpha * sum |s_j a_j| >= ... ; any choice of a is an upper bound
        H = np.column_stack([h, np.ones(n)])
        a = np.linalg.lstsq(H.T @ H / n + alpha * np.diag([1.0] * h.shape[1] + [0.0]), H.T @ y / n, rcond=None)[0]
        f = H @ a
        J = 0.5 * np.mean((f - y) ** 2) + 0.5 * alpha * (np.sum(s**2) + np.sum(a[:-1] ** 2))
        assert J >= best * (1 - 1e-12)


# --------------------------------------------------------------------------- sampled Lasso on layer L-2


@pytest.mark.parametrize("case", ["bin", "multi", "reg2", "duplicates"])
def test_sampled_deep_lasso_matches_cvxpy(case):
    rng = np.random.default_rng(3)
    n = 18
    X = rng.normal(size=(n, 2))
    if case == "duplicates":
        X[n // 2 :] = X[: n - n // 2]  # repeated inputs: no closed form, sampled Lasso
    y = {
        "bin": (X[:, 0] * X[:, 1] > 0).astype(int),
        "multi": np.argmax(np.column_stack([X, -X.sum(axis=1)]), axis=1),
        "reg2": np.column_stack([X[:, 0] ** 2, np.sin(X[:, 1])]),
        "duplicates": X[:, 0] ** 2 + 0.1 * rng.normal(size=n),
    }[case]
    Est = ConvexThresholdClassifier if case in ("bin", "multi") else ConvexThresholdRegressor
    est = Est(alpha=2e-2, n_patterns=25, random_state=0, tol=1e-9, max_iter=100_000, hidden_layer_sizes=(n, n, 3 * n))
    est.fit(X, y)
    if case != "bin" and case != "multi":
        assert not est.closed_form_
    wn = np.full(n, 1 / n)
    Y, kind = _targets(est, y)
    F = _hand_features(est, X)
    D = masks_from_gates(F, est.gates_).astype(float)
    oracle = _cvxpy_lasso(D, Y, wn, est.alpha, kind)
    J = _hand_objective(est, X, y, wn)
    assert est.certificate_.primal == pytest.approx(J, rel=1e-12)
    assert J == pytest.approx(oracle, rel=1e-6)
    assert est.certificate_.dual <= oracle * (1 + 1e-8)
    raw = est.predict(X) if kind == "squared" else est.decision_function(X)
    np.testing.assert_allclose(np.reshape(raw, (n, -1)), _hand_forward(est, X), atol=1e-12)
    np.testing.assert_array_equal(est.activation_patterns(X), masks_from_gates(F, est.gates_))


# --------------------------------------------------------------------------- width condition, API


def test_width_condition_errors():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    with pytest.raises(ValueError, match=r"hidden layer 1 has width 10.*width >= 19"):
        ConvexThresholdRegressor(hidden_layer_sizes=(10, 50)).fit(X, y)
    with pytest.raises(ValueError, match=r"hidden layer 2 has width 5"):
        ConvexThresholdRegressor(hidden_layer_sizes=(19, 5, 50)).fit(X, y)
    with pytest.raises(ValueError, match=r"needs \d+ units in the last hidden layer.*hidden_layer_sizes\[-1\] = 2"):
        ConvexThresholdRegressor(alpha=1e-4, hidden_layer_sizes=(19, 2)).fit(X, y)
    with pytest.raises(ValueError, match=r"needs \d+ units in the last hidden layer"):
        ConvexThresholdRegressor(alpha=1e-4, n_patterns=50, random_state=0, hidden_layer_sizes=(1,)).fit(X, y)
    for bad in [(0, 5), (3.5, 2), (-1,), ()]:
        with pytest.raises(ValueError, match="hidden_layer_sizes"):
            ConvexThresholdRegressor(hidden_layer_sizes=bad).fit(X, y)
    with pytest.raises(ValueError, match="distinct"):
        ConvexThresholdRegressor(hidden_layer_sizes=(5, 5)).fit(np.ones((6, 2)), rng.normal(size=6))
    with pytest.raises(ValueError, match="at least two hidden layers"):
        shattering_layers(X, (30,))


def test_shattering_layers_reach_every_pattern():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(9, 3))
    layers = shattering_layers(X, (8, 8, 8))
    F = apply_layers(X, layers)
    assert has_full_row_rank(F)
    from convexnn.threshold import gates_for_masks

    masks = _all_patterns(9).astype(bool)
    g = gates_for_masks(F, masks)
    assert g is not None
    np.testing.assert_array_equal(masks_from_gates(F, g), masks)


def test_default_and_single_layer_are_the_two_layer_estimator():
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(30, 2)), rng.normal(size=30)
    base = ConvexThresholdRegressor(alpha=1e-2, n_patterns=20, random_state=0).fit(X, y)
    wide = ConvexThresholdRegressor(alpha=1e-2, n_patterns=20, random_state=0, hidden_layer_sizes=(100,)).fit(X, y)
    for a, b in zip(base.coefs_ + base.intercepts_, wide.coefs_ + wide.intercepts_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(base.amplitudes_, wide.amplitudes_)
    assert isinstance(base.amplitudes_, np.ndarray)


def test_deep_optimum_not_above_two_layer():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(30, 2))
    y = np.sign(X[:, 0]) + 0.3 * rng.normal(size=30)
    two = ConvexThresholdRegressor(alpha=1e-2, n_patterns=200, random_state=0, tol=1e-8, max_iter=50_000).fit(X, y)
    deep = ConvexThresholdRegressor(alpha=1e-2, hidden_layer_sizes=(29, 30)).fit(X, y)
    assert deep.certificate_.primal <= two.certificate_.primal * (1 + 1e-12)


@pytest.mark.parametrize("kind", ["reg", "bin", "multi"])
def test_torch_export_equals_numpy(kind):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    X, Xt = rng.normal(size=(24, 3)), rng.normal(size=(50, 3))
    sizes = (23, 23, 40)
    if kind == "reg":
        est = ConvexThresholdRegressor(alpha=1e-2, hidden_layer_sizes=sizes).fit(X, X[:, 0] ** 2)
        ref = est.predict(Xt)
    else:
        y = X[:, 0] > 0 if kind == "bin" else np.argmax(X, axis=1)
        est = ConvexThresholdClassifier(alpha=1e-2, n_patterns=20, random_state=0, hidden_layer_sizes=sizes).fit(X, y)
        ref = est.decision_function(Xt)
    net = est.to_network()
    assert isinstance(net, DeepThresholdNetwork) and net.depth == 4
    np.testing.assert_allclose(np.reshape(net.forward(Xt), np.shape(ref)), ref, atol=1e-12)
    with torch.no_grad():
        out = est.to_torch()(torch.as_tensor(Xt)).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-12)
    arrays = net.named_arrays()
    assert set(arrays) >= {"W1", "W4", "b4", "s3", "depth"}
