"""Exact cone projections (convexnn.cones) against cvxpy/Clarabel and first principles."""

from __future__ import annotations

import numpy as np
import pytest

from convexnn.certificates import cone_dual_norms
from convexnn.cones import ConeProjector
from convexnn.losses import SquaredLoss
from convexnn.operators import ConeOperator, GatedOperator
from convexnn.penalties import ColumnGroupL2
from convexnn.programs import ConvexProgram

cp = pytest.importorskip("cvxpy")


def _data(seed, n=40, d=4, n_cones=12):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X[5] = X[6]  # a duplicated row: dependent constraints
    Xa = np.c_[X, np.ones(n)]
    gates = rng.standard_normal((d + 1, n_cones))
    signs = np.where(Xa @ gates > 0, 1.0, -1.0)
    return rng, Xa, gates, signs


def _cvxpy_projection(G, u):
    x = cp.Variable(u.size)
    cp.Problem(cp.Minimize(cp.sum_squares(x - u)), [G @ x >= 0]).solve(solver="CLARABEL")
    return x.value


@pytest.mark.parametrize("seed", range(6))
def test_projection_matches_cvxpy_and_kkt(seed):
    rng, Xa, gates, signs = _data(seed)
    m = 30
    cones = rng.integers(0, signs.shape[1], m)
    # mixtures: near the cone's own gate (mostly feasible) and far from it
    U = rng.standard_normal((m, Xa.shape[1])) + 2 * rng.choice([-1, 1], m)[:, None] * gates[:, cones].T
    proj = ConeProjector(Xa, signs)
    X = proj.project(U, cones, keys=list(range(m)))
    for i in range(m):
        G = signs[:, cones[i], None] * Xa
        ref = _cvxpy_projection(G, U[i])
        scale = max(np.linalg.norm(U[i]), 1.0)
        assert np.linalg.norm(X[i] - ref) <= 1e-6 * scale
        # exact KKT: feasible, and u - x lies in the polar cone with complementarity
        g = G @ X[i]
        assert g.min() >= -1e-10 * scale
        assert abs(X[i] @ (X[i] - U[i])) <= 1e-9 * scale**2
        # u - x = -G^T lam with lam >= 0: its inner product with any feasible point is <= 0
        assert (U[i] - X[i]) @ ref <= 1e-6 * scale**2


def test_warm_start_gives_the_same_projection_and_uses_the_memory():
    rng, Xa, gates, signs = _data(11)
    m = 25
    cones = rng.integers(0, signs.shape[1], m)
    U = rng.standard_normal((m, Xa.shape[1])) + gates[:, cones].T  # mostly non-zero projections
    warm = ConeProjector(Xa, signs)
    warm.project(U, cones, keys=list(range(m)))
    U2 = U + 1e-3 * rng.standard_normal(U.shape)
    before = dict(warm.stats)
    X_warm = warm.project(U2, cones, keys=list(range(m)))
    X_cold = ConeProjector(Xa, signs).project(U2, cones)
    np.testing.assert_allclose(X_warm, X_cold, atol=1e-10)
    # most rows settle in the first round from their remembered active sets
    assert warm.stats["warm"] - before["warm"] >= m // 2


def test_zero_below_only_zeroes_projections_that_short():
    rng, Xa, gates, signs = _data(3)
    m = 40
    cones = rng.integers(0, signs.shape[1], m)
    U = rng.standard_normal((m, Xa.shape[1]))
    exact = np.linalg.norm(ConeProjector(Xa, signs).project(U, cones), axis=1)
    bound = np.median(exact)
    X = ConeProjector(Xa, signs).project(U, cones, zero_below=bound)
    got = np.linalg.norm(X, axis=1)
    zeroed = got == 0
    assert np.all(exact[zeroed] <= bound + 1e-12)
    # rows above the bound are projected exactly
    np.testing.assert_allclose(got[~zeroed], exact[~zeroed], rtol=1e-9)
    assert np.all(~zeroed[exact > bound * (1 + 1e-9)])


def test_prox_is_project_then_shrink():
    """prox of a|u| + indicator(cone) computed by cvxpy equals shrink(projection)."""
    rng, Xa, gates, signs = _data(5)
    a = 0.7
    for i in range(8):
        k = i % signs.shape[1]
        G = signs[:, k, None] * Xa
        u = 2 * rng.standard_normal(Xa.shape[1])
        x = cp.Variable(u.size)
        cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x - u) + a * cp.norm(x, 2)), [G @ x >= 0]).solve(
            solver="CLARABEL")
        p = ConeProjector(Xa, signs).project(u[None], np.array([k]))[0]
        npn = np.linalg.norm(p)
        ours = max(0.0, 1 - a / npn) * p if npn > 0 else p
        np.testing.assert_allclose(ours, x.value, atol=1e-6)


def test_cone_dual_norms_match_cvxpy_maximum():
    """|Proj_K(c)| = max over the cone's unit ball of <c, u>: the ReLU dual norm."""
    rng, Xa, gates, signs = _data(7, n=30, d=3, n_cones=5)
    X = Xa[:, :-1]
    op = ConeOperator(GatedOperator(X, gates))
    program = ConvexProgram(SquaredLoss(), ColumnGroupL2(), op, rng.standard_normal((30, 1)),
                            np.full(30, 1 / 30), alpha=1e-6)
    Theta = rng.standard_normal((30, 1))
    norms = cone_dual_norms(program, Theta)
    C = -op.rmatvec(Theta)
    P = op.n_patterns
    for j in range(op.n_blocks):
        G = op.cone_matrix(j)
        u = cp.Variable(Xa.shape[1])
        prob = cp.Problem(cp.Maximize(C[j, :, 0] @ u), [G @ u >= 0, cp.norm(u, 2) <= 1])
        prob.solve(solver="CLARABEL")
        assert norms[j, 0] == pytest.approx(max(prob.value, 0.0), abs=1e-6), (j, j % P)
