"""Solver interface and the solution record every solver returns."""

from __future__ import annotations

import contextvars
import sys
import time
import weakref
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from ..certificates import DualPoint
from ..penalties import ColumnGroupL2, NuclearNorm
from ..programs import ConvexProgram

__all__ = [
    "History",
    "ProgressPrinter",
    "ProgressScope",
    "Snapshot",
    "Solution",
    "Solver",
    "TimeLimitReached",
]


@dataclass
class History:
    """Progress recorded at every duality-gap check."""

    iteration: list[int] = field(default_factory=list)
    time: list[float] = field(default_factory=list)
    primal: list[float] = field(default_factory=list)
    dual: list[float] = field(default_factory=list)

    def record(self, iteration: int, elapsed: float, primal: float, dual: float) -> None:
        """Append one check."""
        self.iteration.append(int(iteration))
        self.time.append(float(elapsed))
        self.primal.append(float(primal))
        self.dual.append(float(dual))

    @property
    def relative_gap(self) -> list[float]:
        """``(primal - dual) / primal`` at each check."""
        return [(p - d) / max(abs(p), 1e-300) for p, d in zip(self.primal, self.dual)]


@dataclass
class Solution:
    """What a solver returns.

    Attributes
    ----------
    coef : ndarray of shape program.coef_shape
        Convex coefficients (feasible for the ReLU program's cone).
    intercept : ndarray of shape (n_outputs,)
    dual_points : list of DualPoint
        Dual candidates for the certificate (the best is used).
    n_iter : int
        Iterations performed (proximal-gradient steps; for composite solvers,
        summed over its outer updates).
    objective_curve : list of float
        Convex objective after each iteration.
    history : History
        Primal and dual values at each gap check.
    interrupted : bool
        True when the solve was stopped by a ``KeyboardInterrupt`` and this is the
        state of its last gap check (set by the estimators, never by solvers).
    time_limit_reached : bool
        True when the solve was stopped by the time limit of its
        :class:`ProgressScope` (the estimators' ``max_time``) and this is the state of
        its last gap check (set by the estimators, never by solvers).
    """

    coef: np.ndarray
    intercept: np.ndarray
    dual_points: list[DualPoint]
    n_iter: int
    objective_curve: list[float]
    history: History
    interrupted: bool = False
    time_limit_reached: bool = False


def group_per_block_and_output(program: ConvexProgram) -> str | None:
    """``None`` if the penalty has one group per block and output, else why not.

    :class:`~convexnn.penalties.ColumnGroupL2`, or the nuclear norm with one output
    (the same penalty): the structure the interior-point methods and ADMM rely on, since
    then their dual constraints (and, for the squared loss, their problems) separate
    over outputs.
    """
    c = program.n_outputs
    penalty = program.penalty
    if isinstance(penalty, ColumnGroupL2) or (isinstance(penalty, NuclearNorm) and c == 1):
        return None
    return f"the {type(penalty).__name__} penalty with {c} outputs is not one group per block and output"


def woodbury_matrix(K: np.ndarray, w: np.ndarray) -> np.ndarray:
    r"""The ``n x n`` matrix :math:`N = I + R^\top K R` of the barriers' sample-space
    Newton solves, formed in ``K``'s place (``K`` is overwritten; no ``n x n``
    temporaries).

    :math:`R = C^\top W^{1/2}` with :math:`C = I - \mathbf 1 w^\top` (the centring that
    eliminates the optimal intercept; ``w`` sums to one) and :math:`K = A B^{-1}
    A^\top`, so :math:`(B + A^\top R R^\top A)^{-1} = B^{-1} - B^{-1} A^\top R\,
    N^{-1} R^\top A B^{-1}` (Woodbury). Apply the middle factor with
    :func:`woodbury_middle`.
    """
    sw = np.sqrt(w)
    Kw = K @ w
    K -= Kw[:, None]
    K -= Kw[None, :]
    K += float(w @ Kw)  # C K C^T
    K *= sw[:, None]
    K *= sw[None, :]
    K[np.diag_indices_from(K)] += 1.0
    return K


def woodbury_middle(factor, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    r""":math:`R N^{-1} R^\top v` for ``v = A B^{-1} r`` (shape ``(n,)``), with ``factor``
    the Cholesky factor (``scipy.linalg.cho_factor``) of :func:`woodbury_matrix`'s ``N``."""
    from scipy.linalg import cho_solve

    sw = np.sqrt(w)
    t = sw * cho_solve(factor, sw * (v - w @ v), check_finite=False)
    t -= w * t.sum()  # R x = C^T W^{1/2} x
    return t


def prune_blocks(U: np.ndarray, primal: float, dual: float, tol: float, objective) -> tuple[np.ndarray, float]:
    """Zero the blocks an interior point keeps at small norms (a sparse network).

    Interior iterates have every block nonzero (the inactive ones at norms of order
    ``mu``): each such block costs more penalty than it gains in loss. So the ``k``
    largest blocks of ``U`` (shape ``(B, p)``, one output) are kept for the ``k`` with the
    lowest exact ``objective(U_pruned)``, found by a ternary search over ``k`` (the
    objective falls as the dust goes, then rises as real neurons go; every evaluated
    ``k`` counts, so a bumpy curve only costs a little objective): some
    ``2 log_{3/2} B`` evaluations. The constant model (``k = 0``) is preferred whenever
    it is acceptable: its gap to ``dual`` within ``tol`` and its objective within a tenth
    of the gap above ``primal``; the lowest one is returned if acceptable. Returns the
    blocks and their objective (``U, primal`` unchanged otherwise). Zero is in every
    cone, so a feasible point stays feasible.
    """
    norms = np.linalg.norm(U, axis=1)
    order = np.argsort(-norms, kind="stable")
    K = int(np.count_nonzero(norms))
    if K == 0:
        return U, primal
    allowance = primal + 0.1 * max(primal - dual, 0.0)
    values: dict[int, float] = {}

    def pruned(k):
        out = np.zeros_like(U)
        out[order[:k]] = U[order[:k]]
        return out

    def value(k):
        if k not in values:
            values[k] = float(objective(pruned(k)))
        return values[k]

    def acceptable(v):
        return v - dual <= tol * abs(v) and v <= allowance

    if acceptable(value(0)):  # the constant model (alpha near alpha_max)
        return pruned(0), values[0]
    lo, hi = 1, K
    while hi - lo > 2:
        a, b = lo + (hi - lo) // 3, hi - (hi - lo) // 3
        if value(a) <= value(b):
            hi = b
        else:
            lo = a
    for k in range(lo, hi + 1):
        value(k)
    k = min((k for k in values if k > 0), key=values.get)
    if not acceptable(values[k]):
        return U, primal
    return pruned(k), values[k]


class Solver(ABC):
    """A convex-program solver. Subclasses declare which programs they handle."""

    #: name used in error messages and by ``solver=`` strings
    name: str = "solver"
    #: handles the unconstrained (gated ReLU) program
    handles_gated: bool = True
    #: handles the cone-constrained (ReLU) program
    handles_cone: bool = False
    #: what the error of :meth:`check` suggests when :meth:`supports` refuses a program
    alternatives: str = "solver='fista'"

    def supports(self, program: ConvexProgram) -> str | None:
        """``None`` if this solver handles ``program`` (beyond :attr:`handles_gated` /
        :attr:`handles_cone`), else the reason it does not. Every program, here."""
        return None

    def check(self, program: ConvexProgram) -> None:
        """Raise ``ValueError`` before any work if this solver can't handle ``program``
        (its kind, then :meth:`supports`); subclasses add their parameters' checks."""
        if program.has_cone and not self.handles_cone:
            raise ValueError(
                f"solver {self.name!r} does not handle the cone-constrained ReLU program; "
                "use solver='fista', 'admm' (squared loss), 'cvxpy' or 'auto', or "
                "activation='gated_relu'."
            )
        if not program.has_cone and not self.handles_gated:
            raise ValueError(
                f"solver {self.name!r} handles the ReLU program only; use solver='fista', "
                "'cvxpy' or 'auto' for activation='gated_relu'."
            )
        reason = self.supports(program)
        if reason is not None:
            raise ValueError(
                f"solver {self.name!r} cannot solve this program: {reason}; use {self.alternatives}."
            )

    @abstractmethod
    def solve(
        self,
        program: ConvexProgram,
        *,
        tol: float,
        max_iter: int,
        init: tuple[np.ndarray, np.ndarray] | None = None,
        verbose: int = 0,
    ) -> Solution:
        """Solve ``program`` to relative duality gap ``tol`` (or ``max_iter``)."""


@dataclass
class Snapshot:
    """A solver's state at one duality-gap check, enough to rebuild a network.

    Attributes
    ----------
    coef : ndarray of shape program.coef_shape
        Convex coefficients at the check (for ReLU, possibly slightly off the cones;
        the estimator projects them with ``program.make_feasible``).
    intercept : ndarray of shape (n_outputs,)
    dual_points : list of DualPoint
        Dual candidates known at the check (any of them gives a valid lower bound).
    iteration : int
        Iteration of the check.
    objective : float
        Convex objective at ``(coef, intercept)`` when the solver gave it, else NaN.
    """

    coef: np.ndarray
    intercept: np.ndarray
    dual_points: list[DualPoint]
    iteration: int
    objective: float = float("nan")


class TimeLimitReached(Exception):
    """The time limit of the active :class:`ProgressScope` passed (``max_time``).

    Raised by :meth:`ProgressPrinter.snapshot` at the first gap check after the
    deadline whose state does not already meet ``tol``, right after that state was
    stored: the scope's :attr:`~ProgressScope.last_snapshot` is the point to keep.
    Solvers never catch it; whoever opened the scope (the estimators) does.

    Attributes
    ----------
    iteration : int
        Iteration of the gap check at which the solve stopped.
    elapsed : float
        Seconds since the scope was entered.
    """

    def __init__(self, iteration: int, elapsed: float):
        super().__init__(f"time limit reached at iteration {iteration} after {elapsed:.3g} s")
        self.iteration = int(iteration)
        self.elapsed = float(elapsed)


#: The progress scope of the fit running in this context (see :class:`ProgressScope`).
_SCOPE: contextvars.ContextVar[ProgressScope | None] = contextvars.ContextVar(
    "convexnn_progress_scope", default=None
)


class ProgressPrinter:
    """Live progress of a solver, and the snapshots that make Ctrl-C safe.

    Solvers create one per solve and call it at every duality-gap check,
    ``progress(iteration, primal, dual)``, then (optionally) hand it the state of that
    check with :meth:`snapshot`. Nothing else is needed from a solver: the display,
    its one-second delay and the interruption handling live here.

    What is shown depends on ``verbose``:

    - ``0``: nothing.
    - ``1``: once the solve has run for ``delay`` seconds (fits shorter than that show
      nothing), a live progress bar with the iteration, objective, relative duality
      gap (and ``tol``) and elapsed time, drawn by `rich <https://rich.readthedocs.io>`_
      when it is installed (``pip install 'convexnn[progress]'``) and the output is a
      terminal or a notebook; otherwise one plain line per gap check.
    - ``2`` or more: one plain line per gap check from the first check on.

    Output goes to standard error.

    Parameters
    ----------
    verbose : int
        Verbosity level (see above).
    name : str
        Solver name shown in the display.
    max_iter : int, optional
        Iteration budget: the bar's length (without it the bar only pulses).
    tol : float, optional
        Target relative gap, shown next to the current one.
    delay : float, default=1.0
        Seconds before anything is shown at ``verbose == 1``.
    file : file-like, optional
        Where to write; ``sys.stderr`` (looked up at each write) when None.
    force_terminal : bool, optional
        Passed to rich's ``Console`` (tests use it to draw the bar into a string).

    Notes
    -----
    A printer created while a :class:`ProgressScope` is active (estimators open one
    around ``solver.solve``) registers itself there, so the estimator can close the
    display and read the last snapshot when the solve is interrupted. It also takes
    the scope's deadline (``ProgressScope(max_time=...)``): :meth:`snapshot` raises
    :class:`TimeLimitReached` once the deadline has passed, so every solver that
    snapshots its gap checks honours the estimators' ``max_time`` without code of
    its own. Solvers that cannot stop at gap checks (e.g. an external
    interior-point code) can read :meth:`remaining` and pass it on.
    """

    #: clock used for the elapsed time (a class attribute so tests can replace it)
    _clock = staticmethod(time.perf_counter)

    def __init__(
        self,
        verbose: int,
        name: str,
        *,
        max_iter: int | None = None,
        tol: float | None = None,
        delay: float = 1.0,
        file=None,
        force_terminal: bool | None = None,
    ):
        self.verbose = int(verbose)
        self.name = name
        self.max_iter = max_iter
        self.tol = tol
        self.delay = delay
        self.file = file
        self.force_terminal = force_terminal
        self.start = self._clock()
        self.history = History()
        self.last_snapshot: Snapshot | None = None
        self._live: list = [None]  # [(rich Progress, task id)] once the bar is drawn
        self._mode: str | None = None  # "rich" or "lines" once something was shown
        self._closed = False
        scope = _SCOPE.get()
        #: clock reading after which :meth:`snapshot` stops the solve (None: no limit)
        self.deadline: float | None = None
        self._scope_start = self.start
        if scope is not None:
            scope.printers.append(self)
            self.deadline = scope.deadline
            self._scope_start = scope.start
        # a solver that never calls close() still releases the terminal
        self._finalizer = weakref.finalize(self, _stop_live, self._live)

    def elapsed(self) -> float:
        """Seconds since the solver started."""
        return self._clock() - self.start

    def remaining(self) -> float | None:
        """Seconds left before the scope's deadline (negative once it passed), or
        None without a time limit."""
        if self.deadline is None:
            return None
        return self.deadline - self._clock()

    def __call__(self, iteration: int, primal: float, dual: float) -> None:
        """Record and show one gap check."""
        elapsed = self.elapsed()
        self.history.record(iteration, elapsed, primal, dual)
        if self.verbose <= 0 or self._closed:
            return
        if self._mode is None:
            if self.verbose == 1 and elapsed < self.delay:
                return
            self._mode = "rich" if (self.verbose == 1 and self._start_rich()) else "lines"
        rel = (primal - dual) / max(abs(primal), 1e-300)
        if self._mode == "rich":
            progress, task = self._live[0]
            total = "" if self.max_iter is None else f"/{self.max_iter}"
            progress.update(
                task,
                completed=iteration,
                iters=f"{iteration}{total}",
                objective=f"{primal:.8g}",
                gap=f"{rel:.2e}",
            )
            progress.refresh()
        else:
            tol = "" if self.tol is None else f" (tol {self.tol:.0e})"
            print(
                f"[{self.name}] iter {iteration:6d}  objective {primal:.8g}  "
                f"rel. gap {rel:.2e}{tol}  {elapsed:7.2f} s",
                file=self._stream(),
                flush=True,
            )

    def snapshot(
        self,
        coef: np.ndarray,
        intercept: np.ndarray,
        dual_point: DualPoint | list[DualPoint] | None,
        *,
        iteration: int | None = None,
        objective: float | None = None,
    ) -> None:
        """Remember the solver's state at the current gap check (copied).

        An interrupted fit (Ctrl-C) rebuilds its network and certificate from the
        last snapshot, so solvers should call this right after ``progress(...)``.
        Under a time limit (see :class:`ProgressScope`) this is also where the solve
        stops: once the deadline has passed, and unless the last ``progress(...)``
        call already met ``tol``, the state is stored and :class:`TimeLimitReached`
        is raised.

        Parameters
        ----------
        coef, intercept : ndarray
            Current convex coefficients and output intercept.
        dual_point : DualPoint, list of DualPoint or None
            Best dual candidate(s) known so far.
        iteration : int, optional
            Defaults to the iteration of the last ``progress(...)`` call.
        objective : float, optional
            Convex objective at ``(coef, intercept)``, if known.
        """
        if dual_point is None:
            points: list[DualPoint] = []
        elif isinstance(dual_point, DualPoint):
            points = [dual_point]
        else:
            points = list(dual_point)
        if iteration is None:
            iteration = self.history.iteration[-1] if self.history.iteration else 0
        self.last_snapshot = Snapshot(
            np.array(coef, dtype=float, copy=True),
            np.array(intercept, dtype=float, copy=True),
            points,
            int(iteration),
            float("nan") if objective is None else float(objective),
        )
        if self.deadline is not None and not self._met_tol() and self._clock() >= self.deadline:
            raise TimeLimitReached(int(iteration), self._clock() - self._scope_start)

    def close(self) -> None:
        """End the display (the bar stays on screen with its final values). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._finalizer()

    # -- internals -----------------------------------------------------------------
    def _met_tol(self) -> bool:
        """Whether the last recorded check meets ``tol`` (the solver stops there anyway)."""
        h = self.history
        if self.tol is None or not h.primal:
            return False
        return h.primal[-1] - h.dual[-1] <= self.tol * abs(h.primal[-1])

    def _stream(self):
        return self.file if self.file is not None else sys.stderr

    def _start_rich(self) -> bool:
        try:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
        except ImportError:
            return False
        console = Console(file=self._stream(), force_terminal=self.force_terminal)
        if not (console.is_terminal or console.is_jupyter):
            return False
        tol = "" if self.tol is None else f" (tol {self.tol:.0e})"
        progress = Progress(
            TextColumn(f"[bold]{self.name}"),
            BarColumn(bar_width=20),
            TextColumn("iter {task.fields[iters]}"),
            TextColumn("objective {task.fields[objective]}"),
            TextColumn("rel. gap {task.fields[gap]}" + tol),
            TimeElapsedColumn(),
            console=console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
            # elapsed time counts from the solver's start, not from the first draw
            get_time=self._clock,
        )
        task = progress.add_task(
            self.name, total=self.max_iter, iters="0", objective="-", gap="-"
        )
        progress.tasks[0].start_time = self.start
        progress.start()
        self._live[0] = (progress, task)
        return True


def _stop_live(box: list) -> None:
    """Stop a printer's rich display, if one is drawn (also run by its finalizer)."""
    live, box[0] = box[0], None
    if live is not None:
        live[0].refresh()
        live[0].stop()


class ProgressScope:
    """Collects the :class:`ProgressPrinter` objects created while it is active.

    The estimators wrap ``solver.solve`` in one: on exit every display is closed (also
    when the solve raised), and after a ``KeyboardInterrupt`` or
    :class:`TimeLimitReached` :attr:`last_snapshot` is the state from which the fit
    rebuilds its network.

    Parameters
    ----------
    max_time : float, optional
        Time limit in seconds, counted from entering the scope (on
        ``ProgressPrinter._clock``). The first gap check after it that does not meet
        ``tol`` raises :class:`TimeLimitReached` from :meth:`ProgressPrinter.snapshot`.
        None: no limit.

    Examples
    --------
    >>> with ProgressScope(max_time=60.0) as scope:  # doctest: +SKIP
    ...     try:
    ...         solution = solver.solve(program, tol=tol, max_iter=max_iter, verbose=1)
    ...     except TimeLimitReached:
    ...         snap = scope.last_snapshot
    """

    def __init__(self, max_time: float | None = None) -> None:
        self.printers: list[ProgressPrinter] = []
        self.max_time = max_time
        self.start: float = float("nan")
        self.deadline: float | None = None
        self._token: contextvars.Token | None = None

    def __enter__(self) -> ProgressScope:
        self.start = ProgressPrinter._clock()
        self.deadline = None if self.max_time is None else self.start + float(self.max_time)
        self._token = _SCOPE.set(self)
        return self

    def __exit__(self, *exc_info) -> None:
        _SCOPE.reset(self._token)
        for printer in self.printers:
            printer.close()

    @property
    def last_snapshot(self) -> Snapshot | None:
        """The latest snapshot of the latest printer that has one."""
        for printer in reversed(self.printers):
            if printer.last_snapshot is not None:
                return printer.last_snapshot
        return None

    @property
    def history(self) -> History:
        """Gap checks recorded by the latest printer (empty if none)."""
        return self.printers[-1].history if self.printers else History()
