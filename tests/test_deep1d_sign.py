"""Deep step (sign / threshold) networks on 1-D data: parallel rectangular blocks
(issue 5 §3, ``Deep1DRegressor(architecture="rectangular")``). Oracles: cvxpy on an
independently enumerated dictionary (every ±1 / 0-1 sequence with at most ``width``
switches), random blocks of the same architecture, and the alpha_max formula."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from convexnn import Deep1DRegressor
from convexnn.deep1d import BlockNetwork, build_switch_dictionary

cp = pytest.importorskip("cvxpy")

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _brute_dictionary(n_points, width, activation):
    """Every level sequence on n sorted points with 1..width switches (one of each sign pair)."""
    low, high = (-1.0, 1.0) if activation == "sign" else (0.0, 1.0)
    cols = []
    for bits in itertools.product([0, 1], repeat=n_points):
        if bits[0] != 0:
            continue  # its negation starts low
        k = int(np.sum(np.diff(bits) != 0))
        if 1 <= k <= width:
            cols.append(np.where(np.array(bits) == 1, high, low))
    return np.array(cols, float).T


def _cvxpy_lasso(A, y, w, alpha):
    z, b = cp.Variable(A.shape[1]), cp.Variable()
    obj = 0.5 * cp.sum(cp.multiply(w, cp.square(A @ z + b - y))) + alpha * cp.norm1(z)
    prob = cp.Problem(cp.Minimize(obj))
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11)
    assert prob.status == "optimal"
    return float(prob.value)


def _cvxpy_min_norm(A, y):
    z, b = cp.Variable(A.shape[1]), cp.Variable()
    prob = cp.Problem(cp.Minimize(cp.norm1(z)), [A @ z + b == y])
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11)
    return float(prob.value)


def _data(seed, n=9):
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-2, 2, n))
    y = np.sign(np.sin(2.5 * x)) + 0.3 * rng.normal(size=n)
    return x, y


def _penalty_by_hand(net):
    return 0.5 * float(np.sum(net.amplitudes**2) + np.sum(net.output_weights**2))


@pytest.mark.parametrize("activation", ["sign", "threshold"])
@pytest.mark.parametrize("depth, width", [(3, 1), (3, 2), (4, 2), (3, 3), (6, 3)])
@pytest.mark.parametrize("seed", range(2))
def test_lasso_matches_cvxpy_on_brute_force_dictionary(activation, depth, width, seed):
    x, y = _data(seed)
    alpha = 1e-2
    est = Deep1DRegressor(depth, activation, alpha=alpha, architecture="rectangular", width=width).fit(x[:, None], y)
    A = _brute_dictionary(len(x), width, activation)
    assert est.dictionary_.n_atoms == A.shape[1]
    # the same set of columns
    assert {tuple(c) for c in A.T} == {tuple(c) for c in est.dictionary_.A.T}
    w = np.full(len(x), 1 / len(x))
    oracle = _cvxpy_lasso(A, y, w, alpha)
    net = est.network_
    assert isinstance(net, BlockNetwork) and net.depth == depth
    # J of the reconstructed network, from its forward pass and the penalty by hand
    J = 0.5 * float(w @ (net.forward(x) - y) ** 2) + alpha * _penalty_by_hand(net)
    assert J == pytest.approx(est.objective_, rel=1e-12)
    assert J == pytest.approx(oracle, rel=1e-7)
    assert est.certificate_.scope == "global" and est.certificate_.relative_gap < 1e-6
    # J of the network = Lasso objective of its coefficients (exact reconstruction)
    lasso = 0.5 * float(w @ (est.dictionary_.A @ est.coef_ + est.intercept_ - y) ** 2) + alpha * np.abs(est.coef_).sum()
    assert J == pytest.approx(lasso, rel=1e-12)
    assert est.penalty_ == pytest.approx(np.abs(est.coef_).sum(), rel=1e-12)
    assert est.n_neurons_ == np.count_nonzero(est.coef_) == net.n_chains
    assert np.all(np.isin(est.breakpoints_, x)) and not est.breakpoint_is_reflection_.any()


@pytest.mark.parametrize("activation", ["sign", "threshold"])
def test_optimum_never_increases_with_depth_or_width(activation):
    x, y = _data(3, n=14)
    kw = dict(alpha=5e-3, tol=1e-10, max_iter=20_000)
    two = Deep1DRegressor(2, activation, **kw).fit(x[:, None], y).objective_
    values = {}
    for depth in (3, 4, 5):
        for width in (1, 2, 3):
            values[depth, width] = Deep1DRegressor(depth, activation, architecture="rectangular", width=width, **kw).fit(x[:, None], y).objective_
    assert values[3, 1] == pytest.approx(two, rel=1e-8)  # one switch per block = depth-2 steps
    for depth in (3, 4, 5):
        assert values[depth, 1] >= values[depth, 2] * (1 - 1e-9) >= values[depth, 3] * (1 - 1e-9)
        for width in (1, 2, 3):
            assert values[depth, width] == pytest.approx(values[3, width], rel=1e-8)
    assert two >= values[3, 2] * (1 - 1e-9)


@pytest.mark.parametrize("activation", ["sign", "threshold"])
def test_zero_solution_from_alpha_max(activation):
    x, y = _data(4)
    est = Deep1DRegressor(3, activation, architecture="rectangular", width=2).fit(x[:, None], y)
    amax = est.alpha_max_
    A = est.dictionary_.A
    assert amax == pytest.approx(np.abs(A.T @ (y - y.mean())).max() / len(y), rel=1e-12)
    at = Deep1DRegressor(3, activation, alpha=amax * (1 + 1e-9), architecture="rectangular", width=2).fit(x[:, None], y)
    assert at.n_neurons_ == 0 and np.allclose(at.predict(x[:, None]), y.mean())
    below = Deep1DRegressor(3, activation, alpha=0.9 * amax, architecture="rectangular", width=2).fit(x[:, None], y)
    assert below.n_neurons_ > 0


@pytest.mark.parametrize("activation", ["sign", "threshold"])
@pytest.mark.parametrize("width", [1, 2, 3])
def test_min_norm_interpolation_matches_cvxpy(activation, width):
    x, y = _data(5, n=8)
    est = Deep1DRegressor(4, activation, alpha=0, architecture="rectangular", width=width).fit(x[:, None], y)
    np.testing.assert_allclose(est.predict(x[:, None]), y, atol=1e-9)
    oracle = _cvxpy_min_norm(_brute_dictionary(len(x), width, activation), y)
    assert est.objective_ == pytest.approx(oracle, rel=1e-7)
    assert est.penalty_ == pytest.approx(_penalty_by_hand(est.network_), rel=1e-12)
    assert est.certificate_.dual <= est.objective_ * (1 + 1e-9)


@pytest.mark.parametrize("activation", ["sign", "threshold"])
def test_random_blocks_stay_in_the_dictionary_and_never_beat_the_optimum(activation):
    """Random blocks of the architecture (random weights in every layer) produce only
    features of the dictionary, and the best output layer over them is never better."""
    rng = np.random.default_rng(6)
    x, y = _data(6, n=10)
    depth, width, alpha = 4, 2, 1e-2
    est = Deep1DRegressor(depth, activation, alpha=alpha, architecture="rectangular", width=width).fit(x[:, None], y)
    cols = {tuple(c) for c in est.dictionary_.A.T}
    low = -1.0 if activation == "sign" else 0.0
    B = 60
    feats = []
    for _ in range(B):
        net = BlockNetwork(
            first_weights=rng.normal(size=(1, width)), first_biases=rng.uniform(-2.5, 2.5, (1, width)),
            inner_weights=rng.normal(size=(1, depth - 3, width, width)), inner_biases=rng.normal(size=(1, depth - 3, width)),
            block_weights=rng.normal(size=(1, width)), block_biases=rng.normal(size=1),
            amplitudes=np.ones(1), output_weights=np.ones(1), intercept=0.0, activation=activation,
        )
        f = net.features(x)[:, 0]
        if np.ptp(f) == 0:
            continue
        canon = f if f[0] == low else (1.0 + low) - f  # the representative starts low
        assert tuple(canon) in cols
        feats.append(f)
    R = np.column_stack(feats)
    w = np.full(len(x), 1 / len(x))
    assert _cvxpy_lasso(R, y, w, alpha) >= est.certificate_.dual * (1 - 1e-9)


def test_torch_export_and_penalty_from_parameters():
    torch = pytest.importorskip("torch")
    x, y = _data(7, n=12)
    grid = np.linspace(-2.5, 2.5, 101)
    for activation in ("sign", "threshold"):
        est = Deep1DRegressor(5, activation, alpha=3e-3, architecture="rectangular", width=3).fit(x[:, None], y)
        module = est.to_torch()
        with torch.no_grad():
            out = module(torch.as_tensor(grid[:, None])).numpy()
        np.testing.assert_allclose(out, est.predict(grid[:, None]), atol=1e-12)
        p = 0.5 * float((module.amplitudes.detach() ** 2).sum() + (module.output_weights.detach() ** 2).sum())
        assert p == pytest.approx(est.penalty_, rel=1e-12)


def test_dictionary_evaluate_and_features_of():
    x = np.array([0.0, 1, 2, 3, 4])
    D = build_switch_dictionary(x, 3, "sign", 2)
    np.testing.assert_array_equal(D.evaluate(x), D.A)
    assert D.features_of(0) == [{"start": "low", "switches": (1,)}, {"start": "high", "switches": (1,)}]
    assert D.n_atoms == 4 + 6


@pytest.mark.parametrize(
    "params, match",
    [
        ({"depth": 3, "activation": "relu", "architecture": "rectangular"}, "step activations"),
        ({"depth": 2, "activation": "sign", "architecture": "rectangular"}, "depth >= 3"),
        ({"depth": 3, "activation": "sign"}, "architecture='rectangular'"),
        ({"depth": 3, "activation": "sign", "architecture": "tree"}, "architecture"),
        ({"depth": 3, "activation": "sign", "architecture": "rectangular", "width": 0}, "width"),
    ],
)
def test_bad_architecture(params, match):
    x, y = _data(0)
    with pytest.raises(ValueError, match=match):
        Deep1DRegressor(**params).fit(x[:, None], y)
