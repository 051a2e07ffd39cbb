"""Exact ``alpha_max`` for both programs, against independent oracles.

``alpha_max`` is the smallest ``alpha`` at which ``V = 0`` (with the constant model's
intercept ``b0``) solves the program. Checked three ways:

* its value: for the ReLU program, the largest of ``max <s X_a^T D_k Theta_j, u>`` over
  ``u`` in the cone ``{E_k X_a u >= 0}`` with ``|u| <= 1``, each maximum computed by
  cvxpy/Clarabel as a second-order cone program; for the gated program, the largest
  dual norm computed by hand from the masks. The library's pruned search is also
  compared with the brute-force maximum over every exact projection;
* above it (``alpha_max * (1 + 1e-6)``) our solvers return exactly ``V = 0`` with the
  constant model's intercept;
* below it (``alpha_max * (1 - 1e-3)``) ``V = 0`` is *not* optimal: the SOCP maximiser
  of the worst block is a feasible direction along which ``J`` decreases strictly
  (computed with the exact objective), and cvxpy's solution is at least that good.
"""

from __future__ import annotations

import numpy as np
import pytest

from convexnn.losses import LogisticLoss, SoftmaxCrossEntropy, SquaredLoss
from convexnn.operators import ConeOperator, GatedOperator
from convexnn.patterns import DataSampler
from convexnn.penalties import ColumnGroupL2, NuclearNorm
from convexnn.cones import _project_on_cone
from convexnn.programs import ConvexProgram, _cone_alpha_max
from convexnn.solvers import make_solver

FAMILIES = ["reg1", "reg2", "binary", "multiclass"]
ACTIVATIONS = ["relu", "gated_relu"]


def make_program(family: str, activation: str, seed: int, n=None, d=None, P=None) -> ConvexProgram:
    """A small random program built like the estimators build theirs."""
    rng = np.random.default_rng(100 * FAMILIES.index(family) + seed)
    n = n or int(rng.integers(20, 30))
    d = d or int(rng.integers(2, 4))
    X = rng.normal(size=(n, d))
    if family == "reg1":
        loss, Y = SquaredLoss(), np.sin(2 * X[:, :1]) + 0.1 * rng.normal(size=(n, 1))
    elif family == "reg2":
        loss = SquaredLoss()
        Y = np.column_stack([np.sin(2 * X[:, 0]), X[:, 1] ** 2 - 1]) + 0.1 * rng.normal(size=(n, 2))
    elif family == "binary":
        y = (X[:, 0] * X[:, 1] + 0.3 * rng.normal(size=n) > 0).astype(float)
        y[:2] = [0.0, 1.0]
        loss, Y = LogisticLoss(), y[:, None]
    else:
        s = np.column_stack([X[:, 0], X[:, 1], -X[:, 0] - X[:, 1]]) + 0.5 * rng.normal(size=(n, 3))
        codes = s.argmax(axis=1)
        codes[:3] = [0, 1, 2]
        loss, Y = SoftmaxCrossEntropy(), np.eye(3)[codes]
    w = rng.uniform(0.2, 1.0, n) if seed % 2 else np.ones(n)
    gates = DataSampler(P or int(rng.integers(4, 9))).sample(X, random_state=seed).gates
    gated = GatedOperator(X, gates)
    relu = activation == "relu"
    penalty = NuclearNorm() if (not relu and Y.shape[1] > 1) else ColumnGroupL2()
    return ConvexProgram(loss, penalty, ConeOperator(gated) if relu else gated, Y, w / w.sum(), 1.0)


def _theta(program):
    b0 = program.constant_intercept()
    _, grad = program.data_fit(np.broadcast_to(b0, program.Y.shape).copy())
    return grad


def _socp_block_maxima(program):
    """For every (pattern k, output j, sign s): the maximiser and the value of
    ``max <s X_a^T D_k Theta_j, u>`` over ``E_k X_a u >= 0, |u| <= 1`` (cvxpy)."""
    cp = pytest.importorskip("cvxpy")
    gated = program.operator.gated
    Xa, M = gated.Xa, gated.masks.astype(float)
    Theta = _theta(program)
    out = []
    for k in range(gated.n_patterns):
        C = (2 * M[:, k] - 1)[:, None] * Xa
        for j in range(program.n_outputs):
            h = Xa.T @ (M[:, k] * Theta[:, j])
            for s in (1.0, -1.0):
                u = cp.Variable(Xa.shape[1])
                prob = cp.Problem(cp.Maximize((s * h) @ u), [C @ u >= 0, cp.norm(u, 2) <= 1])
                prob.solve(solver="CLARABEL")
                out.append((prob.value, k, j, s, np.asarray(u.value)))
    return out


def _gated_alpha_max_by_hand(program):
    gated = program.operator
    Theta = _theta(program)
    values = []
    for k in range(gated.n_patterns):
        G = gated.Xa.T @ (gated.masks[:, k, None] * Theta)  # (d + 1, c)
        if isinstance(program.penalty, NuclearNorm):
            values.append(np.linalg.svd(G, compute_uv=False)[0])
        else:
            values.append(np.linalg.norm(G, axis=0).max())
    return max(values)


CASES = [(f, a, s) for f in FAMILIES for a in ACTIVATIONS for s in range(2)]


@pytest.mark.parametrize("family,activation,seed", CASES)
def test_alpha_max_value_matches_independent_oracle(family, activation, seed):
    program = make_program(family, activation, seed)
    amax = program.alpha_max()
    if activation == "relu":
        oracle = max(v for v, *_ in _socp_block_maxima(program))
        assert amax == pytest.approx(oracle, rel=1e-6)
        # exact ReLU value lies below the gated one (projections shrink norms)
        gated = ConvexProgram(program.loss, program.penalty, program.operator.gated, program.Y,
                              program.sample_weight, 1.0)
        assert amax <= gated.alpha_max() * (1 + 1e-12)
    else:
        assert amax == pytest.approx(_gated_alpha_max_by_hand(program), rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("c", [1, 3])
def test_pruned_search_equals_brute_force_over_all_projections(seed, c):
    rng = np.random.default_rng(seed)
    n, d, P = 60, 4, 25
    X = rng.normal(size=(n, d))
    op = ConeOperator(GatedOperator(X, DataSampler(P).sample(X, seed).gates))
    G = op.gated.rmatvec(rng.normal(size=(n, c)))
    brute = max(
        np.linalg.norm(_project_on_cone(op.cone_matrix(k), s * G[k, :, j]))
        for k in range(op.n_patterns) for j in range(c) for s in (1.0, -1.0)
    )
    assert _cone_alpha_max(op, G) == pytest.approx(brute, rel=1e-12)
    # one candidate per batch (a different pruning schedule): same answer
    assert _cone_alpha_max(op, G, batch=1) == pytest.approx(brute, rel=1e-12)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_alpha_max_vanishes_for_a_constant_target(activation):
    program = make_program("reg1", activation, 0)
    program.Y = np.full_like(program.Y, 0.7)
    assert 0.0 <= program.alpha_max() <= 1e-14  # rounding of the weighted mean only


@pytest.mark.parametrize("family,activation,seed", CASES)
def test_zero_is_the_solution_just_above_alpha_max(family, activation, seed):
    program = make_program(family, activation, seed)
    program.alpha = program.alpha_max() * (1 + 1e-6)
    solver = make_solver("auto", cone=program.has_cone)
    sol = solver.solve(program, tol=1e-6, max_iter=1000)
    np.testing.assert_array_equal(sol.coef, 0.0)
    np.testing.assert_allclose(sol.intercept, program.constant_intercept(), atol=1e-6)


@pytest.mark.parametrize("family,activation,seed", CASES)
def test_zero_is_not_optimal_just_below_alpha_max(family, activation, seed):
    from convexnn.solvers import CvxpySolver

    program = make_program(family, activation, seed)
    amax = program.alpha_max()
    program.alpha = amax * (1 - 1e-3)
    b0 = program.constant_intercept()
    J0 = program.objective(program.zero_coef(), b0)

    # directions of descent from the SOCP maximisers of the worst (pattern, output)
    if program.has_cone:
        value, k, j, s, u = max(_socp_block_maxima(program), key=lambda r: r[0])
        blocks = [k, k + program.operator.n_patterns]  # v_k or w_k
        directions = [(blk, j, u) for blk in blocks]
    else:
        # gated: the top singular pair (one output: the normalised gradient block)
        gated = program.operator
        G = gated.rmatvec(_theta(program))
        k = int(np.argmax(program.penalty.dual_norms(G)))
        Us, _, Vt = np.linalg.svd(G[k])
        directions = [(k, None, sign * np.outer(Us[:, 0], Vt[0])) for sign in (1.0, -1.0)]
    best = J0
    for blk, j, u in directions:
        U = program.zero_coef()
        if j is None:
            U[blk] = u
        else:
            U[blk, :, j] = u
        U = program.make_feasible(U)  # removes the SOCP's rounding-level violations
        assert program.cone_violation(U) <= 1e-12
        for t in np.logspace(-6, 1, 141):
            best = min(best, program.objective(t * U, b0))
    decrease = J0 - best
    assert decrease > 1e-12 * J0  # V = 0 is not optimal below alpha_max

    # the reference solver finds a solution at least that good (to its accuracy)
    sol = CvxpySolver().solve(program)
    coef = program.make_feasible(sol.coef)
    assert np.abs(coef).max() > 0
    assert program.objective(coef, sol.intercept) <= J0 - decrease + 1e-7
