"""Tests of convexnn.patterns (gates, masks, samplers) and convexnn.operators."""

from __future__ import annotations

import numpy as np
import pytest

import convexnn.operators as operators
from convexnn.operators import ConeOperator, GatedOperator
from convexnn.patterns import (
    DataSampler,
    ExhaustiveSampler,
    FixedGates,
    GaussianSampler,
    Patterns,
    augment,
    make_sampler,
    masks_from_gates,
)


def _data(n=30, d=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d))


# =========================================================================== patterns


def test_augment():
    X = _data(5, 2)
    Xa = augment(X)
    np.testing.assert_array_equal(Xa[:, :2], X)
    np.testing.assert_array_equal(Xa[:, 2], 1.0)


@pytest.mark.parametrize("seed", range(3))
def test_masks_from_gates_matches_direct_computation(seed):
    X = _data(25, 3, seed)
    gates = np.random.default_rng(seed + 10).normal(size=(4, 7))
    M = masks_from_gates(X, gates)
    assert M.shape == (25, 7) and M.dtype == bool
    for i in range(25):
        for k in range(7):
            assert M[i, k] == (float(np.dot(np.append(X[i], 1.0), gates[:, k])) > 0)


def test_masks_strict_inequality_on_the_hyperplane():
    X = np.array([[0.0], [1.0], [2.0]])
    gates = np.array([[1.0], [-1.0]])  # x - 1 > 0
    np.testing.assert_array_equal(masks_from_gates(X, gates)[:, 0], [False, False, True])


def _assert_unique_nonempty(X, gates):
    M = masks_from_gates(X, gates)
    assert M.any(axis=0).all(), "an empty mask was kept"
    assert len({m.tobytes() for m in M.T}) == M.shape[1], "duplicate masks were kept"


@pytest.mark.parametrize("sampler_cls", [GaussianSampler, DataSampler])
def test_samplers_shape_unique_nonempty_deterministic(sampler_cls):
    X = _data(40, 3, 1)
    sampler = sampler_cls(n_patterns=30)
    p = sampler.sample(X, random_state=0)
    assert isinstance(p, Patterns)
    assert p.gates.ndim == 2 and p.gates.shape[0] == 4 and 1 <= p.gates.shape[1] <= 30
    assert p.n_patterns == p.gates.shape[1]
    assert p.complete is False
    _assert_unique_nonempty(X, p.gates)
    # deterministic given random_state (int or an equally seeded RandomState)
    np.testing.assert_array_equal(sampler.sample(X, random_state=0).gates, p.gates)
    np.testing.assert_array_equal(sampler.sample(X, np.random.RandomState(0)).gates, p.gates)
    # and a different seed gives different gates
    assert not np.array_equal(sampler.sample(X, random_state=1).gates[:, :5], p.gates[:, :5])


def test_samplers_remove_duplicates_and_empty_masks():
    # two distinct points: at most 3 non-empty masks ({a}, {b}, {a, b})
    X = np.array([[0.0, 0.0], [1.0, 1.0]] * 5)
    for sampler in (GaussianSampler(n_patterns=200), DataSampler(n_patterns=200)):
        gates = sampler.sample(X, random_state=0).gates
        assert 1 <= gates.shape[1] <= 3
        _assert_unique_nonempty(X, gates)


def test_data_sampler_is_scale_aware():
    """Gates cut through the data cloud whatever its scale and offset: no mask is
    constant (all-ones would be rare, empty is removed)."""
    X = _data(50, 2, 3) * 1e6 + 1e7
    gates = DataSampler(n_patterns=40).sample(X, random_state=0).gates
    M = masks_from_gates(X, gates)
    assert gates.shape[1] >= 30
    assert np.all(M.any(axis=0)) and np.mean(M.all(axis=0)) < 0.1


def _brute_force_masks_1d(x, n_gates, seed):
    """Distinct non-empty masks of many random gates (slopes of both signs and zero,
    thresholds spread over and beyond the data range)."""
    rng = np.random.default_rng(seed)
    lo, hi = x.min() - 1, x.max() + 1
    slope = rng.choice([-1.0, 1.0], n_gates) * rng.uniform(0.1, 3, n_gates)
    slope[:10] = 0.0
    t = rng.uniform(lo, hi, n_gates)
    gates = np.vstack([slope, -slope * t + (slope == 0) * rng.normal(size=n_gates)])
    M = masks_from_gates(x[:, None], gates)
    return {m.tobytes() for m in M.T if m.any()}


@pytest.mark.parametrize("seed", range(3))
def test_exhaustive_sampler_is_complete_in_1d(seed):
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(size=12), 1)  # rounding creates ties
    x[3] = x[7]
    X = x[:, None]
    p = ExhaustiveSampler().sample(X, random_state=seed)
    assert p.complete is True
    assert p.gates.shape[0] == 2
    _assert_unique_nonempty(X, p.gates)
    ours = {m.tobytes() for m in masks_from_gates(X, p.gates).T}
    brute = _brute_force_masks_1d(x, 20_000, seed)
    assert brute <= ours, f"{len(brute - ours)} masks of random gates are missing"
    # nothing extra either: 1 (all ones) + 2 per gap between distinct values
    n_unique = len(np.unique(x))
    assert len(ours) == 1 + 2 * (n_unique - 1) == len(brute)


def test_exhaustive_sampler_constant_feature():
    X = np.full((6, 1), 2.5)
    p = ExhaustiveSampler().sample(X)
    M = masks_from_gates(X, p.gates)
    assert p.complete and M.shape[1] == 1 and M.all()


def test_exhaustive_sampler_rejects_several_features():
    with pytest.raises(ValueError, match="one feature"):
        ExhaustiveSampler().sample(_data(10, 2))


@pytest.mark.parametrize(
    "gates",
    [np.zeros((3, 4)), np.zeros((5, 4)), np.zeros(4), np.zeros((4, 0)), np.zeros((4, 2, 1))],
    ids=["too-few-rows", "too-many-rows", "1d", "no-columns", "3d"],
)
def test_fixed_gates_shape_errors(gates):
    with pytest.raises(ValueError, match=r"shape \(n_features \+ 1, n_patterns\)"):
        FixedGates(gates).sample(_data(10, 3))


def test_fixed_gates_non_finite_and_copy():
    g = np.ones((4, 2))
    g[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        FixedGates(g).sample(_data(10, 3))
    g = np.random.default_rng(0).normal(size=(4, 3))
    p = FixedGates(g).sample(_data(10, 3))
    np.testing.assert_array_equal(p.gates, g)
    assert p.complete is False
    p.gates[0, 0] = 99.0
    assert g[0, 0] != 99.0  # the user's array is not aliased


def test_make_sampler():
    assert isinstance(make_sampler("data", 7), DataSampler) and make_sampler("data", 7).n_patterns == 7
    assert isinstance(make_sampler("gaussian", 3), GaussianSampler)
    assert isinstance(make_sampler("exhaustive", 3), ExhaustiveSampler)
    s = DataSampler(4)
    assert make_sampler(s, 99) is s
    assert isinstance(make_sampler(np.ones((3, 2)), 5), FixedGates)
    with pytest.raises(ValueError, match="unknown sampler 'nope'"):
        make_sampler("nope", 5)


# =========================================================================== operators


def _ops(n=23, d=3, P=6, seed=0):
    X = _data(n, d, seed)
    gates = np.random.default_rng(seed + 1).normal(size=(d + 1, P))
    gated = GatedOperator(X, gates)
    return X, gates, gated, ConeOperator(gated)


def _naive_gated_matvec(X, gates, V):
    Xa = augment(X)
    M = masks_from_gates(X, gates)
    return sum(np.diag(M[:, k].astype(float)) @ Xa @ V[k] for k in range(gates.shape[1]))


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("seed", range(3))
def test_gated_matvec_and_rmatvec_match_loops(c, seed):
    X, gates, op, _ = _ops(seed=seed)
    rng = np.random.default_rng(seed)
    V = rng.normal(size=(op.n_patterns, op.n_inputs, c))
    np.testing.assert_allclose(op.matvec(V), _naive_gated_matvec(X, gates, V), rtol=1e-12, atol=1e-12)
    Theta = rng.normal(size=(op.n_samples, c))
    Xa, M = augment(X), masks_from_gates(X, gates)
    expected = np.stack([Xa.T @ (M[:, [k]] * Theta) for k in range(op.n_patterns)])
    np.testing.assert_allclose(op.rmatvec(Theta), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("seed", range(3))
def test_adjoint_identities(c, seed):
    X, gates, gated, cone = _ops(seed=seed)
    rng = np.random.default_rng(seed + 5)
    Theta = rng.normal(size=(gated.n_samples, c))
    for op in (gated, cone):
        V = rng.normal(size=(op.n_blocks, op.n_inputs, c))
        lhs = float(np.sum(op.matvec(V) * Theta))
        rhs = float(np.sum(V * op.rmatvec(Theta)))
        assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)
    # the combined adjoint of the ReLU Lagrangian: <A U, Theta> - sum_j <Lam_j, E_j Xa u_j>
    U = rng.normal(size=(cone.n_blocks, cone.n_inputs, c))
    Lam = rng.uniform(size=(cone.n_samples, cone.n_blocks, c))
    lhs = float(np.sum(cone.matvec(U) * Theta) - np.sum(Lam * cone.cone_values(U)))
    rhs = float(np.sum(U * cone.adjoint_combined(Theta, Lam)))
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("c", [1, 2])
def test_cone_operator_against_loops(c):
    X, gates, gated, cone = _ops(seed=4)
    P = gated.n_patterns
    assert cone.n_blocks == 2 * P and cone.n_patterns == P
    rng = np.random.default_rng(1)
    U = rng.normal(size=(2 * P, cone.n_inputs, c))
    v, w = cone.split(U)
    np.testing.assert_array_equal(v, U[:P])
    np.testing.assert_array_equal(w, U[P:])
    np.testing.assert_allclose(cone.matvec(U), _naive_gated_matvec(X, gates, v - w), atol=1e-12)
    Xa, M = augment(X), masks_from_gates(X, gates)
    E = 2 * M.astype(float) - 1
    H = cone.preactivations(U)
    for j in range(2 * P):
        np.testing.assert_allclose(H[:, j], Xa @ U[j], atol=1e-12)
        np.testing.assert_allclose(cone.cone_values(U)[:, j], E[:, [j % P]] * (Xa @ U[j]), atol=1e-12)
    np.testing.assert_allclose(cone.forward_from_preactivations(H), cone.matvec(U), atol=1e-12)
    np.testing.assert_array_equal(cone.signs(), np.hstack([E, E]))
    Theta = rng.normal(size=(cone.n_samples, c))
    Lam = rng.uniform(size=(cone.n_samples, 2 * P, c))
    G = cone.adjoint_combined(Theta, Lam)
    for j in range(2 * P):
        k, s = j % P, (1.0 if j < P else -1.0)
        expected = s * Xa.T @ (M[:, [k]] * Theta) - Xa.T @ (E[:, [k]] * Lam[:, j])
        np.testing.assert_allclose(G[j], expected, atol=1e-12)


def test_gate_points_are_feasible_for_their_cone():
    """A pattern's own gate lies in its cone: E_k Xa g_k >= 0."""
    X, gates, gated, cone = _ops(seed=2)
    E = cone.signs()[:, : gated.n_patterns]
    assert np.all(E * (gated.Xa @ gates) >= 0)


@pytest.mark.parametrize("c", [1, 3])
def test_chunking_gives_identical_results(monkeypatch, c):
    X, gates, gated, cone = _ops(n=41, seed=3)
    rng = np.random.default_rng(2)
    V = rng.normal(size=(gated.n_patterns, gated.n_inputs, c))
    U = rng.normal(size=(cone.n_blocks, cone.n_inputs, c))
    Theta = rng.normal(size=(gated.n_samples, c))
    w = np.full(gated.n_samples, 1 / gated.n_samples)
    full = (gated.matvec(V), gated.rmatvec(Theta), cone.matvec(U), cone.rmatvec(Theta))
    norm_full = gated.norm_squared(w)
    assert len(list(gated._chunks(gated.n_patterns * c))) == 1
    monkeypatch.setattr(operators, "_CHUNK_ELEMENTS", 7)
    assert len(list(gated._chunks(gated.n_patterns * c))) == gated.n_samples  # one row each
    chunked = (gated.matvec(V), gated.rmatvec(Theta), cone.matvec(U), cone.rmatvec(Theta))
    for a, b in zip(full, chunked):
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-13)
    monkeypatch.setattr(operators, "_CHUNK_ELEMENTS", 5 * gated.n_patterns * c)  # 5 rows
    for a, b in zip(full, (gated.matvec(V), gated.rmatvec(Theta))):
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-13)
    assert gated.norm_squared(w) == pytest.approx(norm_full, rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_norm_squared_bounds_the_weighted_operator_norm(seed):
    X, gates, gated, _ = _ops(seed=seed)
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.5, 1, gated.n_samples)
    w /= w.sum()
    # dense matrix of A (one output): columns are A applied to unit blocks
    m = gated.n_patterns * gated.n_inputs
    A = np.column_stack(
        [gated.matvec(np.eye(m)[i].reshape(gated.n_patterns, gated.n_inputs, 1))[:, 0] for i in range(m)]
    )
    lam = np.linalg.eigvalsh(A.T @ (w[:, None] * A))[-1]
    est = gated.norm_squared(w)
    assert lam <= est <= 1.02 * lam * (1 + 1e-12)


def test_operator_shapes_and_masks():
    X, gates, gated, cone = _ops(n=11, d=2, P=5)
    assert (gated.n_samples, gated.n_inputs, gated.n_patterns, gated.n_blocks) == (11, 3, 5, 5)
    np.testing.assert_array_equal(gated.masks, masks_from_gates(X, gates))
    np.testing.assert_array_equal(cone.masks, gated.masks)
    assert gated.matvec(np.zeros((5, 3, 2))).shape == (11, 2)
    assert gated.rmatvec(np.zeros((11, 2))).shape == (5, 3, 2)
    assert cone.rmatvec(np.zeros((11, 2))).shape == (10, 3, 2)
