"""The primal-dual interior-point method of the cone-constrained programs, against oracles.

Checked here: on small random ReLU programs with the squared loss (one and two outputs,
uniform and random sample weights), the objective of the network it exports (computed
by hand) against cvxpy/Clarabel, the certificate's gap against the true suboptimality,
strict feasibility of the returned point and its sparsity; leaky ReLU and abs; warm
starts; refusals before any work; ``make_solver('barrier')`` on a cone program; the
progress lines and the Ctrl-C snapshot.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cvxpy")

from test_solvers_oracle import make_program, program_J, reference_optimum  # noqa: E402

from convexnn.certificates import certify  # noqa: E402
from convexnn.solvers import ConeBarrier, DualBarrier, FISTA, make_solver  # noqa: E402
from convexnn.solvers.base import ProgressScope  # noqa: E402

TOL = 1e-7


def _check(program, sol, p_star, activation="relu", tol=TOL):
    assert sol.coef.shape == program.coef_shape
    assert program.cone_violation(sol.coef) <= 1e-12  # feasible: a valid network
    J = program_J(program, sol.coef, sol.intercept)
    assert J == pytest.approx(program.objective(sol.coef, sol.intercept), rel=1e-10)
    assert sol.history.relative_gap[-1] <= tol, (
        f"relative gap {sol.history.relative_gap[-1]:.1e} after {sol.n_iter} steps")
    assert abs(J - p_star) <= 10 * tol * abs(p_star), (J, p_star)
    cert = certify(program, sol.coef, sol.intercept, sol.dual_points,
                   activation=activation, tol=tol, primal=J, refine=True)
    # the gap bounds the suboptimality; Clarabel's optimum is accurate to ~1e-7
    # relative (a feasible J of this solver lands 4e-8 below it on reg1 seed 5)
    assert cert.gap >= J - p_star - 1e-9
    assert J - p_star >= -1e-7 * abs(p_star)
    assert cert.dual <= p_star + 1e-9
    assert cert.relative_gap <= tol + 1e-10
    assert sol.history.primal[-1] == pytest.approx(J, rel=1e-10)
    return J


CASES = [(f, s) for f in ("reg1", "reg2") for s in range(8)]


@pytest.mark.parametrize("space", ["samples", "coefficients"])
@pytest.mark.parametrize(("family", "seed"), CASES)
def test_cone_barrier_matches_cvxpy_oracle(family, seed, space):
    """Both spaces of the Newton systems (n x n, or P (d+1) square: Woodbury on the
    pattern differences) certify the oracle's optimum."""
    program = make_program(family, "relu", seed)  # odd seeds: random sample weights
    p_star, _ = reference_optimum(program)
    sol = ConeBarrier(space=space).solve(program, tol=TOL, max_iter=500)
    _check(program, sol, p_star)
    # an interior point method takes tens of steps, not thousands
    assert sol.n_iter <= 150


@pytest.mark.parametrize(("family", "seed"), [("reg1", 2), ("reg2", 3), ("reg1", 5)])
def test_centrality_correctors_reach_the_same_optimum(family, seed):
    """Gondzio correctors only change the path: the same certified optimum (cvxpy).
    (They are a heuristic: on these small programs they save steps or cost a couple.)"""
    program = make_program(family, "relu", seed)
    p_star, _ = reference_optimum(program)
    corrected = ConeBarrier(correctors=2).solve(program, tol=TOL, max_iter=500)
    _check(program, corrected, p_star)
    assert corrected.n_iter <= 150


@pytest.mark.parametrize("space", ["samples", "coefficients"])
@pytest.mark.parametrize("activation", ["leaky_relu", "abs"])
def test_other_cone_activations(activation, space):
    """(Their S_k are not 0/1 masks: the coefficient-space Gram uses their diagonals.)"""
    program = make_program("reg1", activation, 1, negative_slope=0.1)
    p_star, _ = reference_optimum(program)
    sol = ConeBarrier(space=space).solve(program, tol=TOL, max_iter=500)
    _check(program, sol, p_star, activation)


def test_space_choice_and_its_limits():
    """``space_for``: the cheaper space by its cost model, within each space's limit."""
    from convexnn.operators import ConeOperator, GatedOperator
    from convexnn.programs import ConvexProgram

    base = make_program("reg1", "relu", 0)

    def program(n, P, d):
        rng = np.random.default_rng(0)
        X = rng.normal(size=(n, d))
        op = ConeOperator(GatedOperator(X, rng.normal(size=(d + 1, P))), "relu")
        return ConvexProgram(base.loss, base.penalty, op, rng.normal(size=(n, 1)), np.full(n, 1.0 / n), 0.1)

    tall, wide = program(3000, 20, 9), program(500, 500, 30)  # 200 vs 15500 coefficients
    assert ConeBarrier(max_samples=5000).space_for(tall) == "coefficients"
    assert ConeBarrier().space_for(wide) == "samples"
    assert ConeBarrier(max_samples=100).space_for(wide) == "coefficients"  # the only one allowed
    assert ConeBarrier(space="samples").space_for(tall) == "samples"
    assert ConeBarrier().supports(tall) is None  # 3000 rows: coefficient space
    reason = ConeBarrier(max_coefficients=100).supports(tall)
    assert "max_samples=2000" in reason and "max_coefficients=100" in reason
    assert "max_samples" in ConeBarrier(space="samples").supports(tall)
    assert "max_coefficients" in ConeBarrier(space="coefficients", max_coefficients=100).supports(wide)


def test_both_spaces_take_the_same_early_path_on_tall_data():
    """More samples than coefficients: the two factorizations solve the same Newton
    systems, so the paths agree to rounding while the systems are well conditioned
    (the first steps), and both certify the same optimum. (Late steps differ in
    rounding: on this 2-output program the float64 sample-space path plateaus at a 3e-6
    gap for 25 steps, the coefficient-space one for 10, before both certify 1e-7.)"""
    program = make_program("reg2", "relu", 4)
    a = ConeBarrier(space="samples", single_precision=False).solve(program, tol=1e-7, max_iter=200)
    b = ConeBarrier(space="coefficients", single_precision=False).solve(program, tol=1e-7, max_iter=200)
    np.testing.assert_allclose(a.history.primal[:5], b.history.primal[:5], rtol=1e-8)
    assert max(a.history.relative_gap[-1], b.history.relative_gap[-1]) <= 1e-7
    J = [program_J(program, s.coef, s.intercept) for s in (a, b)]
    assert J[0] == pytest.approx(J[1], rel=3e-7)


def test_returned_network_is_sparse_and_matches_fista():
    program = make_program("reg1", "relu", 3)
    program.alpha *= 3.0  # a sparse optimum
    sol = ConeBarrier().solve(program, tol=1e-6, max_iter=500)
    ref = FISTA().solve(program, tol=1e-9, max_iter=200_000)
    J, J_ref = program.objective(sol.coef, sol.intercept), program.objective(ref.coef, ref.intercept)
    assert J == pytest.approx(J_ref, rel=2e-6)
    norms = np.linalg.norm(sol.coef, axis=1).max(axis=1)
    ref_active = np.count_nonzero(np.linalg.norm(ref.coef, axis=1).max(axis=1))
    # interior iterates have every block nonzero; the pruned network keeps few more
    # neurons than the exactly sparse FISTA solution, and far fewer than all
    assert np.count_nonzero(norms) <= max(2 * ref_active, ref_active + 5)
    assert np.count_nonzero(norms) < norms.size


def test_warm_start():
    program = make_program("reg1", "relu", 2)
    solved = FISTA().solve(program, tol=1e-9, max_iter=200_000)
    again = ConeBarrier().solve(program, tol=1e-6, max_iter=500, init=(solved.coef, solved.intercept))
    assert again.n_iter == 0  # certified by its own loss gradient: returned at once
    rough = FISTA().solve(program, tol=1e-12, max_iter=5)
    warm = ConeBarrier().solve(program, tol=TOL, max_iter=500, init=(rough.coef, rough.intercept))
    assert warm.history.relative_gap[-1] <= TOL
    assert warm.history.primal[-1] <= program.objective(program.make_feasible(rough.coef), rough.intercept)


def test_refuses_programs_it_does_not_solve():
    with pytest.raises(ValueError, match="ReLU program only"):
        ConeBarrier().solve(make_program("reg1", "gated_relu", 0), tol=1e-6, max_iter=10)
    with pytest.raises(ValueError, match="squared loss"):
        ConeBarrier().solve(make_program("binary", "relu", 0), tol=1e-6, max_iter=10)
    relu = make_program("reg1", "relu", 0)
    with pytest.raises(ValueError, match=r"max_samples.*use solver='fista' or 'admm'"):
        ConeBarrier(max_samples=5, space="samples").solve(relu, tol=1e-6, max_iter=10)
    with pytest.raises(ValueError, match=r"max_samples=5 .*max_coefficients=3 "):
        ConeBarrier(max_samples=5, max_coefficients=3).solve(relu, tol=1e-6, max_iter=10)
    with pytest.raises(ValueError, match="space must be"):
        ConeBarrier(space="dual").solve(relu, tol=1e-6, max_iter=10)
    for name, bad in (("max_coefficients", "x"), ("max_coefficients", 2.5), ("max_samples", -1)):
        with pytest.raises(ValueError, match=f"{name} must be a non-negative integer"):
            ConeBarrier(**{name: bad}).solve(relu, tol=1e-6, max_iter=10)
    for bad in (-1, 1.5, "2"):
        with pytest.raises(ValueError, match="correctors must be a non-negative integer"):
            ConeBarrier(correctors=bad).solve(relu, tol=1e-6, max_iter=10)
    with pytest.raises(ValueError, match="step_fraction"):
        ConeBarrier(step_fraction=1.5).solve(relu, tol=1e-6, max_iter=10)
    # 'barrier' is the interior-point method of whichever program it is given
    assert isinstance(make_solver("barrier", program=relu), ConeBarrier)
    assert isinstance(make_solver("barrier", program=make_program("reg1", "gated_relu", 0)), DualBarrier)
    assert isinstance(make_solver("cone_barrier"), ConeBarrier)


def test_large_alpha_gives_the_constant_model():
    program = make_program("reg2", "relu", 3)
    program.alpha = 1.01 * program.alpha_max()
    sol = ConeBarrier().solve(program, tol=1e-8, max_iter=200)
    np.testing.assert_array_equal(sol.coef, 0.0)
    np.testing.assert_allclose(sol.intercept, program.constant_intercept(), atol=1e-10)
    assert sol.history.relative_gap[-1] <= 1e-8


def test_progress_lines_and_max_iter(capsys):
    program = make_program("reg1", "relu", 4)
    sol = ConeBarrier().solve(program, tol=1e-14, max_iter=4, verbose=2)
    err = capsys.readouterr().err
    assert "[cone_barrier] iter" in err and "rel. gap" in err
    assert sol.n_iter == 4 and sol.history.iteration[-1] == 4
    assert program.cone_violation(sol.coef) <= 1e-12
    # the history's bounds are certified: the dual point reproduces the recorded dual
    cert = certify(program, sol.coef, sol.intercept, sol.dual_points, activation="relu", tol=1e-14)
    assert cert.dual >= sol.history.dual[-1] - 1e-12 * abs(sol.history.dual[-1])


def test_ctrl_c_snapshot_is_a_feasible_point():
    program = make_program("reg2", "relu", 1)
    with ProgressScope() as scope:
        original = ConeBarrier._step
        calls = {"n": 0}

        def step(self, col, ctx, y, single=False):
            calls["n"] += 1
            if calls["n"] == 5:
                raise KeyboardInterrupt
            return original(self, col, ctx, y, single)

        ConeBarrier._step = step
        try:
            with pytest.raises(KeyboardInterrupt):
                ConeBarrier().solve(program, tol=1e-14, max_iter=100)
        finally:
            ConeBarrier._step = original
    snap = scope.last_snapshot
    assert snap is not None and snap.iteration > 0
    assert program.cone_violation(snap.coef) <= 1e-12
    assert program.objective(snap.coef, snap.intercept) == pytest.approx(snap.objective, rel=1e-10)


def test_row_products_give_every_block_curvature():
    """``_RowProducts.grams`` (upper triangle of X_a (x) X_a, unpacked) is
    X_a^T diag(c_j) X_a for every column j, symmetric, to rounding."""
    from convexnn.solvers.cone_barrier import _RowProducts

    rng = np.random.default_rng(3)
    Xa = rng.standard_normal((40, 5))
    c = rng.random((40, 7))
    expected = np.einsum("ni,nj,nm->mij", Xa, Xa, c)
    got = _RowProducts(Xa).grams(c)
    assert got.shape == (7, 5, 5)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(got, got.transpose(0, 2, 1))


def test_blocks_without_a_usable_cone_stay_zero(monkeypatch):
    """Patterns whose cone has no usable interior direction are left out of the path
    (their blocks stay zero; the steps then index the active blocks, not all of them):
    the result is the optimum of the program without those patterns (cvxpy)."""
    from convexnn.operators import ConeOperator, GatedOperator
    from convexnn.programs import ConvexProgram

    base = make_program("reg1", "relu", 2)
    gated = base.operator.gated
    X, gates = gated.Xa[:, :-1], gated.gates
    P = gates.shape[1]

    def program(G):
        return ConvexProgram(base.loss, base.penalty, ConeOperator(GatedOperator(X, G), "relu"),
                             base.Y, base.sample_weight, base.alpha)

    # two zero gates (every X_a g = 0: not interior, so they go to the LP), whose cones
    # the LP is made to find empty
    with_two = program(np.hstack([gates[:, :2], np.zeros((gates.shape[0], 2)), gates[:, 2:]]))
    monkeypatch.setattr(ConeBarrier, "_interior_directions",
                        staticmethod(lambda Xa, E: np.zeros((E.shape[1], Xa.shape[1]))))
    sol = ConeBarrier().solve(with_two, tol=TOL, max_iter=200)
    blocks = [2, 3, P + 4, P + 5]  # both blocks of patterns 2 and 3 (of P + 2)
    assert np.all(sol.coef[blocks] == 0.0)
    assert with_two.cone_violation(sol.coef) <= 1e-12
    p_star, _ = reference_optimum(program(gates))
    J = program_J(with_two, sol.coef, sol.intercept)
    assert abs(J - p_star) <= 10 * TOL * abs(p_star), (J, p_star)
    assert sol.history.relative_gap[-1] <= TOL


def test_analytic_centres_match_cvxpy():
    """The start's cone centres minimise psi(u) = -sum log(E X_a u) + |u|^2 / 2 (cvxpy /
    Clarabel on the exponential cone), also for gates through a data point, where the
    barrier is steep (the case the line search along the Newton direction is for)."""
    import cvxpy as cp

    from convexnn.solvers.cone_barrier import _RowProducts

    rng = np.random.default_rng(7)
    n, p, m = 40, 4, 6
    Xa = np.hstack([rng.standard_normal((n, p - 1)), np.ones((n, 1))])
    gates = rng.standard_normal((p, m))
    # gates 0 and 1 pass through data points 0 and 1 (then nudged inside their cone)
    for k in (0, 1):
        gates[-1, k] = -Xa[k, :-1] @ gates[:-1, k]
    E = np.where(Xa @ gates > 0, 1.0, -1.0)
    E[[0, 1], [0, 1]] = 1.0
    gates[-1, :2] += 1e-7
    start = (gates / np.linalg.norm(gates, axis=0)).T
    assert ((Xa @ start.T) * E).min() > 0
    got = ConeBarrier._analytic_centres(Xa, E, _RowProducts(Xa), start)

    def psi(u, k):
        return -np.log(E[:, k] * (Xa @ u)).sum() + 0.5 * u @ u

    for k in range(m):
        u = cp.Variable(p)
        cp.Problem(cp.Minimize(-cp.sum(cp.log(cp.multiply(E[:, k], Xa @ u))) + 0.5 * cp.sum_squares(u))
                   ).solve(solver=cp.CLARABEL)
        # the minimiser has norm sqrt(n) (u . grad psi = |u|^2 - n = 0): ours, rescaled,
        # is at least as good as the oracle's (to Clarabel's accuracy), same direction
        ours = np.sqrt(n) * got[k]
        assert psi(ours, k) <= psi(u.value, k) + 1e-7
        np.testing.assert_allclose(got[k], u.value / np.linalg.norm(u.value), atol=1e-4)


def test_nesterov_todd_scaling_identities():
    """W x = W^{-1} z, W W^{-1} = I, and the closed-form W^2 (square=True) is W @ W,
    on interior points of the second-order cone, near its boundary too."""
    from convexnn.solvers._soc import _nt_scaling

    rng = np.random.default_rng(11)
    m, q = 50, 6
    xb, zb = rng.standard_normal((m, q - 1)), rng.standard_normal((m, q - 1))
    # x_0 above |x bar| by factors from 1 + 1e-8 (next to the boundary) to 10
    lift = np.geomspace(1e-8, 9.0, m)
    x = np.hstack([(np.linalg.norm(xb, axis=1) * (1 + lift))[:, None], xb])
    z = np.hstack([(np.linalg.norm(zb, axis=1) * (1 + lift[::-1]))[:, None], zb])
    W, Winv = _nt_scaling(x, z)
    W_, Winv_, W2 = _nt_scaling(x, z, square=True)
    np.testing.assert_array_equal(W, W_)
    np.testing.assert_array_equal(Winv, Winv_)
    np.testing.assert_allclose(np.matmul(W, x[:, :, None])[:, :, 0],
                               np.matmul(Winv, z[:, :, None])[:, :, 0], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(np.matmul(W, Winv), np.broadcast_to(np.eye(q), (m, q, q)), atol=1e-6)
    scale = np.abs(W2).max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(W2 / scale, np.matmul(W, W) / scale, atol=1e-12)
    np.testing.assert_array_equal(W2, W2.transpose(0, 2, 1))


@pytest.mark.parametrize("q", [1, 2, 3, 7, 16, 31, 33])
def test_lower_inverse_matches_lapack(q):
    """The block-recursive batched triangular inverse (odd and even sizes) is the inverse."""
    from convexnn.solvers._soc import _lower_inverse

    rng = np.random.default_rng(q)
    A = rng.standard_normal((20, q, q))
    L = np.linalg.cholesky(A @ A.transpose(0, 2, 1) + q * np.eye(q))
    Linv = _lower_inverse(L)
    np.testing.assert_allclose(Linv, np.linalg.inv(L), rtol=1e-12, atol=1e-13)
    assert np.all(np.triu(Linv, 1) == 0.0)  # stays lower triangular, exactly


def test_refined_dual_value_skips_projections_only_where_they_cannot_help():
    """refine=True: with multipliers that make Theta feasible, the exact norms (no larger)
    give the same value; without them the exact norms are computed and can only help;
    every value is a lower bound of the optimum."""
    from convexnn.certificates import DualPoint, dual_value

    program = make_program("reg1", "relu", 2)
    p_star, _ = reference_optimum(program)
    # refine_from=0: the solver never projects, so its dual point carries the scaled
    # multiplier iterate, which makes Theta feasible
    sol = ConeBarrier(refine_from=0.0).solve(program, tol=1e-6, max_iter=200)
    point = sol.dual_points[0]
    assert point.Lam is not None and point.Lam.any()
    plain, refined = dual_value(program, point), dual_value(program, point, refine=True)
    # the same value up to rounding (where the multiplier iterate's norm is alpha to
    # the last digit, the exact norms' scale differs in the last bit)
    assert abs(refined - plain) <= 1e-12 * abs(plain) and plain <= p_star + 1e-9
    # and it is a tight bound: within the solver's tolerance of its own network's J
    # (not of Clarabel's p*, which is accurate to ~1e-8 relative only: J lands 1.4e-9
    # below it here)
    J = program_J(program, sol.coef, sol.intercept)
    assert J - plain <= 1e-6 * J
    bare = DualPoint(point.Theta, np.zeros_like(point.Lam))  # multipliers that do not help
    assert dual_value(program, bare) < dual_value(program, bare, refine=True) <= p_star + 1e-9


def test_coefficient_space_bands_of_rows_give_the_same_path(monkeypatch):
    """L^T H L is formed a band of LHL_CHUNK patterns' rows at a time, lower triangle
    only: bands of 2 patterns (several, the last one partial) take the same path as one
    band for all patterns, and the optimum is Clarabel's."""
    import convexnn.solvers.cone_barrier as cb

    program = make_program("reg2", "relu", 4)
    assert program.operator.n_patterns > 2 and program.operator.n_patterns % 2 == 1
    one = ConeBarrier(space="coefficients").solve(program, tol=TOL, max_iter=200)
    monkeypatch.setattr(cb, "LHL_CHUNK", 2)
    banded = ConeBarrier(space="coefficients").solve(program, tol=TOL, max_iter=200)
    np.testing.assert_allclose(one.history.primal[:8], banded.history.primal[:8], rtol=1e-10)
    _check(program, banded, reference_optimum(program)[0])


def test_scratch_arrays_are_reused_by_name_and_shape():
    from convexnn.solvers.cone_barrier import _Scratch

    scratch = _Scratch()
    a = scratch.get("a", (3, 4))
    assert a.shape == (3, 4) and a.flags.c_contiguous
    assert np.shares_memory(scratch.get("a", (3, 4)), a)  # reused
    assert not np.shares_memory(scratch.get("b", (3, 4)), a)  # one storage per name
    smaller = scratch.get("a", (2, 5))  # a smaller shape: a view of the same storage
    assert smaller.shape == (2, 5) and smaller.flags.c_contiguous and np.shares_memory(smaller, a)
    assert not np.shares_memory(scratch.get("a", (5, 5)), a)  # larger: new storage
    given = np.zeros((2, 2))
    scratch.give("c", given)
    assert np.shares_memory(scratch.get("c", (2, 2)), given)
    single = scratch.get("d", (2, 2), np.float32)
    assert single.dtype == np.float32
    assert scratch.get("d", (2, 2)).dtype == np.float64  # another dtype: new storage


def test_signs_and_affine_complementarity_match_their_dense_forms():
    """The per-half sign products (no n x 2P sign matrix) and the banded affine
    complementarity equal the dense expressions they replace, including where the
    expanded sum would cancel (the predictor's dg, dlam with lam dg + g dlam = -lam g)."""
    from convexnn.solvers.cone_barrier import _apply_signs, _pair_products

    rng = np.random.default_rng(3)
    n, P = 601, 7  # more rows than one band, and a partial last band
    Ed = np.where(rng.random((n, P)) < 0.5, -1.0, 1.0)
    values = rng.standard_normal((n, 2 * P))
    expected = values * np.concatenate([Ed, Ed], axis=1)
    np.testing.assert_array_equal(_apply_signs(values, Ed, out=np.empty_like(values)), expected)
    assert np.shares_memory(_apply_signs(values, Ed, out=values), values)  # in place
    np.testing.assert_array_equal(values, expected)

    lam, g = rng.random((n, 2 * P)) + 0.1, rng.random((n, 2 * P)) + 0.1
    dg = rng.standard_normal((n, 2 * P))
    dlam = -lam - lam * dg / g  # the predictor: (lam + dlam)(g + dg) = dlam dg
    for a in (0.3, 1.0):
        direct = float(np.sum((lam + a * dlam) * (g + a * dg)))
        assert _pair_products(lam, dlam, g, dg, a) == pytest.approx(direct, rel=1e-12)
    assert _pair_products(lam, dlam, g, dg, 1.0, rows=64) == pytest.approx(float(np.sum(dlam * dg)), rel=1e-12)


def test_coefficient_space_float32_factor_is_used_and_refined_to_the_same_optimum(monkeypatch):
    """The coefficient space factors its matrix in float32 while the gap is far from tol
    (each solve refined against the float64 matrix) and in float64 after: the float32
    factorizations really happen (the first steps are short in any precision, which must
    not switch them off), and both precisions certify Clarabel's optimum."""
    import convexnn.solvers.cone_barrier as cb

    dtypes = []
    real = cb.cho_factor

    def counting(a, *args, **kwargs):
        dtypes.append(a.dtype)
        return real(a, *args, **kwargs)

    monkeypatch.setattr(cb, "cho_factor", counting)
    program = make_program("reg1", "relu", 2)
    p_star, _ = reference_optimum(program)
    single = ConeBarrier(space="coefficients").solve(program, tol=1e-6, max_iter=300)
    used = list(dtypes)
    dtypes.clear()
    double = ConeBarrier(space="coefficients", single_precision=False).solve(program, tol=1e-6, max_iter=300)
    assert used.count(np.float32) >= 3 and np.float64 in used  # float32 early, float64 late
    assert set(dtypes) == {np.dtype(np.float64)}
    for sol in (single, double):
        _check(program, sol, p_star, tol=1e-6)
