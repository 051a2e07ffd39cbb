"""regularization_path: grid, first point, certificates against cvxpy, equality with
independent cold fits, scores by hand, table/CSV round trip, bad input."""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score

from convexnn import ConvexMLPClassifier, ConvexMLPRegressor, RegularizationPath, regularization_path
from convexnn.losses import LogisticLoss, SquaredLoss
from convexnn.operators import ConeOperator, GatedOperator
from convexnn.penalties import ColumnGroupL2
from convexnn.programs import ConvexProgram

ACTIVATIONS = ["gated_relu", "relu"]


def _regression(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    return X, np.sin(2 * X[:, 0]) + 0.5 * X[:, 1] ** 2 + 0.1 * rng.normal(size=n)


def _classification(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    y = np.where(X[:, 0] * X[:, 1] + 0.2 * rng.normal(size=n) > 0, "yes", "no")
    return X, y


def _path(X, y, est, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return regularization_path(X, y, estimator=est, **kw)


def _program_by_hand(X, Y, gates, activation, loss, alpha=1.0):
    gated = GatedOperator(X, gates)
    op = ConeOperator(gated) if activation == "relu" else gated
    w = np.full(X.shape[0], 1.0 / X.shape[0])
    return ConvexProgram(loss, ColumnGroupL2(), op, Y, w, alpha)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_first_point_is_alpha_max_with_the_constant_model(activation):
    X, y = _regression()
    est = ConvexMLPRegressor(activation, n_patterns=12, random_state=0, max_iter=500)
    path = _path(X, y, est, n_alphas=4, alpha_min_ratio=1e-2)
    # the grid: alpha_max computed from the program on the path's gates, log-spaced
    program = _program_by_hand(X, y[:, None], path.gates, activation, SquaredLoss())
    assert path.alpha_max == pytest.approx(program.alpha_max(), rel=1e-12)
    np.testing.assert_allclose(path.alphas, path.alpha_max * np.logspace(0, -2, 4), rtol=1e-12)
    assert path.alphas[0] == path.alpha_max
    # first point: no neurons, zero coefficients, intercept = mean of y (squared loss)
    assert path.n_neurons[0] == 0
    assert path.networks[0].n_neurons == 0
    np.testing.assert_array_equal(path.coefs[0], 0.0)
    assert path.intercepts[0, 0] == pytest.approx(y.mean(), abs=1e-6)
    assert path.n_neurons[-1] > 0
    # the same gates as a plain fit of the template samples
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = clone(est).fit(X, y)
    np.testing.assert_array_equal(path.gates, plain.gates_)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_classification_path_starts_at_the_log_odds(activation):
    X, y = _classification()
    est = ConvexMLPClassifier(activation, n_patterns=10, random_state=1, max_iter=500)
    path = _path(X, y, est, n_alphas=3, alpha_min_ratio=0.1)
    Y = (y == "yes").astype(float)[:, None]
    program = _program_by_hand(X, Y, path.gates, activation, LogisticLoss())
    assert path.alpha_max == pytest.approx(program.alpha_max(), rel=1e-12)
    assert path.n_neurons[0] == 0
    p = Y.mean()
    assert path.intercepts[0, 0] == pytest.approx(np.log(p / (1 - p)), abs=1e-6)
    # train scores are accuracies of the networks, computed by hand
    for net, score in zip(path.networks, path.train_scores):
        pred = np.where(net.forward(X)[:, 0] > 0, "yes", "no")
        assert score == accuracy_score(y, pred)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_point_is_certified_against_cvxpy(activation):
    """dual <= p*(alpha) <= primal at every point, p* from cvxpy/Clarabel."""
    pytest.importorskip("cvxpy")
    from convexnn.solvers import CvxpySolver

    X, y = _regression(n=25, seed=3)
    est = ConvexMLPRegressor(activation, n_patterns=6, random_state=0, tol=1e-4, max_iter=3000)
    path = _path(X, y, est, n_alphas=4, alpha_min_ratio=0.05)
    program = _program_by_hand(X, y[:, None], path.gates, activation, SquaredLoss())
    for alpha, primal, dual, cert in zip(path.alphas, path.objectives, path.duals, path.certificates):
        program.alpha = float(alpha)
        sol = CvxpySolver().solve(program)
        p_star = program.objective(program.make_feasible(sol.coef), sol.intercept)
        assert dual <= p_star + 1e-8
        assert p_star <= primal + 1e-8
        assert cert.gap == pytest.approx(primal - dual, abs=1e-15)
        assert cert.converged
    np.testing.assert_allclose(path.relative_gaps, path.gaps / path.objectives, rtol=1e-12)


def test_points_agree_with_independent_cold_fits():
    """Each warm-started point and a cold fit of the plain estimator on the same gates
    certify the same program: their objectives differ by at most the larger gap."""
    X, y = _regression(seed=1)
    est = ConvexMLPRegressor("gated_relu", n_patterns=15, random_state=0, tol=1e-5)
    path = _path(X, y, est, n_alphas=5)
    assert path.warm_start
    for i, alpha in enumerate(path.alphas):
        cold = ConvexMLPRegressor("gated_relu", alpha=alpha, sampler=path.gates, tol=1e-5).fit(X, y)
        bound = max(cold.certificate_.gap, path.gaps[i])
        assert abs(cold.certificate_.primal - path.objectives[i]) <= bound
        # the stored network is the one the certificate describes
        J = path.networks[i].objective(X, y[:, None], np.full(len(y), 1 / len(y)), SquaredLoss(), alpha)
        assert J == pytest.approx(path.objectives[i], rel=1e-12)


@pytest.mark.parametrize("solver", ["fista", "barrier"])
def test_warm_starts_take_fewer_iterations_than_cold_starts(solver):
    X, y = _regression(n=60, seed=0)
    est = ConvexMLPRegressor("gated_relu", n_patterns=20, random_state=0, solver=solver)
    warm = _path(X, y, est, n_alphas=8)
    cold = _path(X, y, est, n_alphas=8, warm_start=False)
    assert not cold.warm_start
    np.testing.assert_array_equal(warm.gates, cold.gates)
    if solver == "fista":
        assert warm.n_iter.sum() < cold.n_iter.sum()
    else:  # the interior-point path restarts from the constant model: never worse
        assert warm.n_iter.sum() <= cold.n_iter.sum()
    # same optima up to the certified gaps
    bound = np.maximum(warm.gaps, cold.gaps) + 1e-15  # (+ rounding: the first gap is ~0)
    assert np.all(np.abs(warm.objectives - cold.objectives) <= bound)


def test_validation_scores_and_template_untouched():
    X, y = _regression(n=50, seed=2)
    Xv, yv = _regression(n=20, seed=5)
    est = ConvexMLPRegressor("gated_relu", n_patterns=10, random_state=0, warm_start=False)
    before = est.get_params()
    path = _path(X, y, est, n_alphas=4, X_val=Xv, y_val=yv)
    assert est.get_params() == before
    assert not hasattr(est, "coefs_")
    for net, tr, va in zip(path.networks, path.train_scores, path.val_scores):
        assert tr == pytest.approx(r2_score(y, net.forward(X)[:, 0]), rel=1e-12)
        assert va == pytest.approx(r2_score(yv, net.forward(Xv)[:, 0]), rel=1e-12)
    # no validation data: no validation scores
    assert _path(X, y, est, n_alphas=2).val_scores is None
    # explicit grids are sorted into decreasing order; scoring is passed through
    p2 = _path(X, y, est, alphas=[0.01, 0.1, 0.03], scoring="neg_mean_squared_error")
    np.testing.assert_array_equal(p2.alphas, [0.1, 0.03, 0.01])
    assert p2.scoring == "neg_mean_squared_error"
    mse = np.mean((p2.networks[-1].forward(X)[:, 0] - y) ** 2)
    assert p2.train_scores[-1] == pytest.approx(-mse, rel=1e-12)


def test_table_and_csv_round_trip(tmp_path):
    X, y = _regression()
    path = _path(X, y, ConvexMLPRegressor("gated_relu", n_patterns=8, random_state=0), n_alphas=3,
                 X_val=X[:10], y_val=y[:10])
    assert isinstance(path, RegularizationPath) and path.n_alphas == 3
    table = path.to_dict()
    assert list(table) == ["alpha", "objective", "dual", "gap", "relative_gap", "converged",
                           "n_neurons", "n_iter", "time", "train_score", "val_score"]
    assert all(len(v) == 3 for v in table.values())
    rows = path.to_rows()
    assert rows[1]["alpha"] == path.alphas[1] and rows[2]["n_neurons"] == path.n_neurons[2]
    out = path.write_csv(tmp_path / "path.csv")
    with open(out, newline="") as fh:
        read = list(csv.DictReader(fh))
    assert len(read) == 3
    for row, orig in zip(read, rows):
        assert float(row["alpha"]) == orig["alpha"]  # repr round-trips floats exactly
        assert float(row["objective"]) == orig["objective"]
        assert int(row["n_neurons"]) == orig["n_neurons"]
        assert row["converged"] == str(orig["converged"])
    # convex coefficients stack with one slice per alpha
    assert path.coefs.shape[0] == 3 and path.intercepts.shape == (3, 1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"alphas": [0.1, -1.0]}, "positive"),
        ({"alphas": [[0.1]]}, "1-D"),
        ({"n_alphas": 0}, "n_alphas"),
        ({"alpha_min_ratio": 2.0}, "alpha_min_ratio"),
        ({"X_val": np.zeros((3, 2))}, "X_val and y_val"),
        ({"estimator": "ridge"}, "ConvexMLPRegressor or ConvexMLPClassifier"),
    ],
)
def test_bad_input_is_reported(kwargs, match):
    X, y = _regression(n=20)
    kwargs.setdefault("estimator", ConvexMLPRegressor("gated_relu", n_patterns=5))
    with pytest.raises(ValueError, match=match):
        regularization_path(X, y, **kwargs)


def test_constant_target_has_no_default_grid():
    X, _ = _regression(n=20)
    with pytest.raises(ValueError, match="alpha_max"):
        regularization_path(X, np.zeros(20), estimator=ConvexMLPRegressor("gated_relu", n_patterns=5))


def test_display_from_path_draws_neurons_scores_and_objective():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from convexnn.plotting import RegularizationPathDisplay

    X, y = _regression()
    path = _path(X, y, ConvexMLPRegressor("gated_relu", n_patterns=8, random_state=0), n_alphas=4,
                 X_val=X[:15], y_val=y[:15])
    try:
        disp = RegularizationPathDisplay.from_path(path)
        assert len(disp.axes_) == 3
        expected = {"n_neurons": path.n_neurons, "train_score": path.train_scores,
                    "val_score": path.val_scores, "objective": path.objectives}
        for key, ydata in expected.items():
            line = disp.lines_[key]
            np.testing.assert_array_equal(line.get_xdata(), path.alphas)
            np.testing.assert_array_equal(line.get_ydata(), ydata)
        assert all(ax.get_xscale() == "log" for ax in disp.axes_)
        assert disp.lines_["n_neurons"] in disp.axes_[0].lines
        assert disp.lines_["objective"] in disp.axes_[2].lines
        # drawing into given axes
        fig, axes = plt.subplots(1, 3)
        disp2 = RegularizationPathDisplay.from_path(path, ax=axes)
        assert disp2.figure_ is fig and disp2.lines_["objective"] in axes[2].lines
        with pytest.raises(ValueError, match="3 Axes"):
            disp.plot(ax=axes[:2])
    finally:
        plt.close("all")
