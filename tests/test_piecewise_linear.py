"""Leaky ReLU and absolute-value networks (Ergen & Pilanci, piecewise linear activations).

On the cone :math:`\\{u : E_k X_a u \\ge 0\\}` of pattern ``k`` these activations act as a
fixed diagonal :math:`S_k` (``D_k + s (I - D_k)`` and ``E_k``), so their programs are the
ReLU program with ``D_k`` replaced by ``S_k``: same cones, blocks and penalty. These
tests check that program against cvxpy/Clarabel (reusing the oracle helpers of
``test_solvers_oracle.py``), the exported networks (numpy by hand, torch, ONNX), save/load,
bad input and the reduction to ReLU at slope 0.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("cvxpy")

from scipy.optimize import minimize  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

from convexnn import ConvexMLPClassifier, ConvexMLPRegressor  # noqa: E402
from convexnn import io as cio  # noqa: E402
from convexnn.certificates import certify  # noqa: E402
from convexnn.losses import SquaredLoss  # noqa: E402
from convexnn.operators import ConeOperator, GatedOperator, activation_diagonal  # noqa: E402
from convexnn.patterns import ExhaustiveSampler  # noqa: E402
from convexnn.penalties import ColumnGroupL2  # noqa: E402
from convexnn.programs import ConvexProgram  # noqa: E402
from convexnn.solvers import FISTA  # noqa: E402
from test_solvers_oracle import (  # noqa: E402
    MAX_ITER,
    RELU_TOL,
    RTOL,
    _check_against_oracle,
    _estimator_data,
    estimator_J,
    forward,
    make_program,
    objective_J,
    reference_optimum,
)

# (activation, negative_slope): leaky ReLU with two slopes, and abs
ACTIVATIONS = [("leaky_relu", 0.1), ("leaky_relu", 0.5), ("abs", 0.01)]
IDS = ["leaky0.1", "leaky0.5", "abs"]
FAMILIES = ["reg1", "reg2", "binary", "multiclass"]


def _program(family, activation, slope, seed):
    return make_program(family, activation, seed, negative_slope=slope)


# --------------------------------------------------------------------------- the operator


@pytest.mark.parametrize(("activation", "slope"), ACTIVATIONS, ids=IDS)
def test_operator_is_the_activation_on_its_cones(activation, slope):
    """A(U) = sum_k act(Xa v_k) - act(Xa w_k) for cone-feasible blocks; adjoint
    identities; the norm estimate bounds the dense operator's."""
    program = _program("reg2", activation, slope, 0)
    op = program.operator
    Xa = op.gated.Xa
    rng = np.random.default_rng(0)
    U = program.make_feasible(rng.normal(size=program.coef_shape))
    assert program.cone_violation(U) <= 1e-12
    H = op.preactivations(U)
    hand = {
        "leaky_relu": lambda h: np.maximum(h, slope * h),
        "abs": np.abs,
    }[activation]
    P = op.n_patterns
    expected = (hand(H[:, :P]) - hand(H[:, P:])).sum(axis=1)
    np.testing.assert_allclose(op.matvec(U), expected, atol=1e-12)
    np.testing.assert_allclose(op.forward_from_preactivations(H), expected, atol=1e-12)
    # S_k from activation_diagonal
    a, b = activation_diagonal(activation, slope)
    S = a * op.masks + b
    np.testing.assert_array_equal(op.diagonals(), S)
    # adjoints: <A U, Theta> = <U, A* Theta>, and the combined adjoint with multipliers
    Theta = rng.normal(size=program.Y.shape)
    Lam = rng.uniform(size=(op.n_samples, op.n_blocks, program.n_outputs))
    V = rng.normal(size=program.coef_shape)
    assert np.sum(op.matvec(V) * Theta) == pytest.approx(np.sum(V * op.rmatvec(Theta)), rel=1e-12)
    lhs = np.sum(op.matvec(V) * Theta) - np.sum(Lam * op.cone_values(V))
    assert lhs == pytest.approx(np.sum(V * op.adjoint_combined(Theta, Lam)), rel=1e-12)
    G = op.pattern_rmatvec(Theta)
    for k in range(P):
        np.testing.assert_allclose(G[k], Xa.T @ (S[:, [k]] * Theta), atol=1e-12)
    # the power-iteration norm is (up to its 2 % inflation) the dense P-block norm
    w = program.sample_weight
    dense = np.hstack([S[:, [k]] * Xa for k in range(P)])
    exact = np.linalg.eigvalsh(dense.T @ (w[:, None] * dense)).max()
    assert exact * 0.95 <= op.pattern_norm_squared(w, n_iter=200) <= exact * 1.03


# --------------------------------------------------------------------------- against cvxpy


# 4 families x 3 activations x 2 seeds = 24 problems (program level)
@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize(("activation", "slope"), ACTIVATIONS, ids=IDS)
@pytest.mark.parametrize("family", FAMILIES)
def test_fista_matches_cvxpy_oracle(family, activation, slope, seed):
    """FISTA with the exact cone prox against Clarabel: J within 1e-5 relative, the
    certificate's gap bounds the true suboptimality, and the gap is non-negative."""
    program = _program(family, activation, slope, seed)
    p_star, _ = reference_optimum(program)
    _check_against_oracle(program, activation, RELU_TOL, RTOL, p_star)


@pytest.mark.parametrize(("activation", "slope"), ACTIVATIONS, ids=IDS)
@pytest.mark.parametrize("family", ["reg1", "binary"])
def test_alpha_max_is_exact(family, activation, slope):
    """alpha_max uses the activation's S_k: just above it the optimum is the constant
    model, just below it is not."""
    program = _program(family, activation, slope, 3)
    alpha_max = program.alpha_max()
    assert alpha_max > 0
    constant = program.objective(program.zero_coef(), program.constant_intercept())
    program.alpha = 1.001 * alpha_max
    above, _ = reference_optimum(program)
    assert above == pytest.approx(constant, rel=1e-7)
    sol = FISTA().solve(program, tol=1e-8, max_iter=MAX_ITER)
    np.testing.assert_allclose(sol.coef, 0.0, atol=1e-12)
    program.alpha = 0.98 * alpha_max
    below, _ = reference_optimum(program)
    assert below < constant - 1e-9 * abs(constant)


@pytest.mark.parametrize(("activation", "slope"), [("leaky_relu", 0.2), ("abs", 0.01)],
                         ids=["leaky0.2", "abs"])
def test_complete_patterns_certify_against_nonconvex_training(activation, slope):
    """1-D data with every pattern: the certificate is global, and local non-convex
    training of the same activation (L-BFGS on J from random starts) never beats it."""
    rng = np.random.default_rng(7)
    n = 14
    X = np.sort(rng.uniform(-2, 2, size=(n, 1)), axis=0)
    Y = np.sin(3 * X) + 0.05 * rng.normal(size=(n, 1))
    w = np.full(n, 1.0 / n)
    patterns = ExhaustiveSampler().sample(X)
    operator = ConeOperator(GatedOperator(X, patterns.gates), activation, slope)
    program = ConvexProgram(SquaredLoss(), ColumnGroupL2(), operator, Y, w, 1e-2, complete=True)
    p_star, ref = reference_optimum(program)
    cert = certify(program, ref.coef, ref.intercept, ref.dual_points, activation=activation,
                   tol=1e-6, primal=p_star, refine=True)
    assert cert.scope == "global" and cert.relative_gap <= 1e-6
    assert cert.activation == activation and "Global certificate" in cert.certifies
    m = 8
    best = np.inf
    for start in range(3):
        r = np.random.default_rng(start)

        def J(theta):
            W1, b1 = theta[:m].reshape(1, m), theta[m: 2 * m]
            W2, b2 = theta[2 * m: 3 * m].reshape(m, 1), theta[3 * m:]
            return objective_J(X, Y, w, SquaredLoss(), program.alpha, W1, b1, W2, b2,
                               activation=activation, negative_slope=slope)

        res = minimize(J, r.normal(size=3 * m + 1), method="L-BFGS-B", options={"maxiter": 5000})
        best = min(best, res.fun)
    assert best >= p_star - 1e-8
    assert best <= p_star * 1.5  # the comparison is meaningful: training got close


# --------------------------------------------------------------------------- estimators


def _fit(family, activation, slope, seed=0, **params):
    X, y, sw = _estimator_data(family, seed)
    Est = ConvexMLPRegressor if family.startswith("reg") else ConvexMLPClassifier
    defaults = dict(alpha=3e-2, n_patterns=8, random_state=seed, tol=RELU_TOL, max_iter=MAX_ITER)
    est = Est(activation, negative_slope=slope, **{**defaults, **params})
    return est.fit(X, y, sample_weight=sw), X, y, sw


@pytest.mark.parametrize(("activation", "slope"), ACTIVATIONS, ids=IDS)
@pytest.mark.parametrize("family", FAMILIES)
def test_estimator_J_is_the_certified_primal(family, activation, slope):
    """J of coefs_/intercepts_ (numpy forward with the activation, by hand) equals the
    certificate's primal; predict / decision_function is that forward pass; the
    certificate names the activation; the cvxpy estimator agrees."""
    est, X, y, sw = _fit(family, activation, slope)
    cert = est.certificate_
    assert cert.converged and cert.gap >= -1e-12
    assert cert.primal == pytest.approx(estimator_J(est, X, y, sw), rel=1e-6)
    assert cert.activation == activation and cert.scope == "sampled"
    if activation == "leaky_relu":
        assert cert.negative_slope == slope
        assert f"leaky-ReLU (negative slope {slope:g})" in cert.certifies
    else:
        assert cert.negative_slope is None and "absolute-value" in cert.certifies
    W1, W2 = est.coefs_
    b1, b2 = est.intercepts_
    Z = forward(X, W1, b1, W2, b2, activation=activation, negative_slope=slope)
    out = est.predict(X) if family.startswith("reg") else est.decision_function(X)
    np.testing.assert_allclose(out.reshape(Z.shape), Z, rtol=1e-12, atol=1e-12)
    if family == "reg2":  # each neuron feeds one output
        assert np.all(np.count_nonzero(W2, axis=1) == 1)
    with warnings.catch_warnings():
        # the interior-point solution's gradient-based dual is only ~1e-5 tight
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref, *_ = _fit(family, activation, slope, solver="cvxpy", tol=1e-8)
    J = cert.primal
    p_star = ref.certificate_.primal
    assert cert.gap >= J - p_star - 1e-9
    assert abs(J - p_star) <= RTOL * abs(p_star)


@pytest.mark.parametrize(("activation", "slope"), ACTIVATIONS, ids=IDS)
@pytest.mark.parametrize("family", ["reg2", "multiclass"])
def test_to_torch_matches_the_estimator(family, activation, slope):
    torch = pytest.importorskip("torch")
    est, X, _, _ = _fit(family, activation, slope, tol=1e-3)
    module = est.to_torch()
    assert module.activation == activation
    with torch.no_grad():
        out = module(torch.as_tensor(X)).numpy()
    expected = est.predict(X) if family.startswith("reg") else est.decision_function(X)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("activation", "slope", "dynamo"),
    [("leaky_relu", 0.3, False), ("abs", 0.01, False), ("leaky_relu", 0.3, True)],
    ids=["leaky0.3", "abs", "leaky0.3-dynamo"],
)
def test_onnx_matches_the_estimator(activation, slope, dynamo, tmp_path):
    """float64 ONNX reproduces the estimator to rounding (the slope is not rounded to a
    float32 constant, and no LeakyRelu kernel is needed in onnxruntime)."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    if dynamo:
        pytest.importorskip("onnxscript")
    from test_io import _onnx_run

    est, X, _, _ = _fit("binary", activation, slope, tol=1e-3)
    out = _onnx_run(est.to_onnx(tmp_path / "net.onnx", dynamo=dynamo), X)
    np.testing.assert_allclose(out["decision_function"], est.decision_function(X), rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(out["probabilities"], est.predict_proba(X), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("activation", "slope"), [("leaky_relu", 0.3), ("abs", 0.01)],
                         ids=["leaky0.3", "abs"])
def test_save_load_round_trip(activation, slope, tmp_path):
    est, X, _, _ = _fit("binary", activation, slope, tol=1e-3)
    loaded = cio.load(cio.save(est, tmp_path / "model.npz"))
    assert type(loaded) is type(est)
    assert loaded.get_params() == est.get_params()
    assert loaded.activation == activation and loaded.negative_slope == slope
    assert loaded.certificate_ == est.certificate_
    for a, b in zip(loaded.coefs_ + loaded.intercepts_, est.coefs_ + est.intercepts_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.decision_function(X), est.decision_function(X))
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    network = loaded.to_network()
    assert network.activation == activation
    assert network.negative_slope == (slope if activation == "leaky_relu" else None)


def test_npz_export_names_the_activation_and_slope(tmp_path):
    from convexnn.export import save_npz

    est, X, _, _ = _fit("reg1", "leaky_relu", 0.25, tol=1e-3)
    with np.load(save_npz(est, tmp_path / "net.npz"), allow_pickle=False) as f:
        arrays = dict(f)
    assert str(arrays["activation"]) == "leaky_relu" and float(arrays["negative_slope"]) == 0.25
    Z = forward(X, arrays["W1"], arrays["b1"], arrays["W2"], arrays["b2"],
                activation="leaky_relu", negative_slope=float(arrays["negative_slope"]))
    np.testing.assert_allclose(Z[:, 0], est.predict(X), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- bad input, slope 0


@pytest.mark.parametrize("slope", [-0.1, 1.0, 1.5, np.nan])
@pytest.mark.parametrize("Est", [ConvexMLPRegressor, ConvexMLPClassifier])
def test_slope_outside_unit_interval_is_refused(Est, slope):
    X, y, _ = _estimator_data("binary", 0)
    with pytest.raises(ValueError, match="negative_slope"):
        Est("leaky_relu", negative_slope=slope).fit(X, y)
    gated = GatedOperator(X, np.ones((X.shape[1] + 1, 1)))
    with pytest.raises(ValueError, match=r"negative_slope must be in \[0, 1\)"):
        ConeOperator(gated, "leaky_relu", slope)


def test_unknown_activation_is_refused():
    X, y, _ = _estimator_data("binary", 0)
    with pytest.raises(ValueError, match="activation"):
        ConvexMLPClassifier("tanh").fit(X, y)
    with pytest.raises(ValueError, match="unknown activation 'gated_relu'"):
        ConeOperator(GatedOperator(X, np.ones((X.shape[1] + 1, 1))), "gated_relu")


@pytest.mark.parametrize("family", ["reg2", "binary"])
def test_slope_zero_is_the_relu_fit(family):
    leaky, X, _, _ = _fit(family, "leaky_relu", 0.0, tol=1e-4)
    relu, _, _, _ = _fit(family, "relu", 0.0, tol=1e-4)
    for a, b in zip(leaky.coefs_ + leaky.intercepts_, relu.coefs_ + relu.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert leaky.certificate_.primal == pytest.approx(relu.certificate_.primal, rel=1e-12)
    assert leaky.certificate_.dual == pytest.approx(relu.certificate_.dual, rel=1e-12)
    assert leaky.n_iter_ == relu.n_iter_
