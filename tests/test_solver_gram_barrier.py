"""The coefficient-space interior-point method of the gated program, against oracles.

Checked here: on the oracle suite's small squared-loss programs (one and two outputs,
uniform and random sample weights) the objective of the exported network (computed by
hand) against cvxpy/Clarabel, the certificate's gap against the true suboptimality, and
the history's last record; on a larger program (many rows per coefficient, the case it
is for) the same certified optimum as FISTA; streamed data; a certified warm start;
refusals before any work; ``GatedOperator.block_gram`` against the operator's products;
and what ``solver="auto"`` picks.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cvxpy")

from test_solver_barrier import TOL, assert_matches_oracle, barrier_program  # noqa: E402
from test_solvers_oracle import reference_optimum  # noqa: E402

import convexnn.solvers as solvers  # noqa: E402
from convexnn.certificates import certify  # noqa: E402
from convexnn.losses import LogisticLoss, SquaredLoss  # noqa: E402
from convexnn.operators import ConeOperator, GatedOperator  # noqa: E402
from convexnn.patterns import DataSampler  # noqa: E402
from convexnn.penalties import ColumnGroupL2, NuclearNorm  # noqa: E402
from convexnn.programs import ConvexProgram  # noqa: E402
from convexnn.solvers import FISTA, GramBarrier, make_solver  # noqa: E402



def tall_program(n=4000, d=3, P=30, c=1, seed=0, weights="random"):
    """Many rows per coefficient: the programs GramBarrier is for."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Y = np.column_stack([np.sin(2 * X[:, 0]), X[:, 1] ** 2 - 1])[:, :c] + 0.1 * rng.normal(size=(n, c))
    w = rng.uniform(0.2, 1.0, n) if weights == "random" else np.ones(n)
    op = GatedOperator(X, DataSampler(P).sample(X, seed).gates)
    return ConvexProgram(SquaredLoss(), ColumnGroupL2(), op, Y, w / w.sum(), 1e-3)


def assert_same_certified_optimum(program, first, second, tol_first, tol_second):
    """Both solutions certify their tolerance, re-certified from their dual points, and
    their objectives agree within the two gaps (each is within its own of the optimum)."""
    certs = [
        certify(program, s.coef, s.intercept, s.dual_points, activation="gated_relu", tol=t)
        for s, t in ((first, tol_first), (second, tol_second))
    ]
    assert certs[0].relative_gap <= tol_first and certs[1].relative_gap <= tol_second
    assert abs(certs[0].primal - certs[1].primal) <= certs[0].gap + certs[1].gap + 1e-15


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("family", ["reg1", "reg2"])
@pytest.mark.parametrize("space", ["coefficients", "samples"])
def test_gram_barrier_matches_cvxpy_oracle(family, seed, space):
    program = barrier_program(family, seed)  # squared loss, one group per block and output
    p_star, _ = reference_optimum(program)
    solver = GramBarrier(space=space)
    assert solver.space_for(program) == space
    assert_matches_oracle(program, solver.solve(program, tol=TOL, max_iter=200), p_star)


@pytest.mark.parametrize("c", [1, 2])
def test_both_spaces_certify_the_same_optimum_on_wide_data(c):
    """Fewer samples than coefficients (P p = 400 > n = 150): ``auto`` factors the
    ``n x n`` Woodbury matrix; the coefficient-space path is the independent check."""
    program = tall_program(n=150, d=4, P=80, c=c)
    assert program.operator.n_patterns * program.operator.n_inputs > 150
    assert GramBarrier().space_for(program) == "samples"
    wide = GramBarrier().solve(program, tol=1e-7, max_iter=100)
    square = GramBarrier(space="coefficients").solve(program, tol=1e-7, max_iter=100)
    assert_same_certified_optimum(program, wide, square, 1e-7, 1e-7)
    assert wide.n_iter <= 40


def test_space_is_checked_and_sample_space_refuses_many_samples():
    program = tall_program(n=150, d=4, P=80)
    with pytest.raises(ValueError, match="space must be"):
        GramBarrier(space="dual").check(program)
    with pytest.raises(ValueError, match="exceed max_samples=100"):
        GramBarrier(space="samples", max_samples=100).check(program)
    # too many samples for the n x n matrix: auto falls back to the coefficients
    assert GramBarrier(max_samples=100).space_for(program) == "coefficients"
    # more samples than coefficients, but too many coefficients for their matrix
    tall = tall_program(n=400, d=4, P=60)
    assert GramBarrier().space_for(tall) == "coefficients"
    assert GramBarrier(max_variables=299).space_for(tall) == "samples"
    GramBarrier(max_variables=299).check(tall)  # and it solves it (test above: same optimum)


@pytest.mark.parametrize("c", [1, 2])
def test_gram_barrier_and_fista_certify_the_same_optimum(c):
    program = tall_program(c=c)
    fast = GramBarrier().solve(program, tol=1e-7, max_iter=100)
    plain = FISTA().solve(program, tol=1e-6, max_iter=100_000)
    assert_same_certified_optimum(program, fast, plain, 1e-7, 1e-6)
    assert fast.n_iter <= 30
    # the pruned interior point keeps the optimum's neurons, not a dust of tiny blocks
    norms = np.linalg.norm(fast.coef, axis=1)
    assert norms[norms > 0].min() > 1e-6 * norms.max()


def test_streamed_data_give_the_in_memory_solution(tmp_path):
    from convexnn.data import AugmentedData

    program = tall_program(n=2500)
    X = program.operator.Xa[:, :-1]
    path = tmp_path / "X.npy"
    np.save(path, X)
    op = GatedOperator(AugmentedData(np.load(path, mmap_mode="r")), program.operator.gates)
    assert op.streamed
    streamed = ConvexProgram(SquaredLoss(), ColumnGroupL2(), op, program.Y, program.sample_weight, program.alpha)
    a = GramBarrier().solve(program, tol=1e-8, max_iter=100)
    b = GramBarrier().solve(streamed, tol=1e-8, max_iter=100)
    np.testing.assert_allclose(b.coef, a.coef, rtol=1e-9, atol=1e-12)
    assert a.n_iter == b.n_iter


def test_a_certified_warm_start_is_returned_at_once():
    program = tall_program(n=2500)
    first = GramBarrier().solve(program, tol=1e-6, max_iter=100)
    again = GramBarrier().solve(program, tol=1e-5, max_iter=100, init=(first.coef, first.intercept))
    assert again.n_iter == 0
    np.testing.assert_array_equal(again.coef, first.coef)
    # an uncertified one is only a candidate: the path runs and certifies
    cold = GramBarrier().solve(program, tol=1e-7, max_iter=100, init=(np.zeros_like(first.coef), None))
    assert cold.n_iter > 0
    assert cold.history.primal[-1] - cold.history.dual[-1] <= 1e-7 * cold.history.primal[-1]


def test_refuses_programs_it_does_not_solve():
    base = tall_program(n=300, P=5)
    op = base.operator
    cases = {
        "cone-constrained": ConvexProgram(SquaredLoss(), ColumnGroupL2(), ConeOperator(op), base.Y,
                                            base.sample_weight, 1e-3),
        "LogisticLoss is not the squared loss": ConvexProgram(
            LogisticLoss(), ColumnGroupL2(), op, (base.Y > 0).astype(float), base.sample_weight, 1e-3),
        "NuclearNorm": ConvexProgram(SquaredLoss(), NuclearNorm(), op, np.c_[base.Y, base.Y],
                                     base.sample_weight, 1e-3),
        "exceed max_variables=10 and 300 samples exceed max_samples=100": base,
    }
    for expected, program in cases.items():
        solver = GramBarrier(max_variables=10, max_samples=100)  # neither matrix allowed
        with pytest.raises(ValueError, match=expected):
            solver.check(program)
        with pytest.raises(ValueError, match="solver='fista'"):
            solver.solve(program, tol=1e-3, max_iter=10)
    with pytest.raises(ValueError, match="step_fraction"):
        GramBarrier(step_fraction=1.0).check(base)
    # the space asked for: only its own limit is named
    with pytest.raises(ValueError, match=r"exceed max_variables=10 \(each step"):
        GramBarrier(space="coefficients", max_variables=10).check(base)


@pytest.mark.parametrize("space, shape", [("coefficients", dict(n=2500)), ("samples", dict(n=150, d=4, P=80))])
def test_runs_on_the_torch_operator(space, shape):
    """A device operator keeps the host arrays (the Gram matrices are formed from them)
    and gives the exact products: the same steps and optimum as the numpy operator."""
    pytest.importorskip("torch")
    from convexnn.devices import TorchGatedOperator

    base = tall_program(**shape)
    op = TorchGatedOperator(base.operator.Xa[:, :-1], base.operator.gates, "cpu", "float32")
    program = ConvexProgram(SquaredLoss(), ColumnGroupL2(), op, base.Y, base.sample_weight, base.alpha)
    solver = make_solver("auto", program=program)
    assert isinstance(solver, GramBarrier) and solver.space_for(program) == space
    a = GramBarrier().solve(base, tol=1e-8, max_iter=100)
    b = GramBarrier().solve(program, tol=1e-8, max_iter=100)
    assert a.n_iter == b.n_iter
    np.testing.assert_allclose(b.coef, a.coef, rtol=1e-7, atol=1e-10)


def test_auto_picks_it_for_the_squared_loss(monkeypatch):
    def picked(program):
        solver = make_solver("auto", program=program)
        return type(solver).__name__, getattr(solver, "space_for", lambda _: None)(program)

    # 2.7 times as many coefficients (80 patterns x 5 inputs) as samples: Woodbury's n x n
    # systems; a few more coefficients than samples (30 x 4 vs 100): the float32 matrix,
    # still the cheaper factorisation (space_for's flop counts)
    assert picked(tall_program(n=150, d=4, P=80)) == ("GramBarrier", "samples")
    assert picked(tall_program(n=100)) == ("GramBarrier", "coefficients")
    big = tall_program(n=solvers.AUTO_BARRIER_MAX_SAMPLES["squared"] + 1)
    assert picked(big) == ("GramBarrier", "coefficients")
    assert isinstance(make_solver("auto", program=big, tol=1e-9), FISTA)  # below the reliable tol
    coefficients = big.operator.n_patterns * big.operator.n_inputs
    monkeypatch.setattr(solvers, "AUTO_GRAM_MAX_VARIABLES", coefficients - 1)
    # its dense matrix too large, and too many samples for the n x n one
    monkeypatch.setattr(solvers, "AUTO_GRAM_MAX_SAMPLES", big.operator.n_samples - 1)
    assert picked(big) == ("FISTA", None)
    # ... with the n x n one allowed again, Woodbury's systems (though n > P p)
    monkeypatch.setattr(solvers, "AUTO_GRAM_MAX_SAMPLES", big.operator.n_samples)
    assert picked(big) == ("GramBarrier", "samples")


def test_prune_blocks_keeps_the_lowest_objective_prefix():
    """The interior point's dust goes, the neurons stay; the constant model when it is
    acceptable; nothing changes when no pruned point keeps the certificate."""
    from convexnn.solvers.base import prune_blocks

    rng = np.random.default_rng(0)
    U = np.r_[rng.normal(size=(5, 3)), 1e-6 * rng.normal(size=(40, 3))]  # 5 neurons, dust
    target = U[:5].sum(axis=0)

    def objective(V):  # a loss that needs the 5 neurons, plus the group penalty
        return float(np.sum((V.sum(axis=0) - target) ** 2) + 1e-3 * np.linalg.norm(V, axis=1).sum())

    J = objective(U)
    out, value = prune_blocks(U, J, J - 1e-3 * J, 1e-2, objective)
    assert value == objective(out) < J  # dropping dust lowers the objective
    kept = np.linalg.norm(out, axis=1) > 0
    assert kept[:5].all()
    # it is the best prefix of the blocks sorted by norm
    order = np.argsort(-np.linalg.norm(U, axis=1), kind="stable")
    prefixes = [objective(np.where(np.isin(np.arange(45), order[:k])[:, None], U, 0.0)) for k in range(1, 46)]
    assert value == pytest.approx(min(prefixes), rel=1e-9)
    # no acceptable point (the dual is far below): unchanged
    same, v2 = prune_blocks(U, J, 0.5 * J, 1e-3, objective)
    assert same is U and v2 == J
    # the constant model when it is acceptable (here: the optimum is zero)
    def penalty_only(V):
        return float(np.sum(V.sum(axis=0) ** 2) + 1e-3 * np.linalg.norm(V, axis=1).sum())

    dust = 1e-6 * U
    zero, v3 = prune_blocks(dust, penalty_only(dust), 0.0, 1e-3, penalty_only)
    assert not zero.any() and v3 == 0.0


def test_progress_lines_start_before_the_gram_matrix(capsys):
    """One line per step, the first (the constant model's certificate) before the
    Gram matrix is formed, so long fits show something at once; max_iter stops it."""
    program = tall_program(n=2500)
    sol = GramBarrier().solve(program, tol=1e-12, max_iter=3, verbose=2)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("[gram_barrier] iter")]
    assert len(lines) == 4 and lines[0].startswith("[gram_barrier] iter      0")
    assert sol.n_iter == 3 and sol.history.iteration[-1] == 3


def test_regressor_auto_fits_tall_data_with_it():
    """The estimator path: 'auto' on a tall regression picks GramBarrier, certifies
    its tolerance, and agrees with a FISTA fit of the same program within both gaps."""
    from convexnn import ConvexMLPRegressor

    rng = np.random.default_rng(4)
    X = rng.normal(size=(3000, 3))
    y = np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2] + 0.1 * rng.normal(size=3000)
    fast = ConvexMLPRegressor("gated_relu", n_patterns=60, tol=1e-5, random_state=0).fit(X, y)
    assert fast.certificate_.converged and fast.certificate_.relative_gap <= 1e-5
    plain = ConvexMLPRegressor("gated_relu", n_patterns=60, tol=1e-5, solver="fista", max_iter=100_000,
                               random_state=0).fit(X, y)
    a, b = fast.certificate_, plain.certificate_
    assert abs(a.primal - b.primal) <= a.gap + b.gap + 1e-15
    assert fast.n_iter_ <= 30  # interior-point steps (FISTA: thousands of iterations here)
    np.testing.assert_allclose(fast.predict(X), plain.predict(X), atol=5e-3)  # seen: 3e-4


def test_regressor_auto_fits_wide_data_with_it(monkeypatch):
    """The estimator path on wide data (200 patterns x 21 inputs, 300 rows): 'auto'
    takes GramBarrier's sample-space steps and agrees with the dual barrier (an
    independent interior-point method on the dual) within both certified gaps."""
    from convexnn import ConvexMLPRegressor

    factored = []
    sample_system = GramBarrier._sample_system
    monkeypatch.setattr(GramBarrier, "_sample_system",
                        staticmethod(lambda op, w: factored.append(op.n_samples) or sample_system(op, w)))
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 20))
    y = np.tanh(X[:, 0] - X[:, 1]) + 0.5 * X[:, 2] ** 2 + 0.1 * rng.normal(size=300)
    fast = ConvexMLPRegressor("gated_relu", n_patterns=200, tol=1e-6, random_state=0).fit(X, y)
    assert fast.certificate_.converged and fast.certificate_.relative_gap <= 1e-6
    assert factored == [300]  # the n x n systems were the ones factored
    other = ConvexMLPRegressor("gated_relu", n_patterns=200, tol=1e-6, solver="barrier",
                               random_state=0).fit(X, y)
    a, b = fast.certificate_, other.certificate_
    assert b.converged and abs(a.primal - b.primal) <= a.gap + b.gap + 1e-15
    assert fast.n_iter_ < other.n_iter_  # Newton steps: primal-dual vs the dual's barrier path
    np.testing.assert_allclose(fast.predict(X), other.predict(X), atol=1e-3)  # seen: 6e-5
