"""Pattern search: the non-convex descent, its network as a convex point, the estimator's rounds.

Each claim of :mod:`convexnn.descent` is checked against an independent computation:
the gradient against central finite differences, the convex point against the
network's own outputs and weight decay, and the rounds' certified optima against
cvxpy/Clarabel on the final program.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from convexnn import ConvexMLPClassifier, ConvexMLPRegressor
from convexnn.descent import _objective, coef_from_network, descend, network_gates
from convexnn.losses import LogisticLoss, SoftmaxCrossEntropy, SquaredLoss
from convexnn.network import Network
from convexnn.operators import ConeOperator, GatedOperator
from convexnn.patterns import DataSampler, unique_patterns
from convexnn.penalties import ColumnGroupL2
from convexnn.programs import ConvexProgram

cvxpy = pytest.importorskip("cvxpy")


def _data(n=120, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.sin(2 * X[:, 0]) + np.abs(X[:, 1]) - 0.5 * X[:, 2] + 0.1 * rng.standard_normal(n)
    return X, y


def _network(activation, d, m, c, seed, one_output_per_unit=True):
    rng = np.random.default_rng(seed)
    W2 = rng.standard_normal((m, c))
    if one_output_per_unit:
        W2 *= np.eye(c)[rng.integers(0, c, m)]
    return Network([rng.standard_normal((d, m)), W2], [rng.standard_normal(m), rng.standard_normal(c)],
                   activation, negative_slope=0.1 if activation == "leaky_relu" else None)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "abs"])
@pytest.mark.parametrize("loss_name", ["squared", "logistic", "softmax"])
def test_objective_gradient_matches_finite_differences(activation, loss_name):
    X, y = _data(n=50)
    c = 3 if loss_name == "softmax" else 1
    rng = np.random.default_rng(1)
    if loss_name == "squared":
        loss, Y = SquaredLoss(), y[:, None]
    elif loss_name == "logistic":
        loss, Y = LogisticLoss(), np.where(y > 0, 1.0, -1.0)[:, None]
    else:
        loss, Y = SoftmaxCrossEntropy(), np.eye(3)[rng.integers(0, 3, 50)]
    w = rng.random(50)
    w /= w.sum()
    net = _network(activation, 3, 6, c, seed=2)
    fun, theta, _ = _objective(net, X, Y, w, loss, alpha=0.05)
    J, grad = fun(theta)
    assert J == pytest.approx(net.objective(X, Y, w, loss, 0.05), rel=1e-12)
    # kinks have measure zero: at random weights no pre-activation is within h of 0
    h = 1e-6
    support = np.concatenate([np.ones(3 * 6 + 6), (net.coefs[1] != 0).ravel(), np.ones(c)]).astype(bool)
    numeric = np.zeros_like(theta)
    for i in np.flatnonzero(support):
        e = np.zeros_like(theta)
        e[i] = h
        numeric[i] = (fun(theta + e)[0] - fun(theta - e)[0]) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)
    assert np.all(grad[~support] == 0)  # the output weights' zero pattern is fixed


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "abs"])
def test_descend_lowers_J_and_reports_it(activation):
    X, y = _data()
    net = _network(activation, 3, 8, 1, seed=3)
    w = np.full(len(y), 1 / len(y))
    J0 = net.objective(X, y[:, None], w, SquaredLoss(), 1e-2)
    moved, J = descend(net, X, y[:, None], w, SquaredLoss(), 1e-2, max_iter=200)
    assert J < 0.9 * J0
    assert J == pytest.approx(moved.objective(X, y[:, None], w, SquaredLoss(), 1e-2), rel=1e-12)
    assert moved.activation == activation and moved.n_neurons == 8


def test_descend_refuses_gated_networks_and_bad_max_iter():
    X, y = _data()
    net = _network("relu", 3, 4, 1, seed=0)
    w = np.full(len(y), 1 / len(y))
    gated = Network(net.coefs, net.intercepts, "gated_relu", gates=np.ones((4, 4)))
    with pytest.raises(ValueError, match="gated ReLU"):
        descend(gated, X, y[:, None], w, SquaredLoss(), 1e-2)
    with pytest.raises(ValueError, match="max_iter"):
        descend(net, X, y[:, None], w, SquaredLoss(), 1e-2, max_iter=0)
    with pytest.raises(ValueError, match=r"X of shape \(n_samples, 3\)"):
        descend(net, X[:, :2], y[:, None], w, SquaredLoss(), 1e-2)
    with pytest.raises(ValueError, match=r"Y of shape \(n_samples, 1\)"):
        descend(net, X, y, w, SquaredLoss(), 1e-2)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "abs"])
def test_coef_from_network_is_a_feasible_point_with_the_networks_outputs(activation):
    X, y = _data()
    n = len(y)
    c = 2
    net = _network(activation, 3, 7, c, seed=4)
    net.coefs[0][:, 0] = 0.0  # one dead unit: empty pattern, dropped
    net.intercepts[0][0] = -1.0
    gates = np.hstack([network_gates(net), DataSampler(5).sample(X, 0).gates])
    # a unit negative on every sample: zero for ReLU (dropped), linear for leaky ReLU
    # and abs (the empty pattern is kept for them)
    keep, representative = unique_patterns(X, gates, keep_empty=activation != "relu")
    assert (representative[0] == -1) == (activation == "relu")
    program = ConvexProgram(SquaredLoss(), ColumnGroupL2(),
                            ConeOperator(GatedOperator(X, gates[:, keep]), activation, 0.1),
                            np.column_stack([y, -y]), np.full(n, 1 / n), 0.03)
    coef = coef_from_network(program, net, representative[:7])
    # the point's outputs are the network's
    np.testing.assert_allclose(program.predict(coef, net.intercepts[1]), net.forward(X), rtol=1e-12, atol=1e-12)
    cmin, _ = program.operator.cone_extremes(coef)
    assert cmin.min() >= -1e-12  # every block in its cone
    penalty = program.penalty.value(coef)
    alive = (np.arange(7) != 0) | (activation != "relu")
    W1, W2 = net.coefs
    decay = 0.5 * ((W1[:, alive] ** 2).sum() + (net.intercepts[0][alive] ** 2).sum() + (W2[alive] ** 2).sum())
    assert penalty <= decay * (1 + 1e-12)
    units = np.sqrt((W1**2).sum(0) + net.intercepts[0] ** 2) * np.abs(W2).sum(1)
    assert penalty == pytest.approx(units[alive].sum(), rel=1e-12)  # distinct patterns: no merging


def test_coef_from_network_needs_one_output_per_unit():
    X, _ = _data()
    net = _network("relu", 3, 4, 2, seed=5, one_output_per_unit=False)
    program = ConvexProgram(SquaredLoss(), ColumnGroupL2(),
                            ConeOperator(GatedOperator(X, network_gates(net)), "relu", 0.0),
                            np.zeros((len(X), 2)), np.full(len(X), 1 / len(X)), 0.1)
    with pytest.raises(ValueError, match="one output"):
        coef_from_network(program, net, np.arange(4))


def test_pattern_search_rounds_lower_the_certified_objective():
    X, y = _data(n=150)
    common = dict(activation="relu", alpha=3e-3, n_patterns=12, tol=1e-6, random_state=0)
    plain = ConvexMLPRegressor(**common).fit(X, y)
    est = ConvexMLPRegressor(**common, pattern_search=3).fit(X, y)
    assert plain.search_history_ == []
    history = est.search_history_
    assert 1 <= len(history) <= 3
    assert history[0]["objective_before"] == pytest.approx(plain.certificate_.primal, rel=1e-12)
    previous = plain.certificate_.primal
    for record in history:
        assert record["descent_objective"] <= record["objective_before"]
        if "objective" in record:
            # the descended network is feasible for the round's program: its certified
            # optimum is at most that network's J, up to the tolerance
            assert record["objective"] <= record["descent_objective"] * (1 + 1e-6)
            assert record["n_patterns"] <= plain.gates_.shape[1]
            if "stopped" not in record:
                assert record["objective"] <= previous
                previous = record["objective"]
    assert est.certificate_.converged
    assert est.certificate_.primal == pytest.approx(previous, rel=1e-12)
    assert est.certificate_.primal < 0.99 * plain.certificate_.primal
    # an independent solve of the final program agrees with the certificate
    oracle = ConvexMLPRegressor(activation="relu", alpha=3e-3, sampler=est.gates_, solver="cvxpy",
                                tol=1e-7).fit(X, y)
    J_star = oracle.certificate_.primal
    assert J_star * (1 - 1e-6) <= est.certificate_.primal <= J_star * (1 + 2e-6)
    assert est.certificate_.dual <= J_star * (1 + 1e-7)
    assert est.gates_.shape[1] <= plain.gates_.shape[1]


def test_pattern_search_classifier_and_leaky_relu():
    X, y = _data(n=120)
    labels = (y > np.median(y)).astype(int)
    for Est, target, activation in ((ConvexMLPClassifier, labels, "relu"), (ConvexMLPRegressor, y, "leaky_relu")):
        common = dict(activation=activation, alpha=1e-2, n_patterns=10, tol=1e-4, random_state=1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # certified: no ConvergenceWarning
            plain = Est(**common).fit(X, target)
            est = Est(**common, pattern_search=2).fit(X, target)
        assert est.certificate_.converged
        assert est.certificate_.primal <= plain.certificate_.primal * (1 + 1e-4)
        assert est.search_history_[0]["descent_objective"] < plain.certificate_.primal


def test_pattern_search_refuses_gated_and_skips_complete_patterns():
    X, y = _data(n=60)
    with pytest.raises(ValueError, match="pattern_search needs activation"):
        ConvexMLPRegressor(activation="gated_relu", pattern_search=1).fit(X, y)
    with pytest.raises(ValueError, match="pattern_search"):
        ConvexMLPRegressor(pattern_search=-1).fit(X, y)
    x1 = X[:, :1]
    est = ConvexMLPRegressor(sampler="exhaustive", pattern_search=2, tol=1e-4).fit(x1, y)
    assert est.search_history_ == [] and est.certificate_.scope == "global"


def test_pattern_search_respects_max_time():
    X, y = _data(n=150)
    est = ConvexMLPRegressor(alpha=3e-3, n_patterns=12, tol=1e-6, random_state=0, pattern_search=50,
                             max_time=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    # the first solve already hit the limit: no rounds
    assert est.search_history_ == [] and est.stop_reason_ in ("max_time", "converged")


def test_pattern_search_several_outputs_weights_and_softmax():
    X, y = _data(n=150)
    Y2 = np.c_[y, X[:, 0] - y]
    sw = np.random.default_rng(0).random(len(y))
    labels = np.digitize(y, np.quantile(y, [1 / 3, 2 / 3]))
    cases = [(ConvexMLPRegressor, Y2, None), (ConvexMLPRegressor, y, sw), (ConvexMLPClassifier, labels, None)]
    for Est, target, weight in cases:
        common = dict(alpha=1e-2, n_patterns=10, random_state=0, tol=1e-4)
        plain = Est(**common).fit(X, target, sample_weight=weight)
        est = Est(**common, pattern_search=2).fit(X, target, sample_weight=weight)
        assert est.certificate_.converged
        assert est.search_history_[0]["objective_before"] == pytest.approx(plain.certificate_.primal, rel=1e-12)
        assert est.certificate_.primal < 0.95 * plain.certificate_.primal
        # each unit still feeds one output (the cone programs' architecture)
        assert (np.count_nonzero(est.coefs_[1], axis=1) <= 1).all()
        # the exported network's J is the certificate's primal
        network = est.to_network()
        Yenc = est._encode_targets(labels) if Est is ConvexMLPClassifier else np.asarray(target).reshape(len(y), -1)
        w = np.ones(len(y)) if weight is None else weight
        loss = est._loss(Yenc.shape[1])
        assert network.objective(X, Yenc, w / w.sum(), loss, 1e-2) == pytest.approx(est.certificate_.primal, rel=1e-10)


def test_pattern_search_stops_at_once_without_units():
    X, y = _data(n=80)
    est = ConvexMLPRegressor(alpha=10.0, pattern_search=3).fit(X, y)  # alpha above alpha_max
    assert est.n_neurons_ == 0
    assert len(est.search_history_) == 1 and "stopped" in est.search_history_[0]


def test_ctrl_c_during_the_search_keeps_the_last_certified_round(monkeypatch):
    import convexnn.descent as descent_module

    X, y = _data(n=120)
    common = dict(alpha=3e-3, n_patterns=12, random_state=0, tol=1e-5)
    plain = ConvexMLPRegressor(**common).fit(X, y)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(descent_module, "descend", interrupted)
    from convexnn import FitInterruptedWarning

    with pytest.warns(FitInterruptedWarning):
        est = ConvexMLPRegressor(**common, pattern_search=2).fit(X, y)
    assert est.search_history_ == [{"round": 1, "objective_before": plain.certificate_.primal,
                                    "stopped": "interrupted"}]
    assert est.certificate_.primal == pytest.approx(plain.certificate_.primal, rel=1e-12)
    np.testing.assert_array_equal(est.gates_, plain.gates_)
