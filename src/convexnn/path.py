"""Regularization paths: one convex program, solved for a descending grid of ``alpha``.

For fixed activation patterns the program

.. math::

    p^\\star(\\alpha) = \\min_{V, b}\\; L\\Big(\\sum_k D_k X_a V_k + b\\Big) + \\alpha R(V)
    \\quad(\\text{ReLU: s.t. } E_k X_a v_k \\ge 0,\\ E_k X_a w_k \\ge 0)

has a unique optimal value for every ``alpha`` and the solution ``V = 0`` (the constant
model) for every :math:`\\alpha \\ge \\alpha_{max}`
(:meth:`~convexnn.programs.ConvexProgram.alpha_max`, computed exactly from the
first-order conditions at ``V = 0``). :func:`regularization_path` walks a log grid from
:math:`\\alpha_{max}` down, starting each solve from the previous solution (a warm
start: neighbouring solutions are close, so each solve is short), and certifies every
point with its duality gap.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.metrics import check_scoring

from .certificates import Certificate
from .estimators._base import BaseConvexMLP
from .network import Network
from .patterns import PatternSampler, Patterns
from .programs import ConvexProgram

__all__ = ["RegularizationPath", "regularization_path", "alpha_grid"]


# ------------------------------------------------------------------------------ result


@dataclass
class RegularizationPath:
    """The solutions of one convex program along a descending grid of ``alpha``.

    Every array is indexed like ``alphas`` (largest first). All points share the same
    activation patterns (``gates``), so their objectives are values of one family of
    programs and their certificates compare.

    Attributes
    ----------
    alphas : ndarray of shape (n_alphas,)
        The grid, in decreasing order.
    alpha_max : float
        Smallest ``alpha`` whose solution is the constant model (``V = 0``) on these
        patterns and this training data.
    objectives : ndarray of shape (n_alphas,)
        Objective ``J`` of the network at each point (the certificate's ``primal``).
    duals : ndarray of shape (n_alphas,)
        Certified lower bounds on the optimal value at each point.
    gaps, relative_gaps : ndarray of shape (n_alphas,)
        ``objectives - duals`` and ``gaps / objectives``.
    n_neurons : ndarray of int, shape (n_alphas,)
        Hidden units with non-zero weights (0 at ``alpha_max``).
    n_iter : ndarray of int, shape (n_alphas,)
        Solver iterations at each point.
    times : ndarray of shape (n_alphas,)
        Wall time of each fit, seconds.
    coefs : ndarray of shape (n_alphas, n_blocks, n_features + 1, n_outputs)
        Convex solution (``convex_coef_``) at each point.
    intercepts : ndarray of shape (n_alphas, n_outputs)
        Output intercept ``b2`` at each point.
    networks : list of Network
        The network (``coefs_``, ``intercepts_``) at each point.
    certificates : list of Certificate
        The certificate at each point.
    train_scores : ndarray of shape (n_alphas,)
        Score on the training data (``scoring``; default: the estimator's ``score``).
    val_scores : ndarray of shape (n_alphas,) or None
        Score on the validation data, ``None`` when none was given.
    gates : ndarray of shape (n_features + 1, n_patterns)
        The activation patterns shared by every point.
    activation : str
        ``"relu"`` or ``"gated_relu"``.
    scoring : str
        Name of the score in ``train_scores`` / ``val_scores``.
    warm_start : bool
        Whether each point started from the previous one.
    """

    alphas: np.ndarray
    alpha_max: float
    objectives: np.ndarray
    duals: np.ndarray
    gaps: np.ndarray
    relative_gaps: np.ndarray
    n_neurons: np.ndarray
    n_iter: np.ndarray
    times: np.ndarray
    coefs: np.ndarray
    intercepts: np.ndarray
    networks: list[Network] = field(repr=False)
    certificates: list[Certificate] = field(repr=False)
    train_scores: np.ndarray
    val_scores: np.ndarray | None
    gates: np.ndarray = field(repr=False)
    activation: str = "relu"
    scoring: str = "score"
    warm_start: bool = True

    @property
    def n_alphas(self) -> int:
        """Number of grid points."""
        return len(self.alphas)

    @property
    def converged(self) -> np.ndarray:
        """Whether each point is certified to its ``tol``, shape ``(n_alphas,)``."""
        return np.array([c.converged for c in self.certificates], dtype=bool)

    def to_dict(self) -> dict[str, list]:
        """Table columns (plain Python lists, one entry per ``alpha``).

        Columns: ``alpha``, ``objective``, ``dual``, ``gap``, ``relative_gap``,
        ``converged``, ``n_neurons``, ``n_iter``, ``time``, ``train_score`` and, with
        validation data, ``val_score``. ``pandas.DataFrame(path.to_dict())`` makes a
        data frame.
        """
        table: dict[str, list] = {
            "alpha": self.alphas.tolist(),
            "objective": self.objectives.tolist(),
            "dual": self.duals.tolist(),
            "gap": self.gaps.tolist(),
            "relative_gap": self.relative_gaps.tolist(),
            "converged": self.converged.tolist(),
            "n_neurons": self.n_neurons.tolist(),
            "n_iter": self.n_iter.tolist(),
            "time": self.times.tolist(),
            "train_score": self.train_scores.tolist(),
        }
        if self.val_scores is not None:
            table["val_score"] = self.val_scores.tolist()
        return table

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per ``alpha`` with the columns of :meth:`to_dict`."""
        table = self.to_dict()
        return [dict(zip(table, values)) for values in zip(*table.values())]

    def write_csv(self, path) -> Path:
        """Write :meth:`to_rows` to a CSV file (header line, one row per ``alpha``).

        Returns
        -------
        path : pathlib.Path
        """
        path = Path(path)
        table = self.to_dict()
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(list(table))
            for values in zip(*table.values()):
                writer.writerow([repr(v) if isinstance(v, float) else v for v in values])
        return path


# --------------------------------------------------------------------------- helpers


@dataclass
class _FrozenPatterns(PatternSampler):
    """A sampler that returns the same :class:`Patterns` (gates *and* completeness)."""

    patterns: Patterns

    def sample(self, X, random_state=None):
        return self.patterns


class _Captured(Exception):
    """Carries the program out of a fit stopped before its solve."""

    def __init__(self, program: ConvexProgram):
        super().__init__("program captured")
        self.program = program


def _check_template(estimator) -> BaseConvexMLP:
    from .estimators import ConvexMLPRegressor

    if estimator is None:
        return ConvexMLPRegressor()
    if not isinstance(estimator, BaseConvexMLP):
        raise ValueError(
            "estimator must be a ConvexMLPRegressor or ConvexMLPClassifier (the template "
            f"whose parameters the path uses); got {type(estimator).__name__}."
        )
    return estimator


def _build_program(template: BaseConvexMLP, X, y, sample_weight=None) -> ConvexProgram:
    """The program ``template.fit(X, y, sample_weight)`` would solve (same validation,
    target encoding, sample weights and patterns), built without solving it.

    Runs ``fit`` on a clone whose solve step (``_solve(X, Y, w)``) is replaced by one
    that builds the program and stops, so nothing of the estimator's preprocessing is
    duplicated here.
    """
    probe = clone(template)

    def capture(X_, Y_, w_):
        raise _Captured(probe._program(X_, Y_, w_, probe._patterns(X_)))

    probe._solve = capture
    try:
        probe.fit(X, y, sample_weight=sample_weight)
    except _Captured as captured:
        return captured.program
    raise RuntimeError(  # pragma: no cover - only if BaseConvexMLP stops calling _solve
        f"{type(template).__name__}.fit did not call _solve(X, Y, w); "
        "regularization_path needs that hook to build the program."
    )


def alpha_grid(alpha_max: float, n_alphas: int = 20, alpha_min_ratio: float = 1e-3) -> np.ndarray:
    """Log-spaced grid from ``alpha_max`` down to ``alpha_min_ratio * alpha_max``.

    Parameters
    ----------
    alpha_max : float
        First (largest) value, > 0.
    n_alphas : int, default=20
        Number of values (>= 1; with 1 the grid is ``[alpha_max]``).
    alpha_min_ratio : float, default=1e-3
        Ratio of the last value to the first, in ``(0, 1]``.

    Returns
    -------
    alphas : ndarray of shape (n_alphas,)
        Decreasing; ``alphas[0] == alpha_max`` exactly.
    """
    if not (isinstance(alpha_max, Real) and np.isfinite(alpha_max) and alpha_max > 0):
        raise ValueError(
            f"alpha_max must be a positive finite number, got {alpha_max!r}. An alpha_max "
            "of 0 means the constant model fits the targets exactly (is y constant?); "
            "there is no path to walk: pass alphas explicitly."
        )
    if not (isinstance(n_alphas, Integral) and not isinstance(n_alphas, bool) and n_alphas >= 1):
        raise ValueError(f"n_alphas must be an integer >= 1, got {n_alphas!r}.")
    if not (isinstance(alpha_min_ratio, Real) and 0 < alpha_min_ratio <= 1):
        raise ValueError(f"alpha_min_ratio must be in (0, 1], got {alpha_min_ratio!r}.")
    alphas = alpha_max * np.logspace(0.0, np.log10(alpha_min_ratio), int(n_alphas))
    alphas[0] = alpha_max
    return alphas


def _check_alphas(alphas) -> np.ndarray:
    a = np.asarray(alphas, dtype=float)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"alphas must be a non-empty 1-D array of numbers, got shape {a.shape}.")
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError("alphas must all be positive and finite (alpha > 0 in J).")
    return np.sort(a)[::-1].copy()


def _scorer_name(scoring) -> str:
    if scoring is None:
        return "score"
    return scoring if isinstance(scoring, str) else getattr(scoring, "__name__", repr(scoring))


def _walk(
    template: BaseConvexMLP,
    X,
    y,
    *,
    sample_weight=None,
    alphas=None,
    n_alphas: int = 20,
    alpha_min_ratio: float = 1e-3,
    X_val=None,
    y_val=None,
    scoring=None,
    warm_start: bool = True,
    verbose: int = 0,
) -> tuple[RegularizationPath, BaseConvexMLP]:
    """:func:`regularization_path`, also returning the estimator fitted at the last
    ``alpha`` (a clone of ``template``, with its ``sampler`` and ``warm_start``
    parameters restored to the template's)."""
    if (X_val is None) != (y_val is None):
        raise ValueError("give both X_val and y_val, or neither.")
    program = _build_program(template, X, y, sample_weight)
    alpha_max = float(program.alpha_max())
    if alphas is None:
        alphas = alpha_grid(alpha_max, n_alphas, alpha_min_ratio)
    else:
        alphas = _check_alphas(alphas)
    patterns = Patterns(np.array(program.gates), complete=program.complete)

    est = clone(template)
    est.set_params(sampler=_FrozenPatterns(patterns), warm_start=bool(warm_start))
    scorer = check_scoring(est, scoring=scoring)
    score_kw = {} if sample_weight is None else {"sample_weight": sample_weight}

    rows: dict[str, list] = {k: [] for k in (
        "coef", "intercept", "network", "certificate", "n_neurons", "n_iter", "time",
        "train", "val",
    )}
    for i, alpha in enumerate(alphas):
        est.set_params(alpha=float(alpha))
        start = time.perf_counter()
        est.fit(X, y, sample_weight=sample_weight)
        elapsed = time.perf_counter() - start
        cert = est.certificate_
        rows["coef"].append(np.array(est.convex_coef_))
        rows["intercept"].append(np.array(est.intercepts_[1], dtype=float))
        rows["network"].append(est.to_network())
        rows["certificate"].append(cert)
        rows["n_neurons"].append(int(est.n_neurons_))
        rows["n_iter"].append(int(est.n_iter_))
        rows["time"].append(elapsed)
        rows["train"].append(float(scorer(est, X, y, **score_kw)))
        if X_val is not None:
            rows["val"].append(float(scorer(est, X_val, y_val)))
        if verbose:
            val = f", val {rows['val'][-1]:.4g}" if X_val is not None else ""
            print(
                f"[path] {i + 1}/{len(alphas)} alpha {alpha:.3e}: {est.n_neurons_} neurons, "
                f"J {cert.primal:.6g}, rel. gap {cert.relative_gap:.1e}, {est.n_iter_} iter, "
                f"{elapsed:.2f} s, train {rows['train'][-1]:.4g}{val}",
                flush=True,
            )
    est.set_params(sampler=template.sampler, warm_start=template.warm_start)

    certs = rows["certificate"]
    path = RegularizationPath(
        alphas=alphas,
        alpha_max=alpha_max,
        objectives=np.array([c.primal for c in certs]),
        duals=np.array([c.dual for c in certs]),
        gaps=np.array([c.gap for c in certs]),
        relative_gaps=np.array([c.relative_gap for c in certs]),
        n_neurons=np.array(rows["n_neurons"], dtype=np.int64),
        n_iter=np.array(rows["n_iter"], dtype=np.int64),
        times=np.array(rows["time"]),
        coefs=np.stack(rows["coef"]),
        intercepts=np.stack(rows["intercept"]),
        networks=rows["network"],
        certificates=certs,
        train_scores=np.array(rows["train"]),
        val_scores=np.array(rows["val"]) if X_val is not None else None,
        gates=np.array(program.gates),
        activation=str(template.activation),
        scoring=_scorer_name(scoring),
        warm_start=bool(warm_start),
    )
    return path, est


# ------------------------------------------------------------------------- public API


def regularization_path(
    X,
    y,
    *,
    estimator=None,
    alphas=None,
    n_alphas: int = 20,
    alpha_min_ratio: float = 1e-3,
    X_val=None,
    y_val=None,
    sample_weight=None,
    scoring=None,
    warm_start: bool = True,
    verbose: int = 0,
) -> RegularizationPath:
    """Solve the convex program of ``estimator`` for a descending grid of ``alpha``.

    For each ``alpha`` on the grid the network minimises

    .. math::

        J_\\alpha = \\frac1n \\sum_i \\ell(f(x_i), y_i)
            + \\frac{\\alpha}{2}\\left(\\lVert W_1\\rVert^2 + \\lVert b_1\\rVert^2
            + \\lVert W_2\\rVert^2\\right)

    over the activation patterns the template samples on ``X`` (sampled once: every
    point uses the same patterns). The grid starts at :math:`\\alpha_{max}`, the
    smallest ``alpha`` whose solution is the constant model, computed exactly from the
    program (:meth:`~convexnn.programs.ConvexProgram.alpha_max`); its first point has
    no neurons. Each solve starts from the previous solution (``warm_start``).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
    estimator : ConvexMLPRegressor or ConvexMLPClassifier, default=None
        Template for every parameter except ``alpha`` (default:
        ``ConvexMLPRegressor()``). It is cloned, never modified or fitted.
    alphas : array-like of shape (n_alphas,), optional
        Explicit grid (sorted into decreasing order). Default: ``n_alphas`` values
        log-spaced from ``alpha_max`` down to ``alpha_min_ratio * alpha_max``.
    n_alphas : int, default=20
        Size of the default grid.
    alpha_min_ratio : float, default=1e-3
        Smallest over largest ``alpha`` of the default grid.
    X_val, y_val : array-like, optional
        Validation data scored at every point (``val_scores``).
    sample_weight : array-like of shape (n_samples,), optional
        Passed to every fit and to the training score.
    scoring : str or callable, optional
        scikit-learn scoring for ``train_scores`` / ``val_scores`` (default: the
        estimator's ``score``: R² or accuracy).
    warm_start : bool, default=True
        Start each solve from the previous point's solution. ``False`` solves every
        point from zero (same answers up to ``tol``; for comparison).
    verbose : int, default=0
        Print one line per point.

    Returns
    -------
    path : RegularizationPath

    Examples
    --------
    >>> import numpy as np
    >>> from convexnn import ConvexMLPRegressor, regularization_path
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 2)); y = np.sin(2 * X[:, 0])
    >>> path = regularization_path(
    ...     X, y, estimator=ConvexMLPRegressor("gated_relu", n_patterns=20, random_state=0),
    ...     n_alphas=5)
    >>> int(path.n_neurons[0]), bool(path.alphas[0] == path.alpha_max)
    (0, True)
    """
    template = _check_template(estimator)
    path, _ = _walk(
        template, X, y, sample_weight=sample_weight, alphas=alphas, n_alphas=n_alphas,
        alpha_min_ratio=alpha_min_ratio, X_val=X_val, y_val=y_val, scoring=scoring,
        warm_start=warm_start, verbose=verbose,
    )
    return path
