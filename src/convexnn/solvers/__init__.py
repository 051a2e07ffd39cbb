"""Solvers for the convex programs. They depend on :mod:`convexnn.programs` only."""

from __future__ import annotations

import os

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
    "AUTO_GRAM_MAX_SAMPLES",
    "AUTO_CONE_BARRIER_MAX_SAMPLES",
    "AUTO_CONE_BARRIER_MAX_COEFFICIENTS",
    "AUTO_CONE_BARRIER_MAX_TALL_COEFFICIENTS",
    "AUTO_CONE_BARRIER_MAX_ENTRIES",
    "AUTO_CONE_BARRIER_BYTES_PER_ENTRY",
    "AUTO_CONE_BARRIER_BYTES_PER_SQUARE",
    "AUTO_CONE_BARRIER_MEMORY_FRACTION",
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

#: ``"auto"`` uses :class:`DualBarrier` up to this many samples (squared loss, where
#: :class:`GramBarrier` does not apply, e.g. on device operators; logistic loss); measured side by side with FISTA at the estimator defaults in
#: ``benchmarks/solver_choice.py`` (``benchmarks/results/solver_choice.md``): squared loss,
#: the barrier is 1.3-11x faster up to 2000 samples; logistic loss, 1.3-2x faster at 500
#: samples and 0.7-0.9x at 1000 (its Newton steps cost O(n^2 P + n^3)).
AUTO_BARRIER_MAX_SAMPLES = {"squared": 2000, "other": 600}
#: ``"auto"`` lets :class:`GramBarrier` factor its Newton systems in coefficient space
#: (the gated program with the squared loss) while it has at most this many
#: coefficients ``P (d + 1)`` per output (its steps factor a dense matrix of that
#: order); which space it uses where both fit, :meth:`GramBarrier.space_for`. Measured (``benchmarks/results/solver_choice.md``, estimator defaults, protein, 2000
#: coefficients, tol 1e-3): 0.45 s vs DualBarrier 2.91 s vs FISTA 4.6 s at 2000 rows;
#: 1.45 s vs FISTA 31 s at 20000 rows; at 500 rows (more coefficients than rows) 0.45 s,
#: where the sample-space steps take 0.07 s and DualBarrier 0.10 s. On the issue-3 goal-1 programs
#: ``pmlb_magic`` (19020 x 10, P = 500: 5500 coefficients) and ``uci_protein`` (45730 x
#: 9: 5000) it certifies 1e-4 in 6 steps, 11 s and 13 s on one thread (Gram matrix
#: 4-5 s, one factorisation ~1 s per step), where FISTA needs ~16000 iterations.
AUTO_GRAM_MAX_VARIABLES = 6000
#: ``"auto"`` lets :class:`GramBarrier` factor its Newton systems in sample space
#: (``space="samples"``: Woodbury's identity, an ``n x n`` float64 system per step, for
#: programs with more coefficients ``P (d + 1)`` than samples) up to this many samples,
#: in preference to :class:`DualBarrier` and FISTA. Measured side by side in one run at
#: the estimator defaults (``benchmarks/results/solver_choice.md``, column
#: gram_samples; tol 1e-3): uci_pol (P (d+1) = 5400) 0.09 / 0.24 / 1.20 / 3.04 s at
#: 500 / 1000 / 2000 / 3000 rows vs DualBarrier 0.15 / 0.50 / 3.13 s and FISTA 0.93 /
#: 1.47 / 2.86 / 5.89 s; at 4000 rows 6.7 s vs FISTA 5.7 s (9.5 vs 11.1 s at tol 1e-5),
#: at 5000 rows 10.7 s vs 7.2 s (its n^3 factorisation). Sample space is the only
#: interior-point option where ``P (d + 1)`` exceeds the coefficient limit, where
#: FISTA's iterations cost more (they grow with ``P (d + 1)``), hence the limit of 4000. On
#: issue 3's goal-1 programs (P = 500): breast_cancer 0.34 s (9 steps, gap 1.1e-5) vs
#: DualBarrier 0.30 s (29 steps, 3.7e-5), digits (1797 x 64, 10 outputs) 21.2 s (9
#: steps per output, 1.9e-5) vs 28.2 s (29, 3.8e-5).
AUTO_GRAM_MAX_SAMPLES = 4000
#: ``"auto"`` uses :class:`ConeBarrier` for the cone-constrained programs (ReLU, leaky
#: ReLU, abs) with the squared loss up to this many samples; measured at the
#: ConvexMLPRegressor defaults against FISTA (README, "Solver choice"): diabetes (442 x
#: 10) 1.6 s vs 14.8 s, a 1500 x 20 regression 20.3 s vs 37.6 s (2026-12-01; 0.4 vs 5.5 s
#: and 7.0 vs 20.0 s on 2026-12-03, benchmarks/results/relu_solver.md; its steps cost
#: O(n^2 P d)); on the issue-3 goal-2 program (569 x 30, P=500, alpha=1e-3) it certifies
#: 1e-3 in 4.2 s (2026-12-03; 18 s on 2026-12-01) where FISTA had not in 926 s. Beyond,
#: its steps grow as n^3 and their number with n: on protein with P = 200 (2026-12-03,
#: one thread) 1500 rows 4.7 s (37 steps), 3000 rows 31 s (44), 5000 rows 118 s (54),
#: where FISTA certifies the 5000-row program in 74 s (README, goal 3); at the regressor
#: defaults on the 20-feature synthetic regression of relu_solver.py, 2000 rows 13.1 s vs
#: FISTA 15.2 s and 3000 rows 27.5 s vs 14.5 s: the crossover is near 2000 rows.
AUTO_CONE_BARRIER_MAX_SAMPLES = 1500
#: ... or, with more samples, in coefficient space (``ConeBarrier(space="coefficients")``:
#: one ``P (d+1)`` square matrix per step, whatever ``n``) up to this many coefficients per
#: output. Measured 2026-12-03, one thread, tol 1e-3: protein with P = 200 (2000
#: coefficients) 3000 rows 7.6 s (44 steps) vs FISTA 45.7 s and sample space 31.7 s,
#: 5000 rows 14.4 s vs FISTA 74 s; at the regressor defaults on a 3000 x 20 regression
#: (4200 coefficients) 19.6 s vs FISTA 14.5 s.
AUTO_CONE_BARRIER_MAX_COEFFICIENTS = 3000
#: ... and up to this many coefficients per output where there are at least as many
#: samples as coefficients (its step cost hardly grows with ``n``; FISTA's iterations do).
#: Measured 2026-12-03, one thread, tol 1e-3, pmlb_magic (10 features, P = 500: 5500
#: coefficients): 5000 rows 96.9 s (46 steps) vs FISTA 243 s (2410 iterations), 10000 rows
#: 140 s vs 305 s, all 19020 rows 198-240 s vs 614 s (another job on the second core);
#: 150-159 s since ConeBarrier reuses its work arrays (2026-12-04); FISTA 256 s (1550
#: iterations, peak RSS 0.32 GiB against 2.6 GiB) since its cone projector's rounds were
#: vectorised (2026-12-04, the other core busy).
AUTO_CONE_BARRIER_MAX_TALL_COEFFICIENTS = 6000


def _physical_memory() -> int | None:
    """This machine's physical memory in bytes (POSIX ``sysconf``), ``None`` if unknown."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # e.g. Windows
        return None


#: Peak RSS of a coefficient-space :class:`ConeBarrier` solve, in bytes per ``n x 2P``
#: cone entry (its ~10 float64 work arrays of that shape and the data), on top of
#: ``AUTO_CONE_BARRIER_BYTES_PER_SQUARE`` per entry of its ``P (d+1)`` square matrices
#: (``H`` and ``I + L^T H L``, float64 and float32). Measured 2026-12-04: pmlb_magic
#: (19020 x 10, P = 500: 1.9e7 cone entries, 5500 coefficients) 2.82 GiB, uci_protein
#: (45730 x 9: 4.6e7, 5000 coefficients) 5.17 GiB in float64 (a34f495; 6.2 GiB before
#: three of its n x 2P arrays were dropped): 113 bytes per cone entry beyond the squares.
AUTO_CONE_BARRIER_BYTES_PER_ENTRY = 125
AUTO_CONE_BARRIER_BYTES_PER_SQUARE = 24
#: The share of the machine's physical memory that ``"auto"`` lets those arrays take
#: (8 GiB assumed where it is unknown).
AUTO_CONE_BARRIER_MEMORY_FRACTION = 1.0 / 3.0
#: ... and while its dense step arrays stay moderate: the ``n x P (d+1)`` factor ``T``
#: (float32, sample space), the ``2P`` blocks of size ``(d+2)^2`` and the ``n x 2P`` cone
#: arrays (with the square matrices counted in cone entries of the same bytes), in
#: entries; beyond, ``"auto"`` keeps FISTA, whose memory is smaller (both are linear in
#: ``n``). The cone limit is a third of this machine's memory at
#: :data:`AUTO_CONE_BARRIER_BYTES_PER_ENTRY` (8 GiB: 2.3e7 entries; 24 GiB: 6.9e7), fixed
#: when convexnn is imported: where ConeBarrier fits it is much faster than FISTA (magic:
#: 133 s against 256 s; protein: 393 s at a34f495, 84 steps, where pyscnn's augmented
#: Lagrangian took 5737 s for its 1000 iterations). Peak RSS of the coefficient-space solves
#: above at 10000 / 19020 rows (1e7 / 1.9e7 cone entries): 1.7 / 2.7 GiB, FISTA's 0.3 GiB
#: at 10000 rows (2026-12-03).
AUTO_CONE_BARRIER_MAX_ENTRIES = {
    "factor": 60_000_000,
    "blocks": 10_000_000,
    "cone": int(AUTO_CONE_BARRIER_MEMORY_FRACTION * (_physical_memory() or 8 * 2**30)
                / AUTO_CONE_BARRIER_BYTES_PER_ENTRY),
}
#: ... and only for tolerances it reaches reliably: below ~1e-8 relative its path can
#: stall in rounding (seen: 2.4e-8 on a small logistic problem asked for 1e-9).
AUTO_BARRIER_MIN_TOL = 1e-8


def make_solver(spec, cone: bool | None = None, program=None, tol: float | None = None) -> Solver:
    """Turn the estimators' ``solver`` parameter into a :class:`Solver`.

    ``"auto"`` picks, for the gated program (given ``program``) with the squared loss,
    the interior-point method :class:`GramBarrier` while its Newton systems fit in
    coefficient space (``P (d + 1)`` at most :data:`AUTO_GRAM_MAX_VARIABLES`) or in
    sample space (``n_samples`` at most :data:`AUTO_GRAM_MAX_SAMPLES`), in whichever
    is cheaper (:meth:`GramBarrier.space_for`); otherwise (other losses, or where
    neither fits) the sample-space interior-point method :class:`DualBarrier` when it
    handles the program and ``n_samples`` is at most :data:`AUTO_BARRIER_MAX_SAMPLES`
    (logistic loss: 600);
    for the cone-constrained programs with the squared loss, the
    interior-point method :class:`ConeBarrier` up to
    :data:`AUTO_CONE_BARRIER_MAX_SAMPLES` samples or
    :data:`AUTO_CONE_BARRIER_MAX_COEFFICIENTS` coefficients per output
    (:data:`AUTO_CONE_BARRIER_MAX_TALL_COEFFICIENTS` with at least as many samples as
    coefficients; in whichever
    space is cheaper, :meth:`ConeBarrier.space_for`; step arrays within
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
            op = program.operator
            n, P, p = op.n_samples, op.n_patterns, op.n_inputs
            limits = AUTO_CONE_BARRIER_MAX_ENTRIES
            samples = n <= AUTO_CONE_BARRIER_MAX_SAMPLES and n * P * p <= limits["factor"]
            most = (AUTO_CONE_BARRIER_MAX_TALL_COEFFICIENTS if n >= P * p
                    else AUTO_CONE_BARRIER_MAX_COEFFICIENTS)
            # its n x 2P cone arrays and P p square matrices, in cone entries of memory
            footprint = 2 * n * P + (P * p) ** 2 * AUTO_CONE_BARRIER_BYTES_PER_SQUARE / AUTO_CONE_BARRIER_BYTES_PER_ENTRY
            coefficients = P * p <= most and footprint <= limits["cone"]
            cone = ConeBarrier(max_samples=AUTO_CONE_BARRIER_MAX_SAMPLES if samples else 0,
                               max_coefficients=most if coefficients else 0)
            if (2 * P * (p + 1) ** 2 <= limits["blocks"] and (samples or coefficients)
                    and cone.supports(program) is None):
                return cone
        if program is not None and not program.has_cone and not tight:
            barrier = DualBarrier()
            # squared loss: its Newton systems in whichever space is cheaper
            gram = GramBarrier(max_variables=AUTO_GRAM_MAX_VARIABLES, max_samples=AUTO_GRAM_MAX_SAMPLES)
            if gram.supports(program) is None:
                return gram
            kind = "squared" if isinstance(program.loss, SquaredLoss) else "other"
            n = int((program.sample_weight > 0).sum())
            if n <= AUTO_BARRIER_MAX_SAMPLES[kind] and barrier.supports(program) is None:
                return barrier
        return FISTA()
    if spec == "barrier" and program is not None and program.has_cone:
        # the interior-point method of the cone-constrained programs
        return ConeBarrier()
    if isinstance(spec, str) and spec in SOLVERS:
        return SOLVERS[spec]()
    raise ValueError(
        f"unknown solver {spec!r}; choose 'auto', one of {sorted(SOLVERS)}, or a Solver instance."
    )
