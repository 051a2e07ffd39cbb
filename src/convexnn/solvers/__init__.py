"""Solvers for the convex programs. They depend on :mod:`convexnn.programs` only."""

from __future__ import annotations

from ..losses import SquaredLoss
from .admm import ADMM
from .barrier import DualBarrier
from .base import History, Solution, Solver
from .cone_barrier import ConeBarrier
from .fista import FISTA
from .gram_barrier import GramBarrier
from .reference import CvxpySolver

__all__ = [
    "ADMM",
    "ConeBarrier",
    "CvxpySolver",
    "DualBarrier",
    "FISTA",
    "GramBarrier",
    "History",
    "Solution",
    "Solver",
    "make_solver",
    "AUTO_BARRIER_MAX_SAMPLES",
    "AUTO_BARRIER_MIN_TOL",
    "AUTO_GRAM_MAX_VARIABLES",
    "AUTO_CONE_BARRIER_MAX_SAMPLES",
    "AUTO_CONE_BARRIER_MAX_ENTRIES",
    "SOLVERS",
]

SOLVERS: dict[str, type[Solver]] = {
    "fista": FISTA,
    "admm": ADMM,
    "barrier": DualBarrier,
    "cone_barrier": ConeBarrier,
    "gram_barrier": GramBarrier,
    "cvxpy": CvxpySolver,
}

#: ``"auto"`` uses :class:`DualBarrier` up to this many samples (squared loss, logistic
#: loss); measured side by side with FISTA at the estimator defaults in
#: ``benchmarks/solver_choice.py`` (``benchmarks/results/solver_choice.md``): squared loss,
#: the barrier is 1.3-11x faster up to 2000 samples; logistic loss, 1.3-2x faster at 500
#: samples and 0.7-0.9x at 1000 (its Newton steps cost O(n^2 P + n^3)).
AUTO_BARRIER_MAX_SAMPLES = {"squared": 2000, "other": 600}
#: ``"auto"`` uses :class:`GramBarrier` for the gated program with the squared loss
#: while it has at most this many coefficients ``P (d + 1)`` per output (its steps
#: factor a dense matrix of that order), in preference to :class:`DualBarrier` where
#: there are no more coefficients than samples, and beyond the latter's sample limit.
#: Measured (``benchmarks/results/solver_choice.md``, estimator defaults, protein, 2000
#: coefficients): 0.42 s vs DualBarrier 2.95 s vs FISTA 4.6 s at 2000 rows, 0.37 vs 0.46
#: vs 2.9 s at 1000 rows, and 0.41 vs 0.10 s at 500 rows (more coefficients than rows:
#: DualBarrier); 1.2 s vs FISTA 29 s at 20000 rows. On the issue-3 goal-1 programs
#: ``pmlb_magic`` (19020 x 10, P = 500: 5500 coefficients) and ``uci_protein`` (45730 x
#: 9: 5000) it certifies 1e-4 in 6 steps, 11 s and 13 s on one thread (Gram matrix
#: 4-5 s, one factorisation ~1 s per step), where FISTA needs ~16000 iterations.
AUTO_GRAM_MAX_VARIABLES = 6000
#: ``"auto"`` uses :class:`ConeBarrier` for the cone-constrained programs (ReLU, leaky
#: ReLU, abs) with the squared loss up to this many samples; measured at the
#: ConvexMLPRegressor defaults against FISTA (README, "Solver choice"): diabetes (442 x
#: 10) 1.6 s vs 14.8 s, a 1500 x 20 regression 20.3 s vs 37.6 s (its steps cost
#: O(n^2 P d)); on the issue-3 goal-2 program (569 x 30, P=500, alpha=1e-3) it certifies
#: 1e-3 in 18 s where FISTA had not in 926 s.
AUTO_CONE_BARRIER_MAX_SAMPLES = 1500
#: ... and while its dense step arrays stay moderate: the ``n x P (d+1)`` factor ``T``
#: (float32) and the ``2P`` blocks of size ``(d+2)^2`` (several float64 copies), in
#: entries; beyond, ``"auto"`` keeps FISTA, whose memory is linear in ``n``.
AUTO_CONE_BARRIER_MAX_ENTRIES = {"factor": 60_000_000, "blocks": 10_000_000}
#: ... and only for tolerances it reaches reliably: below ~1e-8 relative its path can
#: stall in rounding (seen: 2.4e-8 on a small logistic problem asked for 1e-9).
AUTO_BARRIER_MIN_TOL = 1e-8


def make_solver(spec, cone: bool | None = None, program=None, tol: float | None = None) -> Solver:
    """Turn the estimators' ``solver`` parameter into a :class:`Solver`.

    ``"auto"`` picks, for the gated program (given ``program``), the sample-space
    interior-point method :class:`DualBarrier` when it handles the program and
    ``n_samples`` is at most :data:`AUTO_BARRIER_MAX_SAMPLES` (squared loss: 2000,
    logistic loss: 600); with the squared loss, the coefficient-space interior-point
    method :class:`GramBarrier` instead where ``P (d + 1)`` is at most ``n_samples``,
    and beyond the sample limit, while ``P (d + 1)`` is at most
    :data:`AUTO_GRAM_MAX_VARIABLES`; for the cone-constrained programs with the squared loss, the
    interior-point method :class:`ConeBarrier` up to
    :data:`AUTO_CONE_BARRIER_MAX_SAMPLES` samples (and step arrays within
    :data:`AUTO_CONE_BARRIER_MAX_ENTRIES`); otherwise FISTA, which solves every program (for the ReLU
    program its proximal step projects onto the cones exactly, so every iterate is
    feasible). Without ``program``, or for ``tol`` below :data:`AUTO_BARRIER_MIN_TOL`,
    it picks FISTA.
    """
    if isinstance(spec, Solver):
        return spec
    if spec == "auto":
        tight = tol is not None and tol < AUTO_BARRIER_MIN_TOL
        if program is not None and program.has_cone and not tight:
            cone = ConeBarrier(max_samples=AUTO_CONE_BARRIER_MAX_SAMPLES)
            op = program.operator
            n, P, p = op.n_samples, op.n_patterns, op.n_inputs
            small = (n * P * p <= AUTO_CONE_BARRIER_MAX_ENTRIES["factor"]
                     and 2 * P * (p + 1) ** 2 <= AUTO_CONE_BARRIER_MAX_ENTRIES["blocks"])
            if small and cone.supports(program) is None:
                return cone
        if program is not None and not program.has_cone and not tight:
            barrier = DualBarrier()
            gram = GramBarrier(max_variables=AUTO_GRAM_MAX_VARIABLES)
            kind = "squared" if isinstance(program.loss, SquaredLoss) else "other"
            n = int((program.sample_weight > 0).sum())
            coefficients = program.operator.n_patterns * program.operator.n_inputs
            # no more coefficients than samples: the Gram matrix's steps are the cheaper
            if coefficients <= n and gram.supports(program) is None:
                return gram
            if n <= AUTO_BARRIER_MAX_SAMPLES[kind] and barrier.supports(program) is None:
                return barrier
            if gram.supports(program) is None:
                return gram
        return FISTA()
    if spec == "barrier" and program is not None and program.has_cone:
        # the interior-point method of the cone-constrained programs
        return ConeBarrier()
    if isinstance(spec, str) and spec in SOLVERS:
        return SOLVERS[spec]()
    raise ValueError(
        f"unknown solver {spec!r}; choose 'auto', one of {sorted(SOLVERS)}, or a Solver instance."
    )
