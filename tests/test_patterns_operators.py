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
# (d, P): d + 1 < P and d + 1 >= P take different product orders when c > 1
@pytest.mark.parametrize("d, P", [(3, 6), (8, 4)])
def test_gated_matvec_and_rmatvec_match_loops(c, seed, d, P):
    X, gates, op, _ = _ops(d=d, P=P, seed=seed)
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


# ======================================================= chunked masks, bounded memory
# Issue 3, goal 5: no n x P float64 array is built. Masks are computed over row chunks
# (patterns._row_chunks) and stored once, as booleans; the operators form signs and
# activation diagonals per chunk. These tests shrink the chunk budget so that the data
# below spans several chunks.

import tracemalloc  # noqa: E402

import convexnn.patterns as patterns  # noqa: E402
from convexnn.network import Network  # noqa: E402
from convexnn.patterns import _row_chunks, _unique_nonempty  # noqa: E402


def _exact_data(n, d, P, seed):
    """Small-integer data and gates: every ``Xa g`` is exact in any summation order, and
    many rows lie exactly on a gate's hyperplane (``Xa g == 0``, mask False)."""
    rng = np.random.default_rng(seed)
    X = rng.integers(-3, 4, size=(n, d)).astype(float)
    gates = rng.integers(-2, 3, size=(d + 1, P)).astype(float)
    return X, gates


@pytest.mark.parametrize("n", [1, 511, 512, 1023, 1024, 1537, 5000])
@pytest.mark.parametrize("width", [1, 7, 3000])
def test_row_chunks_cover_the_rows_aligned_and_bounded(n, width):
    elements = 512 * 10
    chunks = list(_row_chunks(n, width, elements))
    rows = max(512, elements // width // 512 * 512)
    assert chunks[0].start == 0 and chunks[-1].stop == n
    assert all(a.stop == b.start for a, b in zip(chunks, chunks[1:]))
    assert all(s.start % 512 == 0 for s in chunks)  # aligned with BLAS row blocks
    assert all(s.stop - s.start == rows for s in chunks[:-1])
    # the last chunk absorbs a short tail: never a tiny product, never above rows + 511
    last = chunks[-1].stop - chunks[-1].start
    assert last <= rows + 511 and (len(chunks) == 1 or last >= 512)


@pytest.mark.parametrize("seed", range(3))
def test_chunked_masks_equal_unchunked(monkeypatch, seed):
    Xi, Gi = _exact_data(2203, 4, 9, seed)
    rng = np.random.default_rng(seed)
    Xf, Gf = rng.normal(size=(2203, 4)), rng.normal(size=(5, 9))
    reference = {k: (X @ G[:-1] + G[-1]) > 0 for k, (X, G) in {"int": (Xi, Gi), "float": (Xf, Gf)}.items()}
    on_plane = (Xi @ Gi[:-1] + Gi[-1]) == 0
    assert on_plane.mean() > 0.05  # the strict inequality is exercised
    monkeypatch.setattr(patterns, "_CHUNK_ELEMENTS", 9 * 512)  # 512-row chunks: 4 of them
    assert len(list(_row_chunks(2203, 9))) == 4
    for key, (X, G) in {"int": (Xi, Gi), "float": (Xf, Gf)}.items():
        M = masks_from_gates(X, G)
        assert M.dtype == bool and M.shape == (2203, 9)
        np.testing.assert_array_equal(M, reference[key])
        np.testing.assert_array_equal(GatedOperator(X, G).masks, reference[key])
    assert not masks_from_gates(Xi, Gi)[on_plane].any()


def _reference_unique_nonempty(X, gates):
    """The unchunked selection: first gate of each distinct non-empty mask."""
    M = (X @ gates[:-1] + gates[-1]) > 0
    _, first = np.unique(np.packbits(M, axis=0), axis=1, return_index=True)
    unique = np.zeros(gates.shape[1], dtype=bool)
    unique[first] = True
    return gates[:, np.flatnonzero(M.any(axis=0) & unique)]


@pytest.mark.parametrize("seed", range(3))
def test_chunked_unique_nonempty_and_samplers_equal_unchunked(monkeypatch, seed):
    X, G = _exact_data(2203, 2, 60, seed)  # few distinct masks: duplicates and empties
    G[:, :3] = [[0.0] * 3] * 2 + [[-1.0, 0.0, -5.0]]  # empty masks
    expected = _reference_unique_nonempty(X, G)
    assert expected.shape[1] < G.shape[1] - 3  # duplicates were removed too
    rng = np.random.default_rng(seed)
    Xf = rng.normal(size=(2203, 3)) * [1.0, 10.0, 1e-3] + 5.0
    Pn = 40
    # DataSampler's unchunked reference: thresholds from the whole projection X @ W
    r = np.random.RandomState(seed)
    scale = Xf.std(axis=0)
    W = r.standard_normal((3, Pn)) / scale[:, None]
    i, j, t = r.randint(2203, size=Pn), r.randint(2203, size=Pn), r.uniform(size=Pn)
    proj = Xf @ W
    cols = np.arange(Pn)
    data_gates = _reference_unique_nonempty(
        Xf, np.vstack([W, -(t * proj[i, cols] + (1 - t) * proj[j, cols])[None, :]])
    )
    monkeypatch.setattr(patterns, "_CHUNK_ELEMENTS", 1)  # 512-row chunks
    assert len(list(_row_chunks(2203, 60))) == 4
    np.testing.assert_array_equal(_unique_nonempty(X, G), expected)
    ours = DataSampler(Pn).sample(Xf, seed).gates
    assert ours.shape == data_gates.shape
    np.testing.assert_allclose(ours, data_gates, rtol=1e-13, atol=0)
    np.testing.assert_array_equal(masks_from_gates(Xf, ours), masks_from_gates(Xf, data_gates))


def _dense_blocks(X, gates, diag):
    """``[diag_k * Xa]_k`` side by side: the dense matrix of ``V -> sum_k diag_k Xa V_k``."""
    Xa = augment(X)
    return np.hstack([diag[:, [k]] * Xa for k in range(gates.shape[1])])


@pytest.mark.parametrize("activation", ["gated_relu", "relu", "leaky_relu", "abs"])
@pytest.mark.parametrize("c", [1, 2])
def test_chunked_operator_products_equal_dense_reference(monkeypatch, activation, c):
    n, d, P = 1601, 3, 5
    rng = np.random.default_rng(c)
    X = rng.normal(size=(n, d))
    gates = rng.normal(size=(d + 1, P))
    M = ((X @ gates[:-1] + gates[-1]) > 0).astype(float)
    E = 2 * M - 1
    monkeypatch.setattr(patterns, "_CHUNK_ELEMENTS", 1)  # 512-row chunks
    monkeypatch.setattr(operators, "_CHUNK_ELEMENTS", 700 * P * c)  # 700-row chunks
    gated = GatedOperator(X, gates)
    np.testing.assert_array_equal(gated.masks, M.astype(bool))
    if activation == "gated_relu":
        op, A, S = gated, _dense_blocks(X, gates, M), M
    else:
        op = ConeOperator(gated, activation, negative_slope=0.2)
        a, b = operators.activation_diagonal(activation, 0.2)
        S = a * M + b
        A = np.hstack([_dense_blocks(X, gates, S), -_dense_blocks(X, gates, S)])
        np.testing.assert_array_equal(op.diagonals(), S)
        np.testing.assert_array_equal(op.signs(), np.hstack([E, E]))
        np.testing.assert_array_equal(op.gated_signs, E)
    p = d + 1
    V = rng.normal(size=(op.n_blocks, p, c))
    Theta = rng.normal(size=(n, c))
    np.testing.assert_allclose(op.matvec(V), A @ V.reshape(-1, c), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(op.rmatvec(Theta), (A.T @ Theta).reshape(op.n_blocks, p, c),
                               rtol=1e-12, atol=1e-12)
    if activation == "gated_relu":
        return
    # the cone: E_k Xa u_j over all blocks, its extremes, and the combined adjoint
    Xa = augment(X)
    H = np.stack([Xa @ V[j] for j in range(2 * P)], axis=1)
    C = H * np.hstack([E, E])[:, :, None]
    np.testing.assert_allclose(op.cone_values(V), C, rtol=1e-12, atol=1e-12)
    cmin, hmax = op.cone_extremes(V)
    np.testing.assert_allclose(cmin, C.min(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(hmax, np.abs(H).max(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(op.forward_from_preactivations(H), A @ V.reshape(-1, c), atol=1e-12)
    Lam = rng.uniform(size=(n, 2 * P, c))
    cone_dense = np.hstack([_dense_blocks(X, gates, E)] * 2)  # [E_k Xa] for the 2P blocks
    expected = A.T @ Theta - np.stack(
        [cone_dense[:, j * p:(j + 1) * p].T @ Lam[:, j] for j in range(2 * P)]
    ).reshape(-1, c)
    np.testing.assert_allclose(op.adjoint_combined(Theta, Lam).reshape(-1, c), expected,
                               rtol=1e-12, atol=1e-12)
    for j in (0, P + 3):
        np.testing.assert_array_equal(op.cone_matrix(j), cone_dense[:, j * p:(j + 1) * p])


def test_block_images_and_weighted_gram_from_boolean_masks():
    X, gates, gated, _ = _ops(n=31, d=3, P=6, seed=5)
    M = masks_from_gates(X, gates).astype(float)
    Xa = augment(X)
    G = np.random.default_rng(0).normal(size=(6, 4))
    np.testing.assert_array_equal(gated.block_images(G), M * (Xa @ G.T))
    c = np.array([0.5, 0.0, 2.0, 1.0, 0.0, 3.0])
    expected = sum(c[k] * np.outer(M[:, k], M[:, k]) * (Xa @ Xa.T) for k in range(6))
    np.testing.assert_allclose(gated.weighted_gram(c), expected, rtol=1e-12, atol=1e-12)


def test_operators_store_no_float_pattern_arrays():
    """Per pattern, only the boolean masks are kept (1 byte per sample and pattern)."""
    X, gates, gated, _ = _ops(n=200, d=3, P=40)
    for op in (gated, ConeOperator(gated), ConeOperator(gated, "leaky_relu"), ConeOperator(gated, "abs")):
        for name, value in vars(op).items():
            if isinstance(value, np.ndarray) and value.size >= 200 * 40:
                assert value.dtype == bool and value is gated.masks, name


def _peak_bytes(fn):
    """Peak traced allocation (numpy reports its buffers to tracemalloc) while ``fn`` runs."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        return tracemalloc.get_traced_memory()[1] - base, result
    finally:
        tracemalloc.stop()


def test_memory_stays_below_one_float_pattern_array():
    """Goal 5: sampling, building the operators and applying them never allocate an
    ``n x P`` float64 array.

    Bound: the boolean masks (``n P`` bytes) + ``Xa`` (``8 n (d + 1)``) + two float64
    chunk temporaries, each at most ``8 (rows + 511) P`` with ``rows <= _CHUNK_ELEMENTS
    / P`` (see ``_row_chunks``), so ``<= 8 (_CHUNK_ELEMENTS + 512 P)`` + 2 MB slack.
    Here (n = 40000, P = 500, d = 10) that is 94 MB, against 160 MB for a single
    ``n x P`` float64 array: any such array makes the test fail.
    """
    n, d, P = 40_000, 10, 500
    X = np.random.default_rng(0).normal(size=(n, d))
    chunk = 8 * (patterns._CHUNK_ELEMENTS + 512 * P)
    assert operators._CHUNK_ELEMENTS <= patterns._CHUNK_ELEMENTS
    bound = n * P + 8 * n * (d + 1) + 2 * chunk + 2 * 2**20
    one_float_array = 8 * n * P
    assert bound < 0.6 * one_float_array  # the bound discriminates
    peak, gates = _peak_bytes(lambda: DataSampler(P).sample(X, 0).gates)
    assert gates.shape[1] > 0.9 * P
    assert peak < bound, f"DataSampler.sample: {peak / 2**20:.0f} MiB"
    peak, _ = _peak_bytes(lambda: GaussianSampler(P).sample(X, 0))
    assert peak < bound, f"GaussianSampler.sample: {peak / 2**20:.0f} MiB"
    peak, gated = _peak_bytes(lambda: GatedOperator(X, gates))
    assert peak < bound, f"GatedOperator: {peak / 2**20:.0f} MiB"
    Pk = gated.n_patterns
    rng = np.random.default_rng(1)
    V = rng.normal(size=(Pk, d + 1, 1))
    Theta = rng.normal(size=(n, 1))
    for name, fn in [("matvec", lambda: gated.matvec(V)), ("rmatvec", lambda: gated.rmatvec(Theta)),
                     ("masks_from_gates", lambda: masks_from_gates(X, gates))]:
        peak, _ = _peak_bytes(fn)
        assert peak < bound, f"{name}: {peak / 2**20:.0f} MiB"
    for activation in ("relu", "abs"):
        peak, cone = _peak_bytes(lambda: ConeOperator(gated, activation))
        assert peak < 2**20, f"ConeOperator({activation!r}): {peak / 2**20:.0f} MiB"
        U = rng.normal(size=(2 * Pk, d + 1, 1))
        for name, fn in [("matvec", lambda: cone.matvec(U)), ("rmatvec", lambda: cone.rmatvec(Theta)),
                         ("cone_extremes", lambda: cone.cone_extremes(U))]:
            peak, _ = _peak_bytes(fn)
            assert peak < bound, f"ConeOperator({activation!r}).{name}: {peak / 2**20:.0f} MiB"


def test_network_forward_is_chunked(monkeypatch):
    """``Network.forward`` equals ``hidden(X) @ W2 + b2`` without forming ``hidden(X)``."""
    n, d, m = 20_000, 4, 400
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d))
    gates = rng.normal(size=(d + 1, m))
    for activation in ("relu", "gated_relu", "leaky_relu", "abs"):
        net = Network([rng.normal(size=(d, m)), rng.normal(size=(m, 2))], [rng.normal(size=m), rng.normal(size=2)],
                      activation, gates if activation == "gated_relu" else None,
                      negative_slope=0.1 if activation == "leaky_relu" else None)
        expected = net.hidden(X) @ net.coefs[1] + net.intercepts[1]
        monkeypatch.setattr(patterns, "_CHUNK_ELEMENTS", 1_000_000)  # 2048-row chunks
        assert len(list(_row_chunks(n, m))) > 5
        peak, out = _peak_bytes(lambda: net.forward(X))
        monkeypatch.undo()
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
        # a few chunk temporaries (~8 MB each), far below one n x m float64 (64 MB)
        assert peak < 0.6 * 8 * n * m, f"{activation}: {peak / 2**20:.0f} MiB"
    empty = net.forward(X[:0])
    assert empty.shape == (0, 2)


@pytest.mark.parametrize("single", [False, True])
def test_block_gram_is_the_weighted_gram_of_the_products(single):
    """v^T H v = sum_i w_i (A v)_i^2 for the coefficient-space Gram matrix, every block pair."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(700, 3))
    op = GatedOperator(X, rng.normal(size=(4, 9)))
    w = rng.uniform(0.0, 1.0, 700)
    H = op.block_gram(w, single=single)
    assert H.shape == (36, 36) and H.dtype == (np.float32 if single else np.float64)
    np.testing.assert_array_equal(H, H.T)
    V = rng.normal(size=(9, 4, 5))  # five directions at once
    Z = op.matvec(V)
    exact = np.einsum("n,nc->c", w, Z * Z)
    quad = np.einsum("ic,ij,jc->c", V.reshape(36, 5), H.astype(float), V.reshape(36, 5))
    np.testing.assert_allclose(quad, exact, rtol=1e-5 if single else 1e-12)
    # block (k, l) is X_a^T diag(w d_k d_l) X_a
    M = op.masks.astype(float)
    np.testing.assert_allclose(H[4:8, 8:12], op.Xa.T @ ((w * M[:, 1] * M[:, 2])[:, None] * op.Xa),
                               rtol=1e-5 if single else 1e-12)
    with pytest.raises(ValueError, match="non-negative weight"):
        op.block_gram(-w)


@pytest.mark.parametrize("n_patterns", [1, 8, 17])
@pytest.mark.parametrize("single", [False, True])
def test_block_gram_matches_the_dense_rows_product(n_patterns, single, monkeypatch):
    """H = A^T W A with the rows a_i = (d_i1 x_i .. d_iP x_i) built densely: one band, whole
    bands and a partial last band (BLOCK_GRAM_BAND = 8), masks and real-valued diagonals
    (as the leaky cone programs pass), several row chunks."""
    monkeypatch.setattr(operators, "_CHUNK_ELEMENTS", 5000)  # several row chunks
    rng = np.random.default_rng(n_patterns)
    n, d = 400, 3
    X = rng.normal(size=(n, d))
    op = GatedOperator(X, rng.normal(size=(d + 1, n_patterns)))
    w = rng.uniform(0.0, 1.0, n)
    Xa = np.hstack([X, np.ones((n, 1))])
    leaky = lambda rows: 0.99 * op.masks[rows] + 0.01  # noqa: E731
    for diagonals, D in ((None, op.masks.astype(float)), (leaky, 0.99 * op.masks + 0.01)):
        A = (D[:, :, None] * Xa[:, None, :]).reshape(n, -1)
        expected = A.T @ (w[:, None] * A)
        H = op.block_gram(w, single=single, diagonals=diagonals)
        np.testing.assert_array_equal(H, H.T)
        np.testing.assert_allclose(H, expected, rtol=1e-5 if single else 1e-12,
                                   atol=(1e-5 if single else 1e-12) * np.abs(expected).max())
