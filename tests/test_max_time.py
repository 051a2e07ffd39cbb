"""``max_time``: the time limit of the ConvexMLP estimators (and the threshold ones).

The clock is never trusted here: the tests replace ``ProgressPrinter._clock`` (which
the progress scope and every solver's progress printer read) by a fake clock that
advances one "second" per reading, or use a limit so small that the first gap check
already exceeds it. Nothing asserts on wall time; what is checked is that the solve
stopped at a gap check before ``max_iter``, warned with the certified numbers, and
kept a network whose certificate is honest: recomputed by ``certify`` from the kept
point and its dual candidates, with the primal equal to ``J`` of the exported network
computed by hand, and (against cvxpy's optimum of the same program) a valid bound.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import is_classifier
from sklearn.exceptions import ConvergenceWarning

from convexnn import (
    ConvexMLPClassifier,
    ConvexMLPClassifierCV,
    ConvexMLPRegressor,
    ConvexMLPRegressorCV,
    ConvexThresholdClassifier,
    ConvexThresholdRegressor,
)
from convexnn.certificates import certify, dual_point_from_outputs
from convexnn.solvers import CvxpySolver, Solver
from convexnn.solvers.base import ProgressPrinter, ProgressScope, TimeLimitReached

MAX_ITER = 100_000


class _FakeClock:
    """A clock that advances ``step`` seconds at every reading."""

    def __init__(self, step: float = 1.0):
        self.now = 0.0
        self.step = step
        self.readings = 0

    def __call__(self) -> float:
        self.now += self.step
        self.readings += 1
        return self.now


@pytest.fixture
def fake_clock(monkeypatch) -> _FakeClock:
    clock = _FakeClock()
    monkeypatch.setattr(ProgressPrinter, "_clock", staticmethod(clock))
    return clock


def _regression(n_samples: int = 60, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, 2))
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2 - 0.5 * X[:, 0] * X[:, 1]
    return X, y


def _classification(n_samples: int = 60, seed: int = 1):
    X, score = _regression(n_samples, seed)
    return X, np.where(score > np.median(score), "yes", "no")


def _capturing(Est):
    """``Est`` that keeps the program and the solver's solution of its last fit."""

    class Capturing(Est):
        def _solve(self, X, Y, w):
            program, solution = super()._solve(X, Y, w)
            self.captured_ = (program, solution, X, Y, w)
            return program, solution

    Capturing.__name__ = Est.__name__
    return Capturing


def _hand_J(est, X, Y, w, alpha) -> float:
    """``J`` of the exported network, from its weights (one output)."""
    W1, W2 = est.coefs_
    b1, b2 = est.intercepts_
    H = X @ W1 + b1
    if est.activation == "relu":
        H = np.maximum(H, 0.0)
    else:  # gated ReLU: each unit's gate decides
        G = est.gates_[:, est.neuron_patterns_]
        H = (X @ G[:-1] + G[-1] > 0) * H
    f = (H @ W2 + b2)[:, 0]
    if not is_classifier(est):
        data = 0.5 * np.sum(w * (f - Y[:, 0]) ** 2)
    else:
        s = 2 * Y[:, 0] - 1
        data = np.sum(w * np.logaddexp(0.0, -s * f))
    return data + alpha / 2 * (np.sum(W1**2) + np.sum(b1**2) + np.sum(W2**2))


def _assert_honest(est, alpha):
    """The kept network's certificate is the one ``certify`` gives for it."""
    program, solution, X, Y, w = est.captured_
    cert = est.certificate_
    coef = program.make_feasible(solution.coef)
    np.testing.assert_array_equal(coef, est.convex_coef_)
    again = certify(program, coef, solution.intercept, solution.dual_points,
                    activation=est.activation, tol=est.tol, refine=True)
    J = _hand_J(est, X, Y, w, alpha)
    assert cert.primal == pytest.approx(J, rel=1e-10)
    assert again.primal == pytest.approx(J, rel=1e-10)  # convex objective = network's J
    assert again.gap == pytest.approx(cert.gap, rel=1e-9, abs=1e-14)
    assert cert.gap >= 0.0 and cert.dual <= cert.primal
    assert est.dual_gap_ == cert.gap
    return program


# (estimator, activation, solver): every solver family honours the limit
CASES = [
    (ConvexMLPRegressor, "relu", "fista"),
    (ConvexMLPRegressor, "gated_relu", "fista"),
    (ConvexMLPRegressor, "relu", "admm"),
    (ConvexMLPRegressor, "gated_relu", "barrier"),
    (ConvexMLPClassifier, "relu", "fista"),
    (ConvexMLPClassifier, "gated_relu", "barrier"),
]


@pytest.mark.parametrize(("Est", "activation", "solver"), CASES)
def test_time_limit_stops_at_a_gap_check_with_an_honest_certificate(
    fake_clock, Est, activation, solver
):
    X, y = _regression() if Est is ConvexMLPRegressor else _classification()
    alpha = 1e-3
    params = dict(activation=activation, alpha=alpha, n_patterns=12, solver=solver,
                  tol=1e-12, max_iter=MAX_ITER, random_state=0)
    est = _capturing(Est)(**params, max_time=30.0)  # 30 readings of the fake clock
    with pytest.warns(ConvergenceWarning, match="time limit reached") as record:
        est.fit(X, y)
    messages = [str(r.message) for r in record if issubclass(r.category, ConvergenceWarning)]
    assert len(messages) == 1
    msg, cert = messages[0], est.certificate_
    assert "max_time=30 s" in msg and f"relative gap {cert.relative_gap:.2e}" in msg
    assert f"iteration {est.n_iter_}" in msg and "tol=1.0e-12" in msg

    # stopped early, at a gap check, and says so
    assert 0 < est.n_iter_ < MAX_ITER
    assert est.stop_reason_ == "max_time"
    assert est.history_["iteration"][-1] == est.n_iter_
    assert len(est.history_["iteration"]) >= 2
    assert not cert.converged
    _, solution, *_ = est.captured_
    assert solution.time_limit_reached and not solution.interrupted
    program = _assert_honest(est, alpha)

    # weak duality against the program's optimum (independent of convexnn's solvers)
    pytest.importorskip("cvxpy")
    p_star = program.objective(*_reference(program))
    assert cert.dual <= p_star + 1e-7 and p_star <= cert.primal + 1e-7

    # without the limit the same fit runs on (the limit, not max_iter, stopped it)
    full = Est(**{**params, "max_iter": 300})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        full.fit(X, y)
    assert full.n_iter_ > est.n_iter_
    assert full.stop_reason_ != "max_time"


def _reference(program):
    sol = CvxpySolver().solve(program, tol=1e-10)
    return sol.coef, sol.intercept


def test_limit_below_the_first_check_keeps_the_starting_point():
    # 1e-9 s has passed before the first gap check (iteration 0) of any solve
    X, y = _regression()
    est = _capturing(ConvexMLPRegressor)(alpha=1e-3, n_patterns=12, tol=1e-10,
                                         max_iter=MAX_ITER, max_time=1e-9, random_state=0,
                                         solver="fista")
    with pytest.warns(ConvergenceWarning, match=r"time limit reached \(max_time=1e-09 s\)"):
        est.fit(X, y)
    assert est.n_iter_ == 0 and est.stop_reason_ == "max_time"
    assert est.n_neurons_ == 0  # the start: the constant model
    np.testing.assert_allclose(est.predict(X), np.full(len(X), y.mean()), rtol=1e-12)
    _assert_honest(est, 1e-3)


def test_max_time_none_and_an_unreached_limit_change_nothing(fake_clock):
    X, y = _regression()
    params = dict(alpha=1e-2, n_patterns=12, tol=1e-4, solver="fista", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        default = ConvexMLPRegressor(**params).fit(X, y)
        none = ConvexMLPRegressor(**params, max_time=None).fit(X, y)
        # the fake clock reads a few times per check: 1e9 "seconds" are never reached
        far = ConvexMLPRegressor(**params, max_time=1e9).fit(X, y)
    assert ConvexMLPRegressor().max_time is None
    for est in (none, far):
        assert est.n_iter_ == default.n_iter_
        assert est.stop_reason_ == default.stop_reason_ == "converged"
        for a, b in zip(est.coefs_ + est.intercepts_, default.coefs_ + default.intercepts_):
            np.testing.assert_array_equal(a, b)
        assert est.loss_curve_ == default.loss_curve_
        assert est.certificate_.gap == default.certificate_.gap


def test_deadline_at_a_check_that_meets_tol_does_not_stop():
    # alpha above alpha_max: the constant model at the first check (iteration 0) is
    # optimal; the limit has passed there, but the solver stops there anyway
    X, y = _regression()
    from convexnn.path import _build_program

    alpha_max = float(_build_program(ConvexMLPRegressor(n_patterns=12, random_state=0),
                                     X, y).alpha_max())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = ConvexMLPRegressor(alpha=2 * alpha_max, n_patterns=12, solver="fista",
                                 max_time=1e-9, random_state=0).fit(X, y)
    assert est.n_iter_ == 0 and est.n_neurons_ == 0
    assert est.stop_reason_ == "converged" and est.certificate_.converged


def test_printer_raises_only_past_the_deadline_and_short_of_tol(fake_clock):
    coef, b = np.zeros((1, 2, 1)), np.zeros(1)
    with ProgressScope(max_time=5.0) as scope:  # enter: reading 1, deadline 6
        printer = ProgressPrinter(0, "fake", tol=1e-3)  # reading 2
        assert printer.deadline == scope.deadline == 6.0
        printer(0, 2.0, 1.0)  # reading 3
        printer.snapshot(coef, b, None)  # reading 4 < 6: no stop
        assert printer.remaining() == pytest.approx(1.0)  # reading 5
        printer(10, 1.5, 1.2)  # reading 6
        with pytest.raises(TimeLimitReached) as info:
            printer.snapshot(coef + 1.0, b, None)  # reading 7 >= 6, gap 0.3 > tol
        assert info.value.iteration == 10
        assert scope.last_snapshot.iteration == 10  # stored before raising
        np.testing.assert_array_equal(scope.last_snapshot.coef, coef + 1.0)
        printer(20, 1.0, 1.0 - 1e-6)  # meets tol: the solver stops there by itself
        printer.snapshot(coef, b, None)
    # no scope, no limit
    free = ProgressPrinter(0, "free", tol=1e-3)
    assert free.deadline is None and free.remaining() is None
    free(0, 2.0, 1.0)
    free.snapshot(coef, b, None)


class _ChecksForever(Solver):
    """A solver that only checks (a gap of 1 every time): it stops by max_iter alone."""

    name = "forever"
    handles_gated = True
    handles_cone = True

    def solve(self, program, *, tol, max_iter, init=None, verbose=0):
        progress = ProgressPrinter(verbose, self.name, max_iter=max_iter, tol=tol)
        coef, b = program.zero_coef(), program.constant_intercept()
        point = dual_point_from_outputs(program, program.predict(coef, b))
        for it in range(max_iter):
            progress(it, 2.0, 1.0)
            progress.snapshot(coef, b, point)
        raise AssertionError("max_time did not stop the solve")  # pragma: no cover


def test_any_solver_that_snapshots_honours_max_time(fake_clock):
    X, y = _regression()
    est = ConvexMLPRegressor(n_patterns=8, random_state=0, solver=_ChecksForever(),
                             max_iter=10_000, max_time=20.0)
    with pytest.warns(ConvergenceWarning, match="time limit reached"):
        est.fit(X, y)
    assert 0 < est.n_iter_ < 20 and est.stop_reason_ == "max_time"


def test_cvxpy_passes_the_time_left_to_clarabel(fake_clock, monkeypatch):
    cp = pytest.importorskip("cvxpy")
    seen = []
    original = cp.Problem.solve

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("time_limit"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cp.Problem, "solve", spy)
    X, y = _regression(n_samples=30)
    params = dict(alpha=1e-2, n_patterns=6, tol=1e-4, solver="cvxpy", random_state=0)
    ConvexMLPRegressor(**params).fit(X, y)
    est = ConvexMLPRegressor(**params, max_time=1e6).fit(X, y)
    assert seen[0] is None
    assert 0 < seen[1] < 1e6
    assert est.stop_reason_ == "converged"
    # past the deadline by the single check: kept, honest, and reported as max_time
    est = _capturing(ConvexMLPRegressor)(**{**params, "tol": 1e-14}, max_time=3.0)
    with pytest.warns(ConvergenceWarning, match="time limit reached"):
        est.fit(X, y)
    assert est.stop_reason_ == "max_time" and est.n_iter_ == 1
    _assert_honest(est, 1e-2)


@pytest.mark.parametrize("Est", [ConvexThresholdRegressor, ConvexThresholdClassifier])
def test_threshold_estimators_honour_max_time(fake_clock, Est):
    X, y = _regression() if Est is ConvexThresholdRegressor else _classification()
    kwargs = {"closed_form": False} if Est is ConvexThresholdRegressor else {}
    est = Est(alpha=1e-3, n_patterns=20, tol=1e-12, max_iter=MAX_ITER, max_time=30.0,
              random_state=0, **kwargs)
    with pytest.warns(ConvergenceWarning, match="time limit reached"):
        est.fit(X, y)
    assert 0 < est.n_iter_ < MAX_ITER and est.stop_reason_ == "max_time"
    assert est.certificate_.gap >= 0


def test_cv_estimators_pass_max_time_to_every_fit(fake_clock):
    X, y = _regression()
    cv = ConvexMLPRegressorCV(n_alphas=2, cv=2, n_patterns=8, tol=1e-12, max_iter=MAX_ITER,
                              max_time=30.0, random_state=0)
    assert cv._template().max_time == 30.0
    with pytest.warns(ConvergenceWarning, match="time limit reached"):
        cv.fit(X, y)
    assert cv.best_estimator_.max_time == 30.0
    assert cv.stop_reason_ in ("max_time", "converged")
    assert ConvexMLPClassifierCV(max_time=5.0)._template().max_time == 5.0


ESTIMATORS = [ConvexMLPRegressor, ConvexMLPClassifier, ConvexMLPRegressorCV,
              ConvexMLPClassifierCV, ConvexThresholdRegressor, ConvexThresholdClassifier]


@pytest.mark.parametrize("Est", ESTIMATORS)
@pytest.mark.parametrize("bad", [-1.0, 0, 0.0, "10", float("nan"), [1.0]])
def test_invalid_max_time_raises(Est, bad):
    X, y = _regression(n_samples=20) if "Regressor" in Est.__name__ else _classification(20)
    with pytest.raises(ValueError, match=r"'max_time' parameter of .* must be a float in the "
                                         r"range \(0(\.0)?, inf\) or None"):
        Est(max_time=bad).fit(X, y)


def test_distributed_fit_refuses_max_time():
    from convexnn.distributed import _check_estimator

    with pytest.raises(ValueError, match="does not support max_time"):
        _check_estimator(ConvexMLPRegressor("gated_relu", max_time=10.0))
    _check_estimator(ConvexMLPRegressor("gated_relu"))  # max_time=None is fine
