"""Tests of convexnn.penalties: prox, dual norms and the neuron factorisation.

Coefficients have shape ``(n_blocks, n_inputs, n_outputs)``; ``ColumnGroupL2`` is the
sum of column norms of every block, ``NuclearNorm`` the sum of nuclear norms.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from convexnn.penalties import ColumnGroupL2, NuclearNorm

PENALTIES = [ColumnGroupL2(), NuclearNorm()]
IDS = ["group", "nuclear"]
SHAPES = [(3, 3, 1), (2, 3, 2), (2, 4, 3)]


def _naive_value(penalty, V):
    if isinstance(penalty, ColumnGroupL2):
        return sum(np.linalg.norm(V[k][:, j]) for k in range(V.shape[0]) for j in range(V.shape[2]))
    return sum(np.linalg.norm(V[k], ord="nuc") for k in range(V.shape[0]))


def _naive_dual_norms(penalty, G):
    if isinstance(penalty, ColumnGroupL2):
        return np.array([max(np.linalg.norm(G[k][:, j]) for j in range(G.shape[2])) for k in range(len(G))])
    return np.array([np.linalg.norm(G[k], ord=2) for k in range(len(G))])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("penalty", PENALTIES, ids=IDS)
def test_value_matches_naive(penalty, shape):
    V = np.random.default_rng(0).normal(size=shape)
    assert penalty.value(V) == pytest.approx(_naive_value(penalty, V), rel=1e-13)


# --------------------------------------------------------------------------- prox


def _prox_objective(penalty, X, V, t):
    return 0.5 * float(np.sum((X - V) ** 2)) + t * penalty.value(X)


def _brute_force_prox_value(penalty, V, t, rng, n_starts=4):
    """min_X 1/2|X - V|^2 + t R(X) by scipy from several random starts (best value).

    Both norms are written variationally as a smooth problem over factors,
    |x| = min_{x = u a} (|u|^2 + a^2)/2 per column and |X|_* = min_{X = A B^T}
    (|A|^2 + |B|^2)/2, so L-BFGS converges precisely despite the norms' kinks.
    """
    n_blocks, p, c = V.shape
    r = c if isinstance(penalty, ColumnGroupL2) else min(p, c)

    def unpack(x):
        A = x[: n_blocks * p * r].reshape(n_blocks, p, r)
        B = x[n_blocks * p * r :].reshape(n_blocks, c, r)
        if isinstance(penalty, ColumnGroupL2):  # column j = A[:, j] * B[j, j]
            B = B * np.eye(c)[None]
        return A, B

    def f(x):
        A, B = unpack(x)
        R = np.einsum("kir,kjr->kij", A, B) - V
        value = 0.5 * np.sum(R * R) + 0.5 * t * (np.sum(A * A) + np.sum(B * B))
        gA = np.einsum("kij,kjr->kir", R, B) + t * A
        gB = np.einsum("kij,kir->kjr", R, A) + t * B
        if isinstance(penalty, ColumnGroupL2):
            gB = gB * np.eye(c)[None]
        return value, np.concatenate([gA.ravel(), gB.ravel()])

    best = np.inf
    for _ in range(n_starts):
        x0 = rng.normal(size=n_blocks * (p + c) * r)
        res = minimize(f, x0, jac=True, method="L-BFGS-B", options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 10_000})
        best = min(best, res.fun)
    return best


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("shape", [(2, 3, 1), (2, 2, 2), (2, 3, 3)])
@pytest.mark.parametrize("penalty", PENALTIES, ids=IDS)
def test_prox_matches_brute_force(penalty, shape, seed):
    rng = np.random.default_rng(seed)
    V = rng.normal(size=shape)
    # a threshold that zeroes some groups/singular values but not all
    t = float(np.median(_naive_dual_norms(penalty, V))) * 0.8
    X = penalty.prox(V, t)
    ours = _prox_objective(penalty, X, V, t)
    brute = _brute_force_prox_value(penalty, V, t, rng)
    # ours is the minimum: never beaten, and matched by the brute force
    assert ours <= brute + 1e-12
    assert brute - ours <= 1e-6 * max(1.0, abs(ours))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("penalty", PENALTIES, ids=IDS)
def test_prox_optimality_condition(penalty, shape, seed):
    """X = prox_{tR}(V) iff (V - X)/t is a subgradient of R at X, i.e. per block
    r°((V-X)_k/t) <= 1 and <(V-X)_k/t, X_k> = r(X_k)."""
    rng = np.random.default_rng(seed)
    V = rng.normal(size=shape)
    t = float(np.median(_naive_dual_norms(penalty, V)))
    X = penalty.prox(V, t)
    G = (V - X) / t
    assert np.all(_naive_dual_norms(penalty, G) <= 1 + 1e-10)
    for k in range(shape[0]):
        assert float(np.sum(G[k] * X[k])) == pytest.approx(_naive_value(penalty, X[k : k + 1]), abs=1e-10)
    # and the threshold was chosen so that something was shrunk to exactly zero
    assert _naive_value(penalty, X) < _naive_value(penalty, V)


@pytest.mark.parametrize("penalty", PENALTIES, ids=IDS)
def test_prox_zero_and_shrink_to_zero(penalty):
    rng = np.random.default_rng(1)
    V = rng.normal(size=(3, 3, 2))
    np.testing.assert_array_equal(penalty.prox(np.zeros_like(V), 0.5), 0.0)
    # threshold above every block's dual norm: everything vanishes
    t = float(_naive_dual_norms(penalty, V).max()) * 1.0001
    np.testing.assert_allclose(penalty.prox(V, t), 0.0, atol=1e-14)
    # threshold zero: identity
    np.testing.assert_allclose(penalty.prox(V, 0.0), V, atol=1e-14)
    # the prox does not modify its input
    V0 = V.copy()
    penalty.prox(V, 0.3)
    np.testing.assert_array_equal(V, V0)


def test_group_prox_kills_exactly_the_small_columns():
    V = np.zeros((2, 3, 2))
    V[0, :, 0] = [3.0, 0.0, 4.0]  # norm 5
    V[0, :, 1] = [0.6, 0.8, 0.0]  # norm 1
    V[1, :, 0] = [0.0, 2.0, 0.0]  # norm 2
    X = ColumnGroupL2().prox(V, 1.5)
    np.testing.assert_allclose(X[0, :, 0], V[0, :, 0] * (1 - 1.5 / 5))
    np.testing.assert_array_equal(X[0, :, 1], 0.0)
    np.testing.assert_allclose(X[1, :, 0], V[1, :, 0] * (1 - 1.5 / 2))


def test_nuclear_prox_soft_thresholds_singular_values():
    rng = np.random.default_rng(2)
    Q1, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    Q2, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    s = np.array([3.0, 1.0, 0.2])
    V = (Q1[:, :3] * s) @ Q2.T
    X = NuclearNorm().prox(V[None], 0.5)[0]
    np.testing.assert_allclose(np.linalg.svd(X, compute_uv=False), [2.5, 0.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(X, (Q1[:, :3] * np.maximum(s - 0.5, 0)) @ Q2.T, atol=1e-12)


# --------------------------------------------------------------------------- dual norms


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("penalty", PENALTIES, ids=IDS)
def test_dual_norms_known_formulas(penalty, shape):
    G = np.random.default_rng(3).normal(size=shape)
    d = penalty.dual_norms(G)
    assert d.shape == (shape[0],)
    np.testing.assert_allclose(d, _naive_dual_norms(penalty, G), rtol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("penalty", PENALTIES, ids=IDS)
def test_dual_norm_is_sup_over_unit_ball(penalty, shape):
    """r°(G_k) = sup {<G_k, V> : r(V) <= 1}: random unit-norm V never exceed it, and the
    supremum is attained by an explicit V."""
    rng = np.random.default_rng(4)
    G = rng.normal(size=shape)
    d = penalty.dual_norms(G)
    for k in range(shape[0]):
        for _ in range(200):
            V = rng.normal(size=(1, *shape[1:]))
            if rng.uniform() < 0.5:  # also sparse / low-rank directions
                V[0, :, rng.integers(1, shape[2] + 1) :] = 0.0
            V /= penalty.value(V)
            assert float(np.sum(G[k] * V[0])) <= d[k] + 1e-12
        # attaining direction
        if isinstance(penalty, ColumnGroupL2):
            j = int(np.argmax(np.linalg.norm(G[k], axis=0)))
            V = np.zeros(shape[1:])
            V[:, j] = G[k][:, j] / np.linalg.norm(G[k][:, j])
        else:
            U, s, Vt = np.linalg.svd(G[k])
            V = np.outer(U[:, 0], Vt[0])
        assert penalty.value(V[None]) == pytest.approx(1.0, rel=1e-12)
        assert float(np.sum(G[k] * V)) == pytest.approx(d[k], rel=1e-12)


# --------------------------------------------------------------------------- neurons


def _blocks_with_zeros(shape, seed):
    rng = np.random.default_rng(seed)
    V = rng.normal(size=shape)
    V[0] = 0.0  # an all-zero block gives no neurons
    if shape[2] > 1:
        V[1][:, 0] = 0.0  # a zero column inside a non-zero block
    return V


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("penalty", PENALTIES, ids=IDS)
def test_neurons_reconstruct_blocks_with_equal_cost(penalty, shape, seed):
    V = _blocks_with_zeros(shape, seed)
    U, A, block = penalty.neurons(V)
    n_neurons = U.shape[1]
    assert U.shape == (shape[1], n_neurons) and A.shape == (n_neurons, shape[2])
    assert block.shape == (n_neurons,)
    assert 0 not in set(block.tolist())  # zero block: no neurons
    for k in range(shape[0]):
        sel = block == k
        np.testing.assert_allclose(U[:, sel] @ A[sel], V[k], atol=1e-10, rtol=0)
    cost = 0.5 * (np.sum(U**2) + np.sum(A**2))
    assert cost == pytest.approx(penalty.value(V), rel=1e-10)
    # balanced: every neuron costs its share equally between u and a
    np.testing.assert_allclose(np.sum(U**2, axis=0), np.sum(A**2, axis=1), rtol=1e-10)


def test_group_neurons_feed_one_output_each():
    V = _blocks_with_zeros((3, 4, 3), 0)
    U, A, block = ColumnGroupL2().neurons(V)
    assert np.all((A != 0).sum(axis=1) == 1)
    # one neuron per non-zero (block, output) column
    assert U.shape[1] == int((np.linalg.norm(V, axis=1) > 0).sum())


def test_nuclear_neurons_count_is_rank():
    rng = np.random.default_rng(5)
    V = np.stack([np.outer(rng.normal(size=4), rng.normal(size=3)), rng.normal(size=(4, 3))])
    U, A, block = NuclearNorm().neurons(V)
    assert (block == 0).sum() == 1 and (block == 1).sum() == 3


def test_neurons_of_zero_is_empty():
    for penalty in PENALTIES:
        U, A, block = penalty.neurons(np.zeros((2, 3, 2)))
        assert U.shape == (3, 0) and A.shape == (0, 2) and block.shape == (0,)


# --------------------------------------------------------------------------- one output


@pytest.mark.parametrize("seed", range(3))
def test_penalties_agree_with_one_output(seed):
    rng = np.random.default_rng(seed)
    V = rng.normal(size=(4, 3, 1))
    V[2] = 0.0
    g, nuc = ColumnGroupL2(), NuclearNorm()
    assert g.value(V) == pytest.approx(nuc.value(V), rel=1e-13)
    np.testing.assert_allclose(g.dual_norms(V), nuc.dual_norms(V), rtol=1e-13)
    t = float(np.median(g.dual_norms(V)))
    np.testing.assert_allclose(g.prox(V, t), nuc.prox(V, t), atol=1e-13)
    (Ug, Ag, bg), (Un, An, bn) = g.neurons(V), nuc.neurons(V)
    np.testing.assert_array_equal(bg, bn)
    # same rank-one products (the sign split between u and a may differ)
    for j in range(len(bg)):
        np.testing.assert_allclose(np.outer(Ug[:, j], Ag[j]), np.outer(Un[:, j], An[j]), atol=1e-13)
