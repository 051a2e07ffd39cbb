"""Tests of convexnn.losses: values, gradients, conjugates and the dual helpers.

Every loss is a weighted sum ``L(Z) = sum_i w_i l(z_i, y_i)`` with positive weights
summing to one; these tests check each method against an independent computation
(finite differences, explicit formulas, Fenchel-Young) rather than against itself.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

from convexnn.losses import LogisticLoss, SoftmaxCrossEntropy, SquaredLoss

SEEDS = range(5)


# --------------------------------------------------------------------------- data


def _weights(rng, n):
    w = rng.uniform(0.1, 1.0, n)
    return w / w.sum()


def _problem(kind: str, seed: int, n: int = 15):
    """(loss, Z, Y, w) with random predictions, targets of the loss's kind, weights."""
    rng = np.random.default_rng(seed)
    w = _weights(rng, n)
    if kind == "squared":
        c = 1 + seed % 3
        return SquaredLoss(), rng.normal(size=(n, c)), rng.normal(size=(n, c)) * 2, w
    if kind == "logistic":
        Y = rng.integers(0, 2, size=(n, 1)).astype(float)
        Y[0], Y[1] = 0.0, 1.0  # both classes present
        return LogisticLoss(), 2 * rng.normal(size=(n, 1)), Y, w
    if kind == "softmax":
        c = 3 + seed % 2
        codes = rng.integers(0, c, size=n)
        codes[:c] = np.arange(c)
        return SoftmaxCrossEntropy(), 2 * rng.normal(size=(n, c)), np.eye(c)[codes], w
    raise AssertionError(kind)


def _feasible_dual(kind: str, Y, w, rng):
    """A random point of dom L*: Theta_i = w_i (q_i - y_i) with q_i in the domain."""
    n, c = Y.shape
    if kind == "squared":
        return rng.normal(size=(n, c)) * w[:, None]
    if kind == "logistic":
        q = rng.uniform(0, 1, size=(n, 1))
        q[:2] = [[0.0], [1.0]]  # include the boundary (0 log 0 = 0)
        return w[:, None] * (q - Y)
    q = rng.dirichlet(np.ones(c), size=n)
    q[0] = np.eye(c)[0]  # a vertex of the simplex
    return w[:, None] * (q - Y)


def _naive_value(kind, Z, Y, w):
    """Per-sample formulas of DESIGN.md §1, written independently of the library."""
    if kind == "squared":
        return float(sum(w[i] * 0.5 * np.sum((Z[i] - Y[i]) ** 2) for i in range(len(w))))
    if kind == "logistic":
        s = 2 * Y[:, 0] - 1  # +-1 labels: log(1 + exp(-s z))
        return float(sum(w[i] * np.log1p(np.exp(-s[i] * Z[i, 0])) for i in range(len(w))))
    return float(
        sum(w[i] * (np.log(np.sum(np.exp(Z[i]))) - Z[i, Y[i].argmax()]) for i in range(len(w)))
    )


KINDS = ["squared", "logistic", "softmax"]


# --------------------------------------------------------------------------- value & gradient


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", KINDS)
def test_value_matches_naive_formula(kind, seed):
    loss, Z, Y, w = _problem(kind, seed)
    assert loss.value(Z, Y, w) == pytest.approx(_naive_value(kind, Z, Y, w), rel=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", KINDS)
def test_gradient_matches_central_differences(kind, seed):
    loss, Z, Y, w = _problem(kind, seed)
    G = loss.gradient(Z, Y, w)
    assert G.shape == Z.shape
    h = 1e-5
    G_fd = np.zeros_like(Z)
    for idx in np.ndindex(*Z.shape):
        Zp, Zm = Z.copy(), Z.copy()
        Zp[idx] += h
        Zm[idx] -= h
        G_fd[idx] = (loss.value(Zp, Y, w) - loss.value(Zm, Y, w)) / (2 * h)
    np.testing.assert_allclose(G, G_fd, rtol=1e-6, atol=1e-6 * np.abs(G).max())
    assert np.linalg.norm(G - G_fd) <= 1e-6 * np.linalg.norm(G)


@pytest.mark.parametrize("kind", KINDS)
def test_value_and_gradient_agree_with_separate_calls(kind):
    loss, Z, Y, w = _problem(kind, 3)
    v, G = loss.value_and_gradient(Z, Y, w)
    assert v == pytest.approx(loss.value(Z, Y, w), rel=1e-14)
    np.testing.assert_allclose(G, loss.gradient(Z, Y, w), rtol=1e-14, atol=0)


@pytest.mark.parametrize("kind", ["logistic", "softmax"])
def test_gradient_is_weighted_link_minus_target(kind):
    """For the exponential-family losses, grad_i = w_i (link(z_i) - y_i)."""
    loss, Z, Y, w = _problem(kind, 1)
    np.testing.assert_allclose(loss.gradient(Z, Y, w), w[:, None] * (loss.link(Z) - Y), atol=1e-15)


@pytest.mark.parametrize("kind", KINDS)
def test_values_finite_for_extreme_predictions(kind):
    loss, Z, Y, w = _problem(kind, 2)
    Z = np.sign(Z) * 800.0  # exp(800) overflows: the implementation must not
    v, G = loss.value_and_gradient(Z, Y, w)
    assert np.isfinite(v) and np.all(np.isfinite(G))
    if kind != "squared":
        assert v == pytest.approx(_stable_naive(kind, Z, Y, w), rel=1e-12)


def _stable_naive(kind, Z, Y, w):
    if kind == "logistic":
        s = 2 * Y[:, 0] - 1
        return float(w @ np.logaddexp(0, -s * Z[:, 0]))
    return float(w @ (logsumexp(Z, axis=1) - np.sum(Y * Z, axis=1)))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", KINDS)
def test_smoothness_bounds_per_sample_hessian(kind, seed):
    """``smoothness`` bounds the largest Hessian eigenvalue of l(., y) (unweighted)."""
    loss, Z, Y, w = _problem(kind, seed)
    Z = Z / 4  # near zero, where the logistic/softmax curvature is largest
    for z in Z:
        if kind == "squared":
            H = np.eye(len(z))
        elif kind == "logistic":
            p = 1 / (1 + np.exp(-z[0]))
            H = np.array([[p * (1 - p)]])
        else:
            p = np.exp(z - logsumexp(z))
            H = np.diag(p) - np.outer(p, p)
        assert np.linalg.eigvalsh(H)[-1] <= loss.smoothness + 1e-15
    # and it is not a loose bound: attained (or nearly) at z = 0
    if kind == "logistic":
        assert loss.smoothness == pytest.approx(0.25)


# --------------------------------------------------------------------------- conjugate


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", KINDS)
def test_fenchel_young_equality_at_gradient(kind, seed):
    loss, Z, Y, w = _problem(kind, seed)
    G = loss.gradient(Z, Y, w)
    lhs = loss.value(Z, Y, w) + loss.conjugate(G, Y, w)
    assert lhs == pytest.approx(float(np.sum(G * Z)), abs=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", KINDS)
def test_fenchel_young_inequality_for_feasible_duals(kind, seed):
    loss, _, Y, w = _problem(kind, seed)
    rng = np.random.default_rng(100 + seed)
    for _ in range(20):
        Theta = _feasible_dual(kind, Y, w, rng)
        conj = loss.conjugate(Theta, Y, w)
        assert np.isfinite(conj)
        Z = 3 * rng.normal(size=Y.shape)
        assert loss.value(Z, Y, w) + conj >= float(np.sum(Theta * Z)) - 1e-12


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", KINDS)
def test_conjugate_is_supremum(kind, seed):
    """L*(Theta) = sup_Z <Theta, Z> - L(Z), attained where grad L(Z) = Theta."""
    loss, Z, Y, w = _problem(kind, seed)
    Theta = loss.gradient(Z, Y, w)
    rng = np.random.default_rng(seed)
    best = float(np.sum(Theta * Z)) - loss.value(Z, Y, w)
    # no perturbation does better than the maximiser (concavity in Z)
    for _ in range(20):
        Zp = Z + 0.3 * rng.normal(size=Z.shape)
        assert float(np.sum(Theta * Zp)) - loss.value(Zp, Y, w) <= best + 1e-12
    assert loss.conjugate(Theta, Y, w) == pytest.approx(best, abs=1e-9)


@pytest.mark.parametrize("kind", ["logistic", "softmax"])
def test_conjugate_infinite_outside_domain(kind):
    loss, Z, Y, w = _problem(kind, 0)
    Theta = loss.gradient(Z, Y, w)
    assert np.isfinite(loss.conjugate(Theta, Y, w))
    n, c = Y.shape
    # q_0 = Theta_0 / w_0 + y_0 leaves [0, 1] / the simplex by a clear margin
    bad = Theta.copy()
    bad[0] = w[0] * (np.full(c, 1.5 if kind == "logistic" else 0.0) - Y[0])
    if kind == "softmax":
        bad[0, 0] += w[0] * 1.5  # q_0 = (1.5, 0, ...): sums to 1.5
    assert loss.conjugate(bad, Y, w) == np.inf
    neg = Theta.copy()
    neg[1] = w[1] * (np.full(c, -0.2 if kind == "logistic" else 0.0) - Y[1])
    if kind == "softmax":
        neg[1, 0] += w[1] * -0.2
        neg[1, 1] += w[1] * 1.2  # sums to one but has a negative entry
    assert loss.conjugate(neg, Y, w) == np.inf


@pytest.mark.parametrize("kind", KINDS)
def test_conjugate_infinite_for_mass_on_zero_weight_samples(kind):
    loss, Z, Y, w = _problem(kind, 4)
    w = w.copy()
    w[3] = 0.0
    w /= w.sum()
    Theta = loss.gradient(Z, Y, w)
    assert np.all(Theta[3] == 0)
    assert np.isfinite(loss.conjugate(Theta, Y, w))
    Theta[3, 0] = 1e-3
    assert loss.conjugate(Theta, Y, w) == np.inf


def test_squared_conjugate_formula():
    loss, _, Y, w = _problem("squared", 2)
    rng = np.random.default_rng(0)
    Theta = rng.normal(size=Y.shape)
    expected = sum(
        w[i] * (0.5 * np.sum((Theta[i] / w[i]) ** 2) + Theta[i] / w[i] @ Y[i]) for i in range(len(w))
    )
    assert loss.conjugate(Theta, Y, w) == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------------- project_dual


def _colsum_scale(Theta, w):
    return max(np.abs(Theta).max(), w.max())


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", KINDS)
def test_project_dual_zero_column_sums_and_in_domain(kind, seed):
    loss, Z, Y, w = _problem(kind, seed)
    rng = np.random.default_rng(seed)
    candidates = [loss.gradient(Z, Y, w), _feasible_dual(kind, Y, w, rng)]
    for Theta in candidates:
        assert np.abs(Theta.sum(axis=0)).max() > 1e-6  # the test is not vacuous
        P = loss.project_dual(Theta, Y, w)
        assert P.shape == Theta.shape
        np.testing.assert_allclose(P.sum(axis=0), 0.0, atol=1e-12)
        assert np.isfinite(loss.conjugate(P, Y, w))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", KINDS)
def test_project_dual_keeps_points_that_already_satisfy_it(kind, seed):
    """A dual point with zero column sums inside dom L* is (almost) unchanged,
    e.g. the gradient at an optimal intercept."""
    loss, Z, Y, w = _problem(kind, seed)
    Theta = loss.project_dual(loss.gradient(Z, Y, w), Y, w)
    again = loss.project_dual(Theta, Y, w)
    np.testing.assert_allclose(again, Theta, atol=1e-13, rtol=0)
    # gradient at the optimal constant model: zero column sums up to rounding
    b0 = loss.intercept_init(Y, w)
    G0 = loss.gradient(np.tile(b0, (len(w), 1)), Y, w)
    np.testing.assert_allclose(loss.project_dual(G0, Y, w), G0, atol=1e-13, rtol=0)


def test_squared_project_dual_is_weighted_projection():
    """Closest point in the metric sum_i |Theta_i|^2 / w_i: the correction divided by
    w_i is the same for every sample (KKT of the equality-constrained projection)."""
    loss, Z, Y, w = _problem("squared", 1)
    Theta = loss.gradient(Z, Y, w)
    P = loss.project_dual(Theta, Y, w)
    corr = (P - Theta) / w[:, None]
    np.testing.assert_allclose(corr, np.tile(corr[0], (len(w), 1)), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["logistic", "softmax"])
def test_project_dual_close_to_input_for_small_violation(kind):
    """Near an optimal intercept the gradient's column sums are tiny; the repair must be
    of the same size (it must not jump to a far-away feasible point)."""
    loss, Z, Y, w = _problem(kind, 3)
    b0 = loss.intercept_init(Y, w)
    G0 = loss.gradient(np.tile(b0, (len(w), 1)), Y, w)
    Theta = G0 + 1e-7 * w[:, None] * np.linspace(-1, 1, Y.shape[1])[None, :]
    P = loss.project_dual(Theta, Y, w)
    np.testing.assert_allclose(P.sum(axis=0), 0.0, atol=1e-12)
    assert np.abs(P - Theta).max() <= 1e-6


# --------------------------------------------------------------------------- link, intercept


@pytest.mark.parametrize("kind", ["logistic", "softmax"])
def test_link_gives_probabilities(kind):
    loss, Z, Y, w = _problem(kind, 0)
    Z = np.vstack([Z, 700 * np.ones((1, Z.shape[1])), -700 * np.ones((1, Z.shape[1]))])
    p = loss.link(Z)
    assert np.all(np.isfinite(p)) and np.all(p >= 0) and np.all(p <= 1)
    if kind == "softmax":
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-14)
        np.testing.assert_allclose(p, loss.link(Z + 5.0), atol=1e-14)  # shift invariance
        np.testing.assert_array_equal(p.argmax(axis=1), Z.argmax(axis=1))
    else:
        np.testing.assert_allclose(p, 1 / (1 + np.exp(-np.clip(Z, -700, 700))), rtol=1e-12)
        np.testing.assert_allclose(p + loss.link(-Z), 1.0, atol=1e-14)


def test_squared_link_is_identity():
    Z = np.random.default_rng(0).normal(size=(5, 2))
    np.testing.assert_array_equal(SquaredLoss().link(Z), Z)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", KINDS)
def test_intercept_init_is_optimal_constant(kind, seed):
    loss, _, Y, w = _problem(kind, seed)
    b0 = loss.intercept_init(Y, w)
    assert b0.shape == (Y.shape[1],)
    G = loss.gradient(np.tile(b0, (len(w), 1)), Y, w)
    np.testing.assert_allclose(G.sum(axis=0), 0.0, atol=1e-12)
