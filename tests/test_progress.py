"""Progress display (solvers.base.ProgressPrinter) and clean Ctrl-C handling in fit.

KeyboardInterrupt is injected by a loss or solver that raises it, never by a signal.
"""

from __future__ import annotations

import io
import sys
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import convexnn
from convexnn import ConvexMLPClassifier, ConvexMLPRegressor, FitInterruptedWarning
from convexnn.certificates import dual_point_from_outputs
from convexnn.losses import LogisticLoss
from convexnn.solvers import CvxpySolver, FISTA, Solver
from convexnn.solvers import base as solver_base
from convexnn.solvers.base import ProgressPrinter, ProgressScope


def _data(n_samples: int = 60, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, 2))
    score = X[:, 0] - X[:, 1] ** 2 + 0.3
    return X, score


class _FakeClock:
    """A clock that advances ``step`` seconds at every reading."""

    def __init__(self, step: float):
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture
def no_rich(monkeypatch):
    """Make ``import rich...`` fail, as on an installation without the progress extra."""
    for name in ("rich", "rich.console", "rich.progress"):
        monkeypatch.setitem(sys.modules, name, None)


# --------------------------------------------------------------------------- display


def test_plain_lines_without_rich(no_rich):
    out = io.StringIO()
    printer = ProgressPrinter(1, "fista", max_iter=100, tol=1e-3, delay=0.0, file=out,
                              force_terminal=True)
    printer(0, 2.0, 1.0)
    printer(10, 1.5, 1.2)
    printer.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("[fista] iter      0  objective 2  rel. gap 5.00e-01 (tol 1e-03)")
    assert lines[1].startswith("[fista] iter     10  objective 1.5  rel. gap 2.00e-01")


def test_nothing_is_shown_before_the_delay(no_rich, monkeypatch):
    clock = _FakeClock(step=0.3)  # every reading is 0.3 s later
    monkeypatch.setattr(ProgressPrinter, "_clock", staticmethod(clock))
    out = io.StringIO()
    printer = ProgressPrinter(1, "fista", delay=1.0, file=out)
    printer(0, 2.0, 1.0)  # 0.3 s after start
    printer(10, 1.5, 1.0)  # 0.6 s
    printer(20, 1.4, 1.0)  # 0.9 s
    assert out.getvalue() == ""
    printer(30, 1.25, 1.0)  # 1.2 s: shown from now on
    printer(40, 1.2, 1.0)
    printer.close()
    lines = out.getvalue().splitlines()
    assert [line.split()[2] for line in lines] == ["30", "40"]
    # the history records every check, shown or not
    assert printer.history.iteration == [0, 10, 20, 30, 40]


def test_verbose_zero_is_silent_and_verbose_two_has_no_delay(monkeypatch):
    monkeypatch.setattr(ProgressPrinter, "_clock", staticmethod(_FakeClock(step=0.0)))
    silent, chatty = io.StringIO(), io.StringIO()
    for verbose, out in ((0, silent), (2, chatty)):
        printer = ProgressPrinter(verbose, "al", delay=10.0, file=out, force_terminal=True)
        printer(0, 1.0, 0.5)
        printer.close()
    assert silent.getvalue() == ""
    assert chatty.getvalue().startswith("[al] iter      0  objective 1  rel. gap 5.00e-01")


def test_rich_bar_shows_iteration_objective_gap_and_closes():
    pytest.importorskip("rich")
    out = io.StringIO()
    printer = ProgressPrinter(1, "fista", max_iter=500, tol=1e-3, delay=0.0, file=out,
                              force_terminal=True)
    printer(0, 2.0, 1.0)
    printer(250, 0.123456789, 0.1)
    printer.close()
    printer.close()  # idempotent
    text = out.getvalue()
    assert "iter 250/500" in text
    assert "objective 0.12345679" in text
    assert f"rel. gap {(0.123456789 - 0.1) / 0.123456789:.2e} (tol 1e-03)" in text
    assert text.endswith("\x1b[?25h")  # the cursor is shown again: the display was stopped
    printer(260, 0.1, 0.1)  # after close: recorded, not drawn
    assert out.getvalue() == text
    assert printer.history.iteration == [0, 250, 260]


def test_rich_is_not_used_off_a_terminal():
    pytest.importorskip("rich")
    out = io.StringIO()  # not a terminal: plain lines (useful in log files)
    printer = ProgressPrinter(1, "fista", delay=0.0, file=out)
    printer(0, 2.0, 1.0)
    printer.close()
    assert out.getvalue().startswith("[fista] iter      0")


def test_estimator_verbose_shows_progress_only_for_long_fits(capsys, monkeypatch, no_rich):
    X, y = _data()
    est = ConvexMLPRegressor("gated_relu", n_patterns=10, solver="fista", random_state=0, verbose=1)
    monkeypatch.setattr(ProgressPrinter, "_clock", staticmethod(_FakeClock(step=0.0)))
    est.fit(X, y)  # the clock stands still: a "short" fit
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(ProgressPrinter, "_clock", staticmethod(_FakeClock(step=5.0)))
    est.fit(X, y)  # every check is 5 s later: shown
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == len(est.history_["iteration"])
    last = lines[-1].split()
    assert last[:3] == ["[fista]", "iter", str(est.n_iter_)]
    # the line reports the solver's objective and gap at that check
    assert float(last[4]) == pytest.approx(est.history_["primal"][-1], rel=1e-7)


def test_progress_scope_closes_printers_when_the_solve_raises():
    closed = []

    class Printer(ProgressPrinter):
        def close(self):
            closed.append(self.name)
            super().close()

    with pytest.raises(RuntimeError):
        with ProgressScope() as scope:
            Printer(0, "a")
            Printer(0, "b")
            raise RuntimeError("solver failed")
    assert closed == ["a", "b"]
    assert [p.name for p in scope.printers] == ["a", "b"]
    # outside a scope, printers register nowhere
    assert solver_base._SCOPE.get() is None


# --------------------------------------------------------------------------- Ctrl-C


class _InterruptingLogistic(LogisticLoss):
    """Logistic loss that raises KeyboardInterrupt at its ``after``-th evaluation."""

    def __init__(self, after: int):
        self.after = after
        self.calls = 0

    def _tick(self):
        self.calls += 1
        if self.calls == self.after:
            raise KeyboardInterrupt

    def value(self, Z, Y, w):
        self._tick()
        return super().value(Z, Y, w)

    def value_and_gradient(self, Z, Y, w):
        self._tick()
        return super().value_and_gradient(Z, Y, w)


class _InterruptedClassifier(ConvexMLPClassifier):
    """A classifier whose fit is "interrupted" after ``interrupt_after`` loss calls."""

    def __init__(self, activation="gated_relu", *, interrupt_after=1, **kwargs):
        super().__init__(activation, **kwargs)
        self.interrupt_after = interrupt_after

    def _loss(self, n_outputs):
        assert n_outputs == 1
        return _InterruptingLogistic(self.interrupt_after)


def _classification_data():
    X, score = _data(n_samples=50, seed=1)
    return X, np.where(score > 0, "yes", "no")


def test_interrupted_fit_keeps_last_check_with_an_honest_certificate():
    X, y = _classification_data()
    alpha = 1e-2
    est = _InterruptedClassifier(
        interrupt_after=120, alpha=alpha, n_patterns=12, random_state=0, tol=1e-12, max_iter=10_000,
        solver="fista",
    )
    with pytest.warns(FitInterruptedWarning, match=r"interrupted.*last duality-gap check") as rec:
        est.fit(X, y)
    assert issubclass(FitInterruptedWarning, UserWarning)
    assert len(rec) == 1 and "relative gap" in str(rec[0].message)
    assert est.n_iter_ > 0 and est.n_iter_ % FISTA().check_every == 0  # a check's state
    assert est.history_["iteration"][-1] == est.n_iter_
    assert est.loss_curve_ == []

    # primal: the exported network's J, computed here from its weights by hand
    W1, W2 = est.coefs_
    b1, b2 = est.intercepts_
    h = (((X @ est.gates_[:-1] + est.gates_[-1])[:, est.neuron_patterns_]) > 0) * (X @ W1 + b1)
    f = (h @ W2 + b2)[:, 0]
    s = np.where(y == "yes", 1.0, -1.0)
    J = np.mean(np.logaddexp(0, -s * f)) + alpha / 2 * (
        np.sum(W1**2) + np.sum(b1**2) + np.sum(W2**2)
    )
    assert est.certificate_.primal == pytest.approx(J, rel=1e-12)
    np.testing.assert_allclose(est.decision_function(X), f, rtol=1e-12, atol=1e-12)

    # weak duality against the reference optimum of the same program (cvxpy/Clarabel)
    pytest.importorskip("cvxpy")
    oracle = ConvexMLPClassifier(
        "gated_relu", alpha=alpha, sampler=est.gates_, solver=CvxpySolver(), tol=1e-6
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        oracle.fit(X, y)
    p_star = oracle.certificate_.primal
    cert = est.certificate_
    assert cert.dual <= p_star + 1e-7 <= cert.primal + 2e-7
    assert cert.gap == pytest.approx(cert.primal - cert.dual)
    assert not cert.converged


def test_interrupt_then_warm_start_finishes_the_fit():
    X, y = _classification_data()
    kwargs = dict(alpha=1e-2, n_patterns=12, random_state=0, tol=1e-4, max_iter=10_000)
    est = _InterruptedClassifier(interrupt_after=60, **kwargs)
    with pytest.warns(FitInterruptedWarning):
        est.fit(X, y)
    interrupted = est.certificate_.primal
    est.interrupt_after, est.warm_start = -1, True  # never interrupts again
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.fit(X, y)
    assert est.certificate_.converged
    assert est.certificate_.primal <= interrupted
    fresh = ConvexMLPClassifier("gated_relu", **kwargs).fit(X, y)
    tol = 1e-4 * fresh.certificate_.primal
    assert abs(est.certificate_.primal - fresh.certificate_.primal) <= 2 * tol


def test_interrupt_before_any_check_reraises():
    X, y = _classification_data()
    est = _InterruptedClassifier(interrupt_after=1, n_patterns=12, random_state=0)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, y)
    assert not hasattr(est, "coefs_")


class _SnapshotThenInterrupt(Solver):
    """A solver that records one snapshot (or none) and is then interrupted."""

    name = "fake"
    handles_gated = True
    handles_cone = True

    def __init__(self, snapshot: bool = True):
        self.snapshot = snapshot

    def solve(self, program, *, tol, max_iter, init=None, verbose=0):
        progress = ProgressPrinter(verbose, self.name)
        coef = np.zeros(program.coef_shape)
        coef[0, :, 0] = 0.01  # some non-zero block (made feasible by the estimator)
        b = program.constant_intercept()
        point = dual_point_from_outputs(program, program.predict(coef, b))
        progress(7, program.objective(coef, b), -np.inf)
        if self.snapshot:
            progress.snapshot(coef, b, point)
        raise KeyboardInterrupt


@pytest.mark.parametrize("activation", ["relu", "gated_relu"])
def test_any_solver_that_snapshots_is_interruptible(activation):
    X, y = _data(seed=2)
    est = ConvexMLPRegressor(activation, n_patterns=8, random_state=0,
                             solver=_SnapshotThenInterrupt())
    with pytest.warns(FitInterruptedWarning, match="iteration 7"):
        est.fit(X, y)
    assert est.n_iter_ == 7
    # the kept network is feasible (projected) and its certificate describes it exactly
    cert = est.certificate_
    f = est.predict(X)
    W1, W2 = est.coefs_
    b1 = est.intercepts_[0]
    J = 0.5 * np.mean((f - y) ** 2) + est.alpha / 2 * (
        np.sum(W1**2) + np.sum(b1**2) + np.sum(W2**2)
    )
    assert cert.primal == pytest.approx(J, rel=1e-12)
    assert cert.dual <= cert.primal
    if activation == "relu":
        hidden = np.maximum(X @ W1 + b1, 0)
        np.testing.assert_allclose(hidden @ W2[:, 0] + est.intercepts_[1][0], f, atol=1e-12)

    est = ConvexMLPRegressor(activation, n_patterns=8, random_state=0,
                             solver=_SnapshotThenInterrupt(snapshot=False))
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, y)


def test_fit_interrupted_warning_is_exported():
    assert convexnn.FitInterruptedWarning is FitInterruptedWarning
    assert "FitInterruptedWarning" in convexnn.__all__


def test_squared_loss_fit_without_interrupt_has_no_warning():
    # the scope and snapshots change nothing in an ordinary fit
    X, y = _data(seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = ConvexMLPRegressor("gated_relu", n_patterns=10, random_state=0).fit(X, y)
    assert est.certificate_.converged
