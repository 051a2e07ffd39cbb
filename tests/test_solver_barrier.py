"""The sample-space interior-point solver (``DualBarrier``) against independent oracles.

Checked here: the objective of the network it exports (computed by hand) against
cvxpy/Clarabel on 60 small random programs; the certificate's gap against the true
suboptimality; agreement with FISTA on the same program (the plain path); zero sample
weights, warm starts, the constant solution above ``alpha_max``; the operator and loss
pieces it is built from (against explicit sums and finite differences); and that it
refuses, before any work, the programs it does not solve.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cvxpy")

from test_solvers_oracle import make_program, program_J, reference_optimum  # noqa: E402

import convexnn.solvers as solvers  # noqa: E402
from convexnn import ConvexMLPClassifier, ConvexMLPRegressor  # noqa: E402
from convexnn.certificates import certify  # noqa: E402
from convexnn.losses import LogisticLoss, SquaredLoss  # noqa: E402
from convexnn.operators import ConeOperator, GatedOperator  # noqa: E402
from convexnn.patterns import DataSampler  # noqa: E402
from convexnn.penalties import ColumnGroupL2, NuclearNorm  # noqa: E402
from convexnn.programs import ConvexProgram  # noqa: E402
from convexnn.solvers import (  # noqa: E402
    AUTO_BARRIER_MAX_SAMPLES,
    AUTO_CONE_BARRIER_MAX_ENTRIES,
    AUTO_CONE_BARRIER_MAX_SAMPLES,
    FISTA,
    ConeBarrier,
    DualBarrier,
    GramBarrier,
    make_solver,
)

TOL = 1e-7
FAMILIES = ["reg1", "reg2", "binary"]


def barrier_program(family, seed):
    """The oracle suite's program with one group per block and output."""
    program = make_program(family, "gated_relu", seed)
    program.penalty = ColumnGroupL2()
    return program


def assert_matches_oracle(program, sol, p_star, tol=TOL):
    """An interior-point solution of a gated program against the cvxpy optimum ``p_star``:
    exported network's objective, certificate, history, and a few dozen steps."""
    J = program_J(program, sol.coef, sol.intercept)  # by hand, from the exported network
    assert J == pytest.approx(program.objective(sol.coef, sol.intercept), rel=1e-12)
    # Clarabel is accurate to ~1e-8; the barrier is at least as accurate
    assert abs(J - p_star) <= 1e-6 * abs(p_star), (J, p_star)
    cert = certify(program, sol.coef, sol.intercept, sol.dual_points,
                   activation="gated_relu", tol=tol, primal=J)
    assert cert.relative_gap <= tol, f"gap {cert.relative_gap:.1e} after {sol.n_iter} Newton steps"
    assert cert.gap >= J - p_star - 1e-9  # the gap bounds the true suboptimality
    assert cert.gap >= -1e-12
    assert cert.dual <= p_star + 1e-9
    assert sol.history.primal[-1] == pytest.approx(J, rel=1e-12)
    assert sol.n_iter <= 60  # a few dozen Newton steps, not a first-order crawl


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("family", FAMILIES)
def test_barrier_matches_cvxpy_oracle(family, seed):
    program = barrier_program(family, seed)
    p_star, _ = reference_optimum(program)
    assert_matches_oracle(program, DualBarrier().solve(program, tol=TOL, max_iter=200), p_star)


@pytest.mark.parametrize("family", FAMILIES)
def test_barrier_and_fista_certify_the_same_optimum(family):
    program = barrier_program(family, 7)
    fast = DualBarrier().solve(program, tol=1e-8, max_iter=200)
    plain = FISTA().solve(program, tol=1e-6, max_iter=50_000)
    certs = [
        certify(program, s.coef, s.intercept, s.dual_points, activation="gated_relu", tol=1e-6)
        for s in (fast, plain)
    ]
    # each primal is within its own gap of the optimum, so they are within both gaps
    assert abs(certs[0].primal - certs[1].primal) <= certs[0].gap + certs[1].gap + 1e-15
    # and the exported networks have the same neurons (no dust of tiny blocks)
    def support(coef):
        return set(np.flatnonzero(np.sqrt((coef**2).sum(axis=(1, 2))) > 1e-6))

    assert support(fast.coef) == support(plain.coef)


def test_zero_weight_samples_are_ignored():
    program = barrier_program("reg1", 2)
    w = program.sample_weight.copy()
    w[:5] = 0.0
    w /= w.sum()
    weighted = ConvexProgram(program.loss, program.penalty, program.operator, program.Y, w, program.alpha)
    keep = w > 0
    X = program.operator.Xa[keep, :-1]
    dropped = ConvexProgram(program.loss, program.penalty, GatedOperator(X, program.gates),
                            program.Y[keep], w[keep] / w[keep].sum(), program.alpha)
    a = DualBarrier().solve(weighted, tol=1e-9, max_iter=200)
    b = DualBarrier().solve(dropped, tol=1e-9, max_iter=200)
    Ja = weighted.objective(a.coef, a.intercept)
    Jb = dropped.objective(b.coef, b.intercept)
    assert Ja == pytest.approx(Jb, rel=1e-7)
    cert = certify(weighted, a.coef, a.intercept, a.dual_points, activation="gated_relu", tol=1e-9)
    assert cert.relative_gap <= 1e-9


@pytest.mark.parametrize("family", FAMILIES)
def test_warm_start_from_a_rough_solution(family):
    program = barrier_program(family, 4)
    rough = FISTA().solve(program, tol=1e-2, max_iter=10_000)
    warm = DualBarrier().solve(program, tol=1e-8, max_iter=200, init=(rough.coef, rough.intercept))
    cert = certify(program, warm.coef, warm.intercept, warm.dual_points,
                   activation="gated_relu", tol=1e-8)
    assert cert.relative_gap <= 1e-8
    assert cert.primal <= program.objective(rough.coef, rough.intercept)


@pytest.mark.parametrize("family", FAMILIES)
def test_above_alpha_max_the_constant_model_is_certified_at_once(family):
    program = barrier_program(family, 1)
    program.alpha = 1.01 * program.alpha_max()
    sol = DualBarrier().solve(program, tol=1e-10, max_iter=50)
    assert sol.n_iter == 0
    assert not np.any(sol.coef)
    np.testing.assert_allclose(sol.intercept, program.constant_intercept())


# ----------------------------------------------------------------- what it refuses


def _small(loss, Y, penalty=None, cone=False, n=30):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 2))
    op = GatedOperator(X, DataSampler(5).sample(X, 0).gates)
    if cone:
        op = ConeOperator(op)
    return ConvexProgram(loss, penalty or ColumnGroupL2(), op, Y[:n], np.full(n, 1.0 / n), 0.01)


def test_refuses_programs_it_does_not_solve():
    from convexnn.losses import SoftmaxCrossEntropy

    y = np.random.default_rng(1).normal(size=(3000, 2))
    cases = {
        "cone-constrained": _small(SquaredLoss(), y[:, :1], cone=True),
        "conjugate is not separable": _small(SoftmaxCrossEntropy(), np.eye(2)[(y[:, 0] > 0).astype(int)]),
        "NuclearNorm": _small(SquaredLoss(), y, penalty=NuclearNorm()),
        "exceed max_samples": _small(SquaredLoss(), y[:, :1], n=60),
    }
    for expected, program in cases.items():
        solver = DualBarrier(max_samples=50)
        with pytest.raises(ValueError, match=expected):
            solver.check(program)
        with pytest.raises(ValueError, match="solver='fista'"):
            solver.solve(program, tol=1e-3, max_iter=10)


def test_auto_picks_the_barrier_only_where_it_applies(monkeypatch):
    y = np.random.default_rng(2).normal(size=(3000, 1))
    # squared loss: the Gram matrix's barrier (in either space: test_solver_gram_barrier),
    # the sample-space dual barrier where neither of its matrices is allowed
    assert isinstance(make_solver("auto", program=_small(SquaredLoss(), y)), GramBarrier)
    wide = _small(SquaredLoss(), y, n=12)  # 5 patterns x 3 inputs: more coefficients than samples
    assert isinstance(make_solver("auto", program=wide), GramBarrier)
    with monkeypatch.context() as m:
        m.setattr(solvers, "AUTO_GRAM_MAX_SAMPLES", 11)
        m.setattr(solvers, "AUTO_GRAM_MAX_VARIABLES", 14)
        assert isinstance(make_solver("auto", program=wide), DualBarrier)
    # the cone-constrained programs: their own interior-point method, in sample space up to
    # its size, beyond in coefficient space while there are few coefficients, then FISTA
    small_cone = make_solver("auto", program=_small(SquaredLoss(), y, cone=True))
    assert isinstance(small_cone, ConeBarrier)
    big_cone = _small(SquaredLoss(), y, cone=True, n=AUTO_CONE_BARRIER_MAX_SAMPLES + 1)
    chosen = make_solver("auto", program=big_cone)
    assert isinstance(chosen, ConeBarrier) and chosen.space_for(big_cone) == "coefficients"
    with monkeypatch.context() as m:
        m.setattr(solvers, "AUTO_CONE_BARRIER_MAX_COEFFICIENTS", 14)  # 5 patterns x 3 inputs
        m.setattr(solvers, "AUTO_CONE_BARRIER_MAX_TALL_COEFFICIENTS", 14)
        assert isinstance(make_solver("auto", program=big_cone), FISTA)
        # more coefficients allowed where samples outnumber them (1501 rows, 15 coefficients)
        m.setattr(solvers, "AUTO_CONE_BARRIER_MAX_TALL_COEFFICIENTS", 15)
        chosen = make_solver("auto", program=big_cone)
        assert isinstance(chosen, ConeBarrier) and chosen.max_coefficients == 15
        assert chosen.space_for(big_cone) == "coefficients"
        m.setattr(solvers, "AUTO_CONE_BARRIER_MAX_SAMPLES", 10)  # ... but not where they do not
        assert isinstance(make_solver("auto", program=_small(SquaredLoss(), y, cone=True, n=14)), FISTA)
        assert isinstance(make_solver("auto", program=_small(SquaredLoss(), y, cone=True, n=15)), ConeBarrier)
        m.setattr(solvers, "AUTO_CONE_BARRIER_MAX_TALL_COEFFICIENTS", 14)
        m.setitem(AUTO_CONE_BARRIER_MAX_ENTRIES, "cone", 10**9)
        assert isinstance(make_solver("auto", program=big_cone), FISTA)  # neither space
    with monkeypatch.context() as m:
        m.setitem(AUTO_CONE_BARRIER_MAX_ENTRIES, "cone", 2 * 5 * big_cone.operator.n_samples - 1)
        assert isinstance(make_solver("auto", program=big_cone), FISTA)  # its n x 2P arrays
    wide = _small(SquaredLoss(), y, cone=True)
    monkeypatch.setitem(AUTO_CONE_BARRIER_MAX_ENTRIES, "factor", wide.operator.n_samples)
    chosen = make_solver("auto", program=wide)  # no sample-space factor: coefficient space
    assert isinstance(chosen, ConeBarrier) and chosen.space_for(wide) == "coefficients"
    monkeypatch.setitem(AUTO_CONE_BARRIER_MAX_ENTRIES, "blocks", 1)
    assert isinstance(make_solver("auto", program=wide), FISTA)  # its step arrays too large
    labels_cone = (y > 0).astype(float)
    assert isinstance(make_solver("auto", program=_small(LogisticLoss(), labels_cone, cone=True)), FISTA)
    big = _small(SquaredLoss(), y, n=AUTO_BARRIER_MAX_SAMPLES["squared"] + 1)
    assert isinstance(make_solver("auto", program=big), GramBarrier)  # many rows: the Gram matrix
    big_logistic = _small(LogisticLoss(), (y > 0).astype(float), n=AUTO_BARRIER_MAX_SAMPLES["other"] + 1)
    assert isinstance(make_solver("auto", program=big_logistic), FISTA)
    labels = (y > 0).astype(float)
    assert isinstance(make_solver("auto", program=_small(LogisticLoss(), labels)), DualBarrier)
    assert isinstance(make_solver("auto"), FISTA)  # no program: the universal solver
    # below the tolerance it reaches reliably, FISTA
    assert isinstance(make_solver("auto", program=_small(SquaredLoss(), y), tol=1e-9), FISTA)
    assert isinstance(make_solver("auto", program=_small(SquaredLoss(), y), tol=1e-8), GramBarrier)
    assert isinstance(make_solver("auto", program=_small(LogisticLoss(), labels), tol=1e-8), DualBarrier)


def test_estimators_accept_the_barrier_for_gated_and_relu():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 3))
    y = np.sin(X[:, 0]) + 0.1 * rng.normal(size=60)
    reg = ConvexMLPRegressor("gated_relu", solver="barrier", tol=1e-6, random_state=0).fit(X, y)
    assert reg.certificate_.relative_gap <= 1e-6
    ref = ConvexMLPRegressor("gated_relu", solver="fista", tol=1e-6, max_iter=50_000, random_state=0).fit(X, y)
    assert reg.certificate_.primal == pytest.approx(ref.certificate_.primal, rel=3e-6)
    clf = ConvexMLPClassifier("gated_relu", solver="barrier", tol=1e-6, random_state=0).fit(X, y > 0)
    assert clf.certificate_.relative_gap <= 1e-6
    # on the cone-constrained programs 'barrier' is their interior-point method (squared loss)
    relu = ConvexMLPRegressor("relu", solver="barrier", tol=1e-6, random_state=0).fit(X, y)
    assert relu.certificate_.relative_gap <= 1e-6
    relu_ref = ConvexMLPRegressor("relu", solver="fista", tol=1e-7, max_iter=100_000, random_state=0).fit(X, y)
    assert relu.certificate_.primal == pytest.approx(relu_ref.certificate_.primal, rel=2e-6)
    with pytest.raises(ValueError, match="squared loss"):
        ConvexMLPClassifier("relu", solver="barrier").fit(X, y > 0)


# ----------------------------------------------------------------- its building blocks


def test_weighted_gram_and_block_images_match_explicit_sums():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(25, 3))
    op = GatedOperator(X, DataSampler(7).sample(X, 0).gates)
    P, p = op.n_patterns, op.n_inputs
    c = rng.uniform(0, 2, P)
    c[1] = 0.0
    A = [op.masks[:, [k]] * op.Xa for k in range(P)]  # D_k Xa
    explicit = sum(ck * Ak @ Ak.T for ck, Ak in zip(c, A))
    np.testing.assert_allclose(op.weighted_gram(c), explicit, rtol=1e-12, atol=1e-12)
    G = rng.normal(size=(P, p))
    np.testing.assert_allclose(op.block_images(G), np.column_stack([A[k] @ G[k] for k in range(P)]),
                               rtol=1e-12, atol=1e-12)
    # the float32 variant (early Newton matrices) agrees to float32 rounding
    np.testing.assert_allclose(op.weighted_gram(c, single=True), explicit, rtol=1e-5,
                               atol=1e-5 * np.abs(explicit).max())
    with pytest.raises(ValueError, match="non-negative"):
        op.weighted_gram(-c)


@pytest.mark.parametrize("loss", [SquaredLoss(), LogisticLoss()])
def test_conjugate_derivatives_and_domain_barrier_by_finite_differences(loss):
    rng = np.random.default_rng(5)
    n = 12
    w = rng.uniform(0.5, 1.5, n)
    w /= w.sum()
    if isinstance(loss, SquaredLoss):
        Y = rng.normal(size=(n, 1))
        Theta = w[:, None] * rng.normal(size=(n, 1))
    else:
        Y = (rng.uniform(size=(n, 1)) > 0.5).astype(float)
        Q = rng.uniform(0.1, 0.9, size=(n, 1))
        Theta = w[:, None] * (Q - Y)  # q = theta / w + y inside (0, 1)
    grad, hess = loss.conjugate_derivatives(Theta, Y, w)
    _, bgrad, bhess = loss.domain_barrier(Theta, Y, w)
    h = 1e-7 * w[:, None]
    for i in range(n):
        E = np.zeros_like(Theta)
        E[i] = h[i]
        fd = (loss.conjugate(Theta + E, Y, w) - loss.conjugate(Theta - E, Y, w)) / (2 * h[i, 0])
        assert fd == pytest.approx(grad[i, 0], rel=1e-5, abs=1e-6)
        fd2 = (loss.conjugate_derivatives(Theta + E, Y, w)[0][i, 0]
               - loss.conjugate_derivatives(Theta - E, Y, w)[0][i, 0]) / (2 * h[i, 0])
        assert fd2 == pytest.approx(hess[i, 0], rel=1e-5)
        fdb = (loss.domain_barrier(Theta + E, Y, w)[0] - loss.domain_barrier(Theta - E, Y, w)[0]) / (2 * h[i, 0])
        assert fdb == pytest.approx(bgrad[i, 0], rel=1e-5, abs=1e-6)
        fdb2 = (loss.domain_barrier(Theta + E, Y, w)[1][i, 0]
                - loss.domain_barrier(Theta - E, Y, w)[1][i, 0]) / (2 * h[i, 0])
        assert fdb2 == pytest.approx(bhess[i, 0], rel=1e-5, abs=1e-6)
    # grad L*(theta) is the output whose loss gradient is theta (Fenchel-Young)
    np.testing.assert_allclose(loss.gradient(grad, Y, w), Theta, rtol=1e-9, atol=1e-15)
    # the step limit is exactly where the domain ends
    direction = rng.normal(size=Theta.shape) * w[:, None]
    t = loss.dual_step_limit(Theta, direction, Y, w)
    if isinstance(loss, SquaredLoss):
        assert t == np.inf
    else:
        assert np.isfinite(loss.domain_barrier(Theta + 0.999 * t * direction, Y, w)[0])
        assert loss.domain_barrier(Theta + 1.001 * t * direction, Y, w)[0] == np.inf


def test_ctrl_c_keeps_the_last_step_with_an_honest_certificate():
    from test_progress import _classification_data, _InterruptedClassifier

    from convexnn import FitInterruptedWarning

    X, y = _classification_data()
    est = _InterruptedClassifier(interrupt_after=60, alpha=1e-2, n_patterns=12, random_state=0,
                                 tol=1e-12, max_iter=200, solver="barrier")
    with pytest.warns(FitInterruptedWarning):
        est.fit(X, y)
    assert est.n_iter_ > 0 and est.history_["iteration"][-1] == est.n_iter_
    oracle = ConvexMLPClassifier("gated_relu", alpha=1e-2, sampler=est.gates_, solver="barrier",
                                 tol=1e-9).fit(X, y)
    cert = est.certificate_
    assert cert.dual <= oracle.certificate_.primal + 1e-12 <= cert.primal + 1e-12
    assert not cert.converged


def test_warm_start_is_never_worse_than_cold():
    program = barrier_program("binary", 5)
    cold = DualBarrier().solve(program, tol=1e-6, max_iter=200)
    again = DualBarrier().solve(program, tol=1e-6, max_iter=200, init=(cold.coef, cold.intercept))
    assert again.n_iter <= cold.n_iter
    assert again.history.primal[-1] <= cold.history.primal[-1] + 1e-15
    cert = certify(program, again.coef, again.intercept, again.dual_points, activation="gated_relu", tol=1e-6)
    assert cert.relative_gap <= 1e-6


def test_auto_cone_limit_is_a_share_of_physical_memory():
    """``"auto"``'s limit on ConeBarrier's n x 2P arrays follows the machine's memory:
    a third of it at the measured bytes per entry (8 GiB assumed where unknown)."""
    from convexnn.solvers import (
        AUTO_CONE_BARRIER_BYTES_PER_ENTRY,
        AUTO_CONE_BARRIER_MEMORY_FRACTION,
        _physical_memory,
    )

    memory = _physical_memory()
    assert memory is None or memory > 2**28  # a real machine has more than 256 MiB
    expected = int(AUTO_CONE_BARRIER_MEMORY_FRACTION * (memory or 8 * 2**30) / AUTO_CONE_BARRIER_BYTES_PER_ENTRY)
    assert AUTO_CONE_BARRIER_MAX_ENTRIES["cone"] == expected
    # at 8 GiB it keeps the fixed limit the measurements of 2026-12-04 were made under
    assert 1.5e7 <= int(AUTO_CONE_BARRIER_MEMORY_FRACTION * 8 * 2**30 / AUTO_CONE_BARRIER_BYTES_PER_ENTRY) <= 3e7
