"""Oracle tests: our solvers against an independent interior-point solve (cvxpy + Clarabel).

For many small random programs of every family (regression with one and two outputs,
binary and 3-class classification) and both activations, the network our solver
exports must

(a) have an objective ``J`` within the solver tolerance (relative) of the cvxpy optimum,
(b) carry a certificate whose gap bounds its true suboptimality,
    ``gap >= J - p* - 1e-9``,
(c) have a non-negative gap, and
(d) be certified to ``tol`` when the solver reports convergence.

``J`` is always computed here by hand: neurons from ``penalty.neurons``, a plain
forward pass, the weighted mean loss and the weight decay of DESIGN.md §1; never by
the program's own objective. Both solvers run to a relative gap of 1e-6; the module
constants record what the ReLU solver needs for that.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cvxpy")

from scipy.optimize import minimize  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

import convexnn  # noqa: E402
from convexnn import ConvexMLPClassifier, ConvexMLPRegressor  # noqa: E402
from convexnn.certificates import DualPoint, certify, dual_value  # noqa: E402
from convexnn.losses import LogisticLoss, SoftmaxCrossEntropy, SquaredLoss  # noqa: E402
from convexnn.operators import ConeOperator, GatedOperator  # noqa: E402
from convexnn.patterns import DataSampler, ExhaustiveSampler  # noqa: E402
from convexnn.penalties import ColumnGroupL2, NuclearNorm  # noqa: E402
from convexnn.programs import ConvexProgram  # noqa: E402
from convexnn.solvers import FISTA, CvxpySolver  # noqa: E402

N_SEEDS = 20
GATED_TOL = 1e-6
# Both activations are solved to 1e-6 by FISTA; MAX_ITER is far above what any of these
# problems needs (a few hundred to a few thousand iterations).
RELU_TOL = 1e-6
MAX_ITER = 20_000
RTOL = 1e-5  # (a); >= both tolerances, since gap <= tol * J bounds J - p*
RELU_FEASIBILITY = 1e-12  # see test_make_feasible_projects_exactly_onto_the_cone
RELU_EXACTNESS = 1e-10

FAMILIES = ["reg1", "reg2", "binary", "multiclass"]
# half-open ranges of n_samples, n_features and requested n_patterns
SIZES = {
    "gated_relu": {"n": (20, 41), "d": (2, 4), "P": (4, 11)},
    # ReLU: cvxpy's cone program grows with n * P; keep the oracle fast
    "relu": {"n": (20, 25), "d": (2, 3), "P": (3, 7)},
}
# leaky ReLU and abs (tests/test_piecewise_linear.py): the same cone program as ReLU
SIZES["leaky_relu"] = SIZES["abs"] = SIZES["relu"]


# --------------------------------------------------------------------------- problems


def _targets(family, X, rng):
    n = X.shape[0]
    if family == "reg1":
        return SquaredLoss(), np.sin(2 * X[:, :1]) + 0.1 * rng.normal(size=(n, 1))
    if family == "reg2":
        Y = np.column_stack([np.sin(2 * X[:, 0]), X[:, 1] ** 2 - 1])
        return SquaredLoss(), Y + 0.1 * rng.normal(size=(n, 2))
    if family == "binary":
        y = (X[:, 0] * X[:, 1] + 0.3 * rng.normal(size=n) > 0).astype(float)
        y[:2] = [0.0, 1.0]
        return LogisticLoss(), y[:, None]
    s = np.column_stack([X[:, 0], X[:, 1], -X[:, 0] - X[:, 1]]) + 0.5 * rng.normal(size=(n, 3))
    codes = s.argmax(axis=1)
    codes[:3] = [0, 1, 2]
    return SoftmaxCrossEntropy(), np.eye(3)[codes]


def make_program(family: str, activation: str, seed: int, negative_slope: float = 0.01) -> ConvexProgram:
    """A random program built like ``estimators/_base.py::_program`` does
    (``activation``: ``"gated_relu"`` or a cone activation, ``"relu"``, ``"leaky_relu"``,
    ``"abs"``)."""
    rng = np.random.default_rng(1000 * FAMILIES.index(family) + seed)
    sizes = SIZES[activation]
    n, d = int(rng.integers(*sizes["n"])), int(rng.integers(*sizes["d"]))
    X = rng.normal(size=(n, d))
    loss, Y = _targets(family, X, rng)
    if seed % 2:  # mix uniform and random sample weights
        w = rng.uniform(0.2, 1.0, n)
        w /= w.sum()
    else:
        w = np.full(n, 1.0 / n)
    gates = DataSampler(n_patterns=int(rng.integers(*sizes["P"]))).sample(X, random_state=seed).gates
    gated = GatedOperator(X, gates)
    cone = activation != "gated_relu"
    penalty = NuclearNorm() if (not cone and Y.shape[1] > 1) else ColumnGroupL2()
    operator = ConeOperator(gated, activation, negative_slope) if cone else gated
    program = ConvexProgram(loss, penalty, operator, Y, w, 1.0)
    # alpha between 1 % and 30 % of the level at which the solution vanishes
    program.alpha = float(program.alpha_max() * 10 ** rng.uniform(-2, -0.5))
    return program


def exported_network(program: ConvexProgram, coef, intercept):
    """(W1, b1, W2, b2, gates-or-None) read off a convex solution, by hand."""
    U, A, block = program.penalty.neurons(coef)
    gated = program.operator.gated if program.has_cone else program.operator
    P = gated.n_patterns
    if program.has_cone:
        A = np.where((block >= P)[:, None], -A, A)  # w_k blocks: negative output weights
        gates = None
    else:
        gates = gated.gates[:, block % P]
    return U[:-1], U[-1], A, np.asarray(intercept, dtype=float), gates


def forward(X, W1, b1, W2, b2, gates=None, activation="relu", negative_slope=None):
    """act(X W1 + b1) W2 + b2 by hand; with ``gates``, gated ReLU units."""
    pre = X @ W1 + b1
    if gates is not None:
        h = (X @ gates[:-1] + gates[-1] > 0) * pre
    elif activation == "relu":
        h = np.maximum(pre, 0.0)
    elif activation == "leaky_relu":
        h = np.maximum(pre, negative_slope * pre)  # slope in [0, 1)
    elif activation == "abs":
        h = np.abs(pre)
    else:
        raise ValueError(activation)
    return h @ W2 + b2


def objective_J(X, Y, w, loss, alpha, W1, b1, W2, b2, gates=None, activation="relu",
                negative_slope=None):
    """J = weighted mean loss + alpha/2 (|W1|^2 + |b1|^2 + |W2|^2), all by hand."""
    Z = forward(X, W1, b1, W2, b2, gates, activation, negative_slope)
    w = np.asarray(w, dtype=float) / np.sum(w)
    if isinstance(loss, SquaredLoss):
        per = 0.5 * np.sum((Z - Y) ** 2, axis=1)
    elif isinstance(loss, LogisticLoss):
        s = 2 * Y[:, 0] - 1
        per = np.logaddexp(0.0, -s * Z[:, 0])
    else:
        m = Z.max(axis=1, keepdims=True)
        per = (m[:, 0] + np.log(np.exp(Z - m).sum(axis=1))) - np.sum(Y * Z, axis=1)
    decay = np.sum(W1**2) + np.sum(b1**2) + np.sum(W2**2)
    return float(w @ per) + 0.5 * alpha * float(decay)


def program_J(program, coef, intercept) -> float:
    op = program.operator
    X = (op.gated if program.has_cone else op).Xa[:, :-1]
    net = exported_network(program, coef, intercept)
    act = dict(activation=op.activation, negative_slope=op.negative_slope) if program.has_cone else {}
    return objective_J(X, program.Y, program.sample_weight, program.loss, program.alpha, *net, **act)


def reference_optimum(program) -> float:
    ref = CvxpySolver().solve(program)
    return program_J(program, ref.coef, ref.intercept), ref


# --------------------------------------------------------------------------- program level


# FISTA solves both programs (for ReLU its prox projects exactly onto the cones) and
# must reach the tolerance on every problem.
@pytest.mark.parametrize("seed", range(N_SEEDS))
@pytest.mark.parametrize("activation", ["gated_relu", "relu"])
@pytest.mark.parametrize("family", FAMILIES)
def test_solver_matches_cvxpy_oracle(family, activation, seed):
    program = make_program(family, activation, seed)
    p_star, ref = reference_optimum(program)
    relu = activation == "relu"
    tol = RELU_TOL if relu else GATED_TOL
    _check_against_oracle(program, activation, tol, RTOL, p_star)


def _check_against_oracle(program, activation, tol, rtol, p_star, max_iter=MAX_ITER):
    relu = activation != "gated_relu"  # every cone program (ReLU, leaky ReLU, abs)
    solver = FISTA()
    sol = solver.solve(program, tol=tol, max_iter=max_iter)

    assert sol.coef.shape == program.coef_shape and sol.intercept.shape == (program.n_outputs,)
    # the solution is cone-feasible, so J of its network equals the convex objective
    # (exactly for gated ReLU; for ReLU up to the rounding make_feasible leaves).
    assert program.cone_violation(sol.coef) <= (RELU_FEASIBILITY if relu else 0.0)
    J = program_J(program, sol.coef, sol.intercept)
    exact = RELU_EXACTNESS if relu else 1e-10
    assert J == pytest.approx(program.objective(sol.coef, sol.intercept), rel=exact)

    reached = sol.history.relative_gap[-1]
    reported = reached <= tol
    assert reported, (
        f"solver did not converge: relative gap {reached:.2e} > {tol:.0e} after {sol.n_iter} iterations"
    )
    # (a) objective within rtol of the independent optimum
    assert abs(J - p_star) <= rtol * abs(p_star), f"J={J!r} p*={p_star!r}"
    for refine in (False, True):
        cert = certify(program, sol.coef, sol.intercept, sol.dual_points,
                       activation=activation, tol=tol, primal=J, refine=refine)
        assert cert.primal == J
        # (b) true suboptimality <= gap  (p* from cvxpy, accurate to ~1e-8)
        assert cert.gap >= J - p_star - 1e-9
        # (c)
        assert cert.gap >= -1e-12
        # the dual is a valid lower bound on the optimum
        assert cert.dual <= p_star + 1e-9
        # (d) the certificate, computed from (program, solution) alone, agrees (with
        # refined multipliers, as the estimators certify small problems)
        # (up to the J - objective discrepancy of ReLU's inexact repair, see above)
        if reported and refine:
            assert cert.relative_gap <= tol + (RELU_EXACTNESS if relu else 0.0)
    # the solver's own record ends at the certified numbers
    assert sol.history.primal[-1] == pytest.approx(J, rel=exact)


@pytest.mark.parametrize("activation", ["gated_relu", "relu"])
@pytest.mark.parametrize("family", FAMILIES)
def test_reference_solution_is_certified(family, activation):
    """The certificate machinery, fed an independent (interior-point) solution and its
    dual variables, proves it near-optimal. The dual point is the loss gradient at the
    primal outputs, so its error is of the order of the square root of the primal's
    (Clarabel's ~1e-9 becomes up to ~2e-4 for the exponential-cone losses)."""
    program = make_program(family, activation, 3)
    p_star, ref = reference_optimum(program)
    cert = certify(program, ref.coef, ref.intercept, ref.dual_points,
                   activation=activation, tol=1e-6, primal=p_star, refine=True)
    assert -1e-12 <= cert.gap
    # squared loss: Clarabel's QP accuracy; exponential cone: the sqrt effect above
    assert cert.relative_gap <= (1e-7 if family.startswith("reg") else 1e-3)


@pytest.mark.parametrize("activation", ["gated_relu", "relu"])
def test_dual_bound_is_valid_for_arbitrary_points(activation):
    """Any dual candidate, made feasible by dual_value, lower-bounds the optimum."""
    program = make_program("reg1", activation, 5)
    p_star, _ = reference_optimum(program)
    rng = np.random.default_rng(0)
    for _ in range(10):
        Theta = rng.normal(size=program.Y.shape) / program.Y.shape[0]
        Lam = None
        if program.has_cone:
            op = program.operator
            Lam = rng.uniform(size=(op.n_samples, op.n_blocks, program.n_outputs)) / op.n_samples
        for refine in (False, True):
            assert dual_value(program, DualPoint(Theta, Lam), refine=refine) <= p_star + 1e-12


@pytest.mark.parametrize("activation", ["gated_relu", "relu"])
def test_large_alpha_gives_zero_network(activation):
    program = make_program("binary", activation, 2)
    program.alpha = 1.01 * program.alpha_max()
    solver = FISTA()
    sol = solver.solve(program, tol=1e-8, max_iter=MAX_ITER)
    np.testing.assert_allclose(sol.coef, 0.0, atol=1e-12)
    np.testing.assert_allclose(sol.intercept, program.constant_intercept(), atol=1e-6)


def test_relu_optimum_not_below_gated_relaxation_bound():
    """|v| + |w| >= |v - w|: the gated program on the same masks lower-bounds ReLU's."""
    relu = make_program("reg1", "relu", 4)
    gated = ConvexProgram(relu.loss, relu.penalty, relu.operator.gated, relu.Y,
                          relu.sample_weight, relu.alpha)
    p_relu, _ = reference_optimum(relu)
    p_gated, _ = reference_optimum(gated)
    assert p_gated <= p_relu + 1e-8


@pytest.mark.parametrize("seed", range(2))
def test_complete_patterns_certify_against_nonconvex_training(seed):
    """1-D data with every activation pattern: no ReLU network of any width does better
    than the convex optimum. Local non-convex training (L-BFGS on J from random starts)
    gets close but never below."""
    rng = np.random.default_rng(seed)
    n = 14
    X = np.sort(rng.uniform(-2, 2, size=(n, 1)), axis=0)
    Y = np.sin(3 * X) + 0.05 * rng.normal(size=(n, 1))
    w = np.full(n, 1.0 / n)
    patterns = ExhaustiveSampler().sample(X)
    assert patterns.complete
    program = ConvexProgram(SquaredLoss(), ColumnGroupL2(), ConeOperator(GatedOperator(X, patterns.gates)),
                            Y, w, 1e-2, complete=True)
    p_star, ref = reference_optimum(program)
    cert = certify(program, ref.coef, ref.intercept, ref.dual_points, activation="relu", tol=1e-6,
                   primal=p_star, refine=True)
    assert cert.scope == "global" and cert.relative_gap <= 1e-6
    m = 8
    best = np.inf
    for start in range(3):
        r = np.random.default_rng(100 * seed + start)

        def J(theta):
            W1, b1 = theta[:m].reshape(1, m), theta[m : 2 * m]
            W2, b2 = theta[2 * m : 3 * m].reshape(m, 1), theta[3 * m :]
            return objective_J(X, Y, w, SquaredLoss(), program.alpha, W1, b1, W2, b2)

        res = minimize(J, r.normal(size=3 * m + 1), method="L-BFGS-B", options={"maxiter": 5000})
        best = min(best, res.fun)
    assert best >= p_star - 1e-8
    assert best <= p_star * 1.5  # the comparison is meaningful: training got close


# --------------------------------------------------------------------------- feasibility repair


def _exact_projection(G, u):
    """Euclidean projection of u onto {x : G x >= 0} by cvxpy (independent of convexnn)."""
    import cvxpy as cp

    x = cp.Variable(len(u))
    cp.Problem(cp.Minimize(cp.sum_squares(x - u)), [G @ x >= 0]).solve(solver="CLARABEL")
    return x.value


@pytest.mark.parametrize("seed", range(3))
def test_make_feasible_is_the_projection_onto_each_cone(seed):
    program = make_program("reg2", "relu", seed)
    op = program.operator
    rng = np.random.default_rng(seed)
    coef = rng.normal(size=program.coef_shape)
    assert program.cone_violation(coef) > 0.1
    fixed = program.make_feasible(coef)
    C = op.cone_values(fixed)
    scale = np.abs(op.preactivations(fixed)).max()
    assert C.min() >= -1e-9 * scale
    P = op.n_patterns
    for j in range(op.n_blocks):
        G = op.signs()[:, j, None] * op.gated.Xa
        for col in range(program.n_outputs):
            expected = _exact_projection(G, coef[j, :, col])
            np.testing.assert_allclose(fixed[j, :, col], expected, atol=1e-6 * (1 + np.abs(expected).max()))
    # the projection never increases the penalty; feasible input is returned untouched
    assert program.penalty.value(fixed) <= program.penalty.value(coef)
    np.testing.assert_array_equal(program.make_feasible(program.zero_coef()), 0.0)
    feasible = np.zeros(program.coef_shape)
    feasible[:P, :, 0] = program.gates.T
    np.testing.assert_array_equal(program.make_feasible(feasible), feasible)


def test_make_feasible_projects_exactly_onto_the_cone():
    """A nearly feasible block taken from an augmented-Lagrangian run: one pass of
    make_feasible must land in the cone up to rounding (and then change nothing)."""
    rng = np.random.default_rng(1012)
    n, d = int(rng.integers(20, 31)), int(rng.integers(2, 4))
    X = rng.normal(size=(n, d))
    gate = np.array([[0.4854073592992669], [0.6686739511694381], [0.6577744851311647]])
    program = ConvexProgram(SquaredLoss(), ColumnGroupL2(), ConeOperator(GatedOperator(X, gate)),
                            np.zeros((n, 1)), np.full(n, 1 / n), 0.1)
    coef = program.zero_coef()
    coef[0, :, 0] = [0.5209250447131438, 1.6623152227468152, 0.7914849527435242]
    assert program.operator.cone_values(coef).min() < -1e-6  # slightly infeasible input
    fixed = program.make_feasible(coef)
    scale = np.abs(program.operator.preactivations(fixed)).max()
    assert program.operator.cone_values(fixed).min() >= -1e-12 * scale
    np.testing.assert_allclose(program.make_feasible(fixed), fixed, atol=1e-12)


# --------------------------------------------------------------------------- estimator level


def _estimator_data(family, seed):
    rng = np.random.default_rng(seed)
    n = 24
    X = rng.normal(size=(n, 3))
    if family == "reg1":
        y = np.sin(2 * X[:, 0]) + 0.1 * rng.normal(size=n)
    elif family == "reg2":
        y = np.column_stack([np.sin(2 * X[:, 0]), X[:, 1] ** 2 - 1]) + 0.1 * rng.normal(size=(n, 2))
    elif family == "binary":
        y = np.where(X[:, 0] * X[:, 1] + 0.3 * rng.normal(size=n) > 0, "yes", "no")
    else:
        y = np.array(["a", "b", "c"])[np.argmax(X[:, :3] + 0.5 * rng.normal(size=(n, 3)), axis=1)]
    sw = rng.uniform(0.5, 2.0, n)
    return X, y, sw


def _encoded(est, y):
    if isinstance(est, ConvexMLPRegressor):
        Y = np.asarray(y, float)
        return SquaredLoss(), Y.reshape(len(Y), -1)
    codes = np.searchsorted(est.classes_, y)
    if len(est.classes_) == 2:
        return LogisticLoss(), codes[:, None].astype(float)
    return SoftmaxCrossEntropy(), np.eye(len(est.classes_))[codes]


def estimator_J(est, X, y, sw):
    loss, Y = _encoded(est, y)
    W1, W2 = est.coefs_
    b1, b2 = est.intercepts_
    gates = est.gates_[:, est.neuron_patterns_] if est.activation == "gated_relu" else None
    return objective_J(X, Y, sw, loss, est.alpha, W1, b1, W2, b2, gates,
                       activation=est.activation, negative_slope=est.negative_slope)


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("activation", ["gated_relu", "relu"])
@pytest.mark.parametrize("family", FAMILIES)
def test_estimator_matches_cvxpy_estimator(family, activation, seed):
    X, y, sw = _estimator_data(family, seed)
    Est = ConvexMLPRegressor if family.startswith("reg") else ConvexMLPClassifier
    tol = RELU_TOL if activation == "relu" else GATED_TOL
    params = dict(activation=activation, alpha=3e-2, n_patterns=8, random_state=seed)
    ours = Est(**params, tol=tol, max_iter=MAX_ITER).fit(X, y, sample_weight=sw)
    with warnings.catch_warnings():
        # the interior-point solution's gradient-based dual is only ~1e-5 tight
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = Est(**params, solver="cvxpy", tol=1e-8).fit(X, y, sample_weight=sw)
    np.testing.assert_array_equal(ours.gates_, ref.gates_)  # same random_state: same program

    for est in (ours, ref):
        cert = est.certificate_
        # certificate_.primal is J of the exported network, recomputed here by hand
        assert cert.primal == pytest.approx(estimator_J(est, X, y, sw), rel=1e-6)
        assert cert.gap >= -1e-12
        assert cert.activation == activation and cert.scope == "sampled"
    p_star = ref.certificate_.primal
    J = ours.certificate_.primal
    assert ours.certificate_.gap >= J - p_star - 1e-9
    assert ours.certificate_.dual <= p_star + 1e-9
    assert ours.certificate_.converged and ours.certificate_.relative_gap <= tol
    assert abs(J - p_star) <= max(tol, RTOL) * abs(p_star)


def test_estimator_hand_objective_detects_wrong_weights():
    """Sanity check of the hand-written J itself: unnormalised or ignored sample
    weights, or a dropped bias penalty, change it beyond the 1e-6 tolerance used above."""
    X, y, sw = _estimator_data("reg1", 0)
    est = ConvexMLPRegressor(activation="gated_relu", alpha=3e-2, n_patterns=8, random_state=0,
                             tol=1e-6).fit(X, y, sample_weight=sw)
    J = est.certificate_.primal
    loss, Y = _encoded(est, y)
    W1, W2 = est.coefs_
    b1, b2 = est.intercepts_
    gates = est.gates_[:, est.neuron_patterns_]
    assert abs(objective_J(X, Y, np.ones_like(sw), loss, est.alpha, W1, b1, W2, b2, gates) - J) > 1e-4 * J
    no_bias = objective_J(X, Y, sw, loss, est.alpha, W1, 0 * b1, W2, b2, gates)
    assert abs(no_bias - J) > 1e-6 * J


# --------------------------------------------------------------------------- hygiene


_SRC = Path(convexnn.__file__).parent
_MODULES = sorted(p.relative_to(_SRC).as_posix() for p in _SRC.rglob("*.py"))


@pytest.mark.parametrize("module", _MODULES)
def test_module_compiles_without_warnings(module):
    """Invalid escape sequences are a DeprecationWarning today and a SyntaxError later."""
    source = (_SRC / module).read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compile(source, str(_SRC / module), "exec")
