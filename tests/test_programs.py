"""Programs: cone projection, NNLS, alpha_max and the convex/network identity."""

import numpy as np
import pytest

from convexnn._nnls import nnls
from convexnn.losses import LogisticLoss, SquaredLoss
from convexnn.network import Network
from convexnn.operators import ConeOperator, GatedOperator
from convexnn.patterns import DataSampler
from convexnn.penalties import ColumnGroupL2
from convexnn.programs import ConvexProgram


def relu_program(seed, n=40, d=3, P=6, c=1, alpha=1e-2, loss=None):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    gates = DataSampler(P).sample(X, seed).gates
    Y = rng.standard_normal((n, c)) if loss is None else (rng.uniform(size=(n, 1)) > 0.5) * 1.0
    w = rng.uniform(0.5, 1.5, n)
    return ConvexProgram(
        loss or SquaredLoss(), ColumnGroupL2(), ConeOperator(GatedOperator(X, gates)),
        Y, w / w.sum(), alpha,
    )


@pytest.mark.parametrize("seed", range(10))
def test_nnls_matches_cvxpy_on_wide_degenerate_systems(seed):
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(seed)
    # the shape cone projections produce: few rows, many columns
    A = rng.standard_normal((4, 60))
    b = rng.standard_normal(4)
    x = nnls(A, b)
    assert x.min() >= 0
    z = cp.Variable(60, nonneg=True)
    cp.Problem(cp.Minimize(cp.sum_squares(A @ z - b))).solve(solver="CLARABEL")
    assert np.linalg.norm(A @ x - b) <= np.linalg.norm(A @ z.value - b) + 1e-7


@pytest.mark.parametrize("seed", range(10))
def test_make_feasible_is_the_euclidean_projection(seed):
    cp = pytest.importorskip("cvxpy")
    program = relu_program(seed)
    rng = np.random.default_rng(100 + seed)
    U = rng.standard_normal(program.coef_shape)
    V = program.make_feasible(U)
    op = program.operator
    C = op.cone_values(V)
    assert C.min() >= -1e-10 * np.abs(op.preactivations(V)).max()
    assert program.cone_violation(V) <= 1e-10
    # compare one block with the projection computed by cvxpy
    P = op.n_patterns
    for j in (0, P + 1):
        G = op.cone_matrix(j)
        u = cp.Variable(U.shape[1])
        cp.Problem(cp.Minimize(cp.sum_squares(u - U[j, :, 0])), [G @ u >= 0]).solve(
            solver="CLARABEL"
        )
        np.testing.assert_allclose(V[j, :, 0], u.value, atol=1e-6)


def test_make_feasible_leaves_feasible_blocks_alone():
    program = relu_program(0)
    U = program.make_feasible(np.random.default_rng(1).standard_normal(program.coef_shape))
    np.testing.assert_array_equal(program.make_feasible(U), U)  # idempotent


@pytest.mark.parametrize("seed", range(5))
def test_feasible_convex_objective_equals_network_objective(seed):
    program = relu_program(seed, c=2)
    U = program.make_feasible(np.random.default_rng(seed).standard_normal(program.coef_shape))
    b = np.array([0.3, -0.1])
    net = Network.from_convex(program, U, b)
    X = program.operator.gated.Xa[:, :-1]
    J = net.objective(X, program.Y, program.sample_weight, program.loss, program.alpha)
    assert J == pytest.approx(program.objective(U, b), rel=1e-12)


@pytest.mark.parametrize("loss", [SquaredLoss(), LogisticLoss()])
def test_alpha_max_is_where_zero_becomes_optimal(loss):
    # gated program: at alpha_max the zero network plus the constant intercept is optimal
    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 2))
    gates = DataSampler(8).sample(X, 0).gates
    Y = rng.standard_normal((30, 1)) if isinstance(loss, SquaredLoss) else (X[:, :1] > 0) * 1.0
    w = np.full(30, 1 / 30)
    program = ConvexProgram(loss, ColumnGroupL2(), GatedOperator(X, gates), Y, w, 1.0)
    amax = program.alpha_max()
    from convexnn.solvers import FISTA

    for factor, zero in [(1.01, True), (0.8, False)]:
        program.alpha = factor * amax
        sol = FISTA().solve(program, tol=1e-9, max_iter=5000)
        assert (np.abs(sol.coef).max() < 1e-8) == zero
