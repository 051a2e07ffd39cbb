r"""Primal-dual interior-point method for the cone-constrained programs (ReLU, leaky, abs).

The cone-constrained program (DESIGN.md §1) with the squared loss, per output column
(the loss, the penalty and the cones all separate over outputs),

.. math::

    \min_{u, b}\; \tfrac12 \sum_i w_i (\mathcal F u + b - y)_i^2
    + \alpha \sum_j \lVert u_j \rVert
    \quad\text{s.t.}\quad g_j = G_j u_j = E_{k(j)} X_a u_j \ge 0,

with blocks :math:`u = (v_1..v_P, w_1..w_P)` and :math:`\mathcal F u = \sum_k S_k X_a
(v_k - w_k)`, is written with one epigraph variable per block as the conic program

.. math::

    \min_{u, t}\; \tfrac12 r^\top M r + \alpha \sum_j t_j
    \quad\text{s.t.}\quad G_j u_j \ge 0,\quad x_j = (t_j, u_j) \in \mathcal Q,

where the intercept is eliminated (:math:`r = \mathcal F u - y`, :math:`M = C^\top W C`,
:math:`C = I - \mathbf 1 w^\top` centres the weighted residual; weights sum to one) and
:math:`\mathcal Q` is the second-order cone. Mehrotra's predictor-corrector method runs
on its KKT conditions with the cone multipliers :math:`\lambda_j \in \mathbb R^n_+` and
the epigraph multipliers :math:`z_j \in \mathcal Q`, Nesterov-Todd scaled
(:func:`_nt_scaling`; as in CVXOPT's cone solvers). Stationarity in ``t`` reads
:math:`z_{j0} = \alpha` and in ``u`` :math:`\bar z_j = \mathcal F_j^\top\theta -
G_j^\top\lambda_j`, so :math:`z_j \in \mathcal Q` is exactly the dual constraint
:math:`\lVert \mathcal F_j^\top\theta - G_j^\top\lambda_j\rVert \le \alpha`.

**The Newton system.** Eliminating :math:`d\lambda` and :math:`dz` leaves

.. math::

    \big(D + \mathcal F^\top M \mathcal F\big)\, d(u, t) = r, \qquad
    D_j = \begin{bmatrix} X_a^\top \operatorname{diag}(\lambda_j / g_j) X_a & 0\\
    0 & 0\end{bmatrix} + W_j^2,

a block-diagonal matrix of ``2P`` blocks of size ``d + 2`` plus a term of rank at most
``n``. With :math:`M = R R^\top`, :math:`R = C^\top W^{1/2}`, Woodbury solves it through
the ``n x n`` matrix

.. math::

    N = I + R^\top K R, \qquad K = \mathcal F D^{-1} \mathcal F^\top
    = \sum_k S_k X_a (A_{v_k} + A_{w_k}) X_a^\top S_k ,

(:math:`A_j` the ``u``-block of :math:`D_j^{-1}`), formed as :math:`T T^\top` with
:math:`T = [S_k X_a L_k]_k`, :math:`L_k L_k^\top = A_{v_k} + A_{w_k}`; the block
curvatures of all ``2P`` blocks are one product :math:`(\lambda/g)^\top (X_a \otimes
X_a)`. A step costs :math:`O(n^2 P d + n^3)` (factored once, solved twice), against the
thousands of cone projections first-order methods need on the same program.

**Start.** ``v_k = w_k`` at the analytic centre of the cone of pattern ``k`` (a batched
Newton solve; a gate through a data point is interior but next to the boundary), so that
:math:`\mathcal F u = 0` (the constant model), scaled to the central path of
:math:`\mu_0 = 0.3\, J_0 / (2P(n+2))` (``MU0_FRACTION``), with :math:`\lambda = \mu_0/g` and :math:`z = \mu_0 x^{-1}`.

**Certificates.** Every iterate is strictly feasible, so every iterate is a valid
network; the returned one is the best seen. The dual point is the loss gradient
:math:`\theta = W C r` with the multiplier iterate :math:`\lambda`, scaled onto the dual
feasible set (for each column on its own, as the constraints separate); once that gap is
within ``refine_from * tol``, the exact cone dual norms of the same :math:`\theta` (cone
projections, :func:`~convexnn.certificates.cone_dual_norms`) are tried too, where the
multiplier iterate leaves :math:`\theta` infeasible and where they can end the solve (the
dual value of the unscaled :math:`\theta`, the most any multipliers give, meets the
tolerance; the projections cost about two steps). The solver
stops on the certified gap, never on an iteration count alone. Interior iterates keep
every block nonzero (at norms of order :math:`\mu`); the returned network drops the
blocks below a threshold for which the certified gap still holds (:meth:`ConeBarrier._prune`).

Scope: the cone-constrained programs with the squared loss, one group per block and
output (:class:`~convexnn.penalties.ColumnGroupL2`, or the nuclear norm with one output),
and at most ``max_samples`` samples in sample space (the ``n x n`` matrix and the
``n x P (d+1)`` factor are dense) or at most ``max_coefficients`` coefficients ``P (d+1)``
per output in coefficient space (:meth:`ConeBarrier._factor_coefficients`: the same
Newton systems through one ``P (d+1)`` square matrix per step, after the Gram matrix
:math:`H = A^\top M A` of the pattern blocks, :math:`A = [S_k X_a]_k`, formed once).
Several outputs are separate problems, solved in lock-step so that progress reports the
whole objective.

Measured (``benchmarks/results/speed.md``, goal 2 of issue 3): see the README.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve

from ..certificates import DualPoint, cone_dual_norms, dual_value
from ..losses import SquaredLoss
from ..programs import ConvexProgram
from ._soc import _bmv, _in_soc, _jdiv, _jinv, _jprod, _lower_inverse, _nt_scaling, _soc_step
from .base import (
    History,
    ProgressPrinter,
    Solution,
    Solver,
    group_per_block_and_output,
    prune_blocks,
    woodbury_matrix,
    woodbury_middle,
)

__all__ = ["ConeBarrier"]

#: the path starts on the central path of mu0 = MU0_FRACTION * J0 / nu (J0 the constant
#: model's objective, nu the barrier parameter). Measured on six ReLU programs (the
#: goal-2 program of issue 3 at tol 1e-3 and 1e-5, breast cancer with P = 100 and 200,
#: two regressions): 0.3 took 25 / 30 steps on the goal-2 program where 1 took 28 / 36,
#: and never more steps on the others (0.1: no better than 1 on the goal-2 program);
#: then on three unseen ones (400-row breast cancer subsets, 150 random gates, alpha
#: 1e-3..3e-3, tol 1e-5): 23-25 steps where the previous version took 27-28. Seen
#: against it: on a tiny 2-output program (23 rows, 3 patterns) at tol 1e-7, one output's
#: complementarity runs ahead of its dual residual and the path plateaus at a 3e-6 gap
#: (float64 sample space 35 steps instead of 15, coefficient space 20 instead of 10;
#: default settings 12 instead of 11); a floor on the centring target tied to the
#: residual fixed that case at one setting and stalled another, so none is used
MU0_FRACTION = 0.3

#: float32 products of K (refined solves) while the gap exceeds this many ``tol``; the
#: last steps in float64. 10 rather than 100: the same steps on the goal-2 program of
#: issue 3 and on four other ReLU programs (tol 1e-3 and 1e-5), 1-4 % less time
SINGLE_UNTIL = 10.0

#: ... and in coefficient space (its float32 factor, refined) while the relative gap is
#: also above this: closer, float32 steps could stall (seen on small programs asked for
#: 1e-7: gaps stuck at 1e-6 - 6e-6 for hundreds of steps)
SINGLE_FLOOR = 1e-4

#: patterns per chunk of the float64 product K = T T^T (module docstring)
K_CHUNK = 64

#: patterns per band of rows of the coefficient-space matrix L^T H L
LHL_CHUNK = 16

#: refinements of each coefficient-space solve with the float32 factor against the
#: float64 matrix (each a product with the ``P p`` square H)
REFINEMENTS = 2

#: once the gap is within this many ``tol``, each step's best point is also pruned
#: (:func:`~convexnn.solvers.base.prune_blocks`, ~20 objective evaluations, a few percent
#: of a step), which can certify a step earlier (goal-2 program of issue 3: 28 steps, not 29)
PRUNE_FROM = 10.0


@dataclass
class _Context:
    """What every step of a solve shares: data, weights and the products."""

    alpha: float
    w: np.ndarray
    Xa: np.ndarray
    Sd: np.ndarray
    Ed: np.ndarray  # (n, P) signs of E_k, shared by both blocks of pattern k
    Z2: "_RowProducts"
    forward: object
    adjoint: object
    centred: object
    P: int
    active: np.ndarray | None = None
    Xa32: np.ndarray | None = None  # float32 copies for the float32 products of K
    Sd32: np.ndarray | None = None
    # coefficient space: the centred weighted Gram matrix H = A^T C^T W C A, (P p, P p)
    H: np.ndarray | None = None
    H32: np.ndarray | None = None  # its float32 copy (the float32 steps' factorizations)
    # the step's work arrays: n x 2P ones, the coefficient space's m x m matrices, and
    # the factor T of K (n x P (d+1), or a chunk of it; 6.5 -> 5.1 ms per product at the
    # issue-3 goal-2 size when reused, measured alone)
    scratch: _Scratch | None = None


@dataclass
class _Column:
    """State of one output column: the strictly interior iterate and its bounds."""

    j: int
    U: np.ndarray  # (B, p) blocks u_j
    t: np.ndarray  # (B,) epigraph variables, t_j > |u_j| on the active blocks
    mu: float  # complementarity target of the last step
    lam: np.ndarray | None = None  # multipliers of G_j u_j >= 0, (n, m) on active blocks
    zsoc: np.ndarray | None = None  # epigraph multipliers z_j in the cone, (m, p + 1)
    primal: float = np.inf
    dual: float = -np.inf
    best_U: np.ndarray | None = None
    theta: np.ndarray | None = None  # best dual point (scaled, dual feasible), (n,)
    theta_lam: np.ndarray | None = None  # its cone multipliers (n, B), if it has them
    projector: object = None  # warm cone projector for the exact dual norms
    exact: bool = False  # float64 steps from now on (a float32 step failed to move)
    products: tuple | None = None  # (F u, G u) of the current U, kept by the step
    step: float = 1.0  # length of the last step taken
    done: bool = False


def _apply_signs(values: np.ndarray, Ed: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``values`` (``(n, 2P)``: the ``v`` blocks, then the ``w`` blocks) times the signs
    ``Ed`` (``(n, P)``) of each block's pattern, into ``out`` (which may be ``values``):
    the ``n x 2P`` sign matrix is never formed."""
    P = Ed.shape[1]
    np.multiply(values[:, :P], Ed, out=out[:, :P])
    np.multiply(values[:, P:], Ed, out=out[:, P:])
    return out


def _pair_products(lam, dlam, g, dg, step: float, rows: int = 256) -> float:
    r""":math:`\sum (\lambda + a\, d\lambda) \circ (g + a\, dg)` over ``(n, m)`` arrays,
    a band of ``rows`` rows at a time (no ``n x m`` temporaries). Not expanded into
    :math:`\lambda^\top g + a(\ldots) + a^2 d\lambda^\top dg`: at the affine step the
    linear terms cancel :math:`\lambda^\top g` (that is the predictor's equation), and
    the expanded sum loses the small remainder the centring parameter is made of (seen:
    a path stalled at 1.8e-7 where tol was 1e-7)."""
    total = 0.0
    for lo in range(0, lam.shape[0], rows):
        band = slice(lo, lo + rows)
        total += float(np.einsum("nb,nb->", lam[band] + step * dlam[band], g[band] + step * dg[band]))
    return total


def _on_all_blocks(values: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Columns ``values`` of the active blocks as an ``(n, 2P)`` array, zero on the
    others (``values`` itself, no copy, when every block is active)."""
    if active.all():
        return values
    out = np.zeros((values.shape[0], active.size))
    out[:, active] = values
    return out


class _Scratch:
    """Work arrays reused by name across the steps of a solve.

    A step handles some twenty ``n x 2P`` arrays (the cone values, multipliers and
    their directions). Fresh arrays of that size are mapped and faulted in by the
    operating system on every allocation, which costs more than the arithmetic on
    them: on the issue-3 goal-2 problem pmlb_magic (19020 x 1000 blocks, 152 MB per
    array) a fresh ``dga / ga`` took 350 ms where the same division into a reused
    array took 17-25 ms. The storage held under a name is reused while it is large
    enough (and of the dtype asked for).
    """

    def __init__(self):
        self._arrays: dict[str, np.ndarray] = {}  # flat, C-contiguous

    def get(self, name: str, shape: tuple, dtype=np.float64) -> np.ndarray:
        """A C-contiguous array of ``shape`` and ``dtype`` (uninitialised) in the storage
        held under ``name``: a view of its start, so smaller shapes reuse it too."""
        size = int(np.prod(shape))
        a = self._arrays.get(name)
        if a is None or a.size < size or a.dtype != dtype:
            a = self._arrays[name] = np.empty(size, dtype=dtype)
        return a[:size].reshape(shape)

    def give(self, name: str, array: np.ndarray) -> None:
        """Hold ``array`` (C-contiguous, no longer used by its owner) under ``name``."""
        self._arrays[name] = array.reshape(-1)


class _RowProducts:
    r"""The rows of :math:`X_a \otimes X_a`, upper triangle only: for weights
    :math:`c_{ij}`, every block curvature :math:`X_a^\top \operatorname{diag}(c_{:j})
    X_a` is one product :math:`c^\top Z` (half the work of the full ``p x p`` rows,
    unpacked by index)."""

    def __init__(self, Xa: np.ndarray):
        n, p = Xa.shape
        rows, cols = np.triu_indices(p)
        self.Z = Xa[:, rows] * Xa[:, cols]  # (n, p (p + 1) / 2)
        index = np.empty((p, p), dtype=np.intp)
        index[rows, cols] = np.arange(rows.size)
        index[cols, rows] = np.arange(rows.size)
        self.index = index

    def grams(self, c: np.ndarray) -> np.ndarray:
        r""":math:`X_a^\top \operatorname{diag}(c_{:j}) X_a` for every column ``j`` of
        ``c`` (shape ``(n, m)``), shape ``(m, p, p)``."""
        return (c.T @ self.Z)[:, self.index]


class ConeBarrier(Solver):
    """Primal-dual interior-point method for the cone-constrained program (squared loss).

    Parameters
    ----------
    max_samples : int, default=2000
        Largest number of samples of the sample space: each step forms and factors an
        ``n_samples x n_samples`` matrix and an ``n_samples x P (d+1)`` factor.
    space : {"auto", "samples", "coefficients"}, default="auto"
        Where the Newton systems are solved (module docstring); ``"auto"``: the cheaper
        of those within their limits (:meth:`space_for`).
    max_coefficients : int, default=6000
        Largest ``P (d+1)`` of the coefficient space (each step factors a dense matrix of
        that order, float64).
    refine_from : float, default=30.0
        The exact cone dual norms (cone projections) are computed once the gap of the
        multiplier iterate is below ``refine_from * tol`` relative, and only where the
        multiplier iterate's own dual norm exceeds ``alpha`` (below it the dual scale is
        1 either way) and the unscaled dual value would meet ``tol`` (or the path ends).
    step_fraction : float, default=0.99
        Fraction of the step to the boundary of the interior that is taken.
    single_precision : bool, default=True
        Form the ``n x n`` matrix :math:`K` (the step's one :math:`O(n^2 P d)` product) in
        float32, and refine each solve once with the exact float64 products, while the
        gap is above ``10 * tol`` (``SINGLE_UNTIL``); float64 after that, and from the
        first float32 step that fails or moves less than 1 % of the way. Only the steps are affected,
        never the iterates' feasibility or the certificate. In coefficient space, the
        ``P (d+1)`` square matrix is formed and factored in float32 instead (half the
        time of its Cholesky: 0.44 against 0.87 s at 5000 coefficients) while the gap is
        above ``10 * tol`` and above 1e-4 (``SINGLE_FLOOR``), each solve refined twice
        against the float64 matrix, and a step whose refinement does not converge is
        retried in float64 (as are all later ones). Measured (2026-12-04, one thread,
        the other core busy): pmlb_magic at tol 1e-3 133 s (54 steps) against 155 s (53).
    correctors : int, default=0
        Gondzio centrality correctors per step, on the pairs ``(lam_i, g_i)`` of the
        polyhedral cone constraints (each one more solve with the step's factorization,
        kept only while it lengthens the step by at least 0.02). Measured in development
        (2026-12-02, one thread): one corrector takes the issue-3 goal-2 program from 29
        to 25 steps and a 1500 x 20 regression from 36 to 32, at the same wall time (a
        corrector costs about what the saved steps did; on small programs they can also
        cost a step or two). Again on 2026-12-03 (before ``MU0_FRACTION``): 28 -> 24
        steps and 3-5 % less time on the goal-2 program, 6-11 % more on breast cancer
        with P = 100 and on a 1500 x 20 regression, and a corrector tried only on short
        steps stalled at tol 1e-5; so they are off by default.

    Notes
    -----
    ``max_iter`` counts predictor-corrector steps (one per unfinished output column per
    iteration). ``init=(coef, intercept)`` is projected onto the cones and certified
    first: if its gap is within ``tol`` it is returned at once, otherwise it stays a
    candidate (its dual bound counts, and it is returned if the path ends above it).
    The path itself starts from the symmetric interior point: interior-point methods
    gain little from warm starts.
    """

    name = "cone_barrier"
    handles_gated = False
    handles_cone = True
    alternatives = "solver='fista' or 'admm'"

    def __init__(self, max_samples: int = 2000, refine_from: float = 30.0, step_fraction: float = 0.99,
                 single_precision: bool = True, correctors: int = 0, space: str = "auto",
                 max_coefficients: int = 6000):
        self.space = space
        self.max_coefficients = max_coefficients
        self.correctors = correctors
        self.single_precision = single_precision
        self.max_samples = max_samples
        self.refine_from = refine_from
        self.step_fraction = step_fraction

    # -- what it handles -------------------------------------------------------------
    def supports(self, program: ConvexProgram) -> str | None:
        """``None`` if this solver handles ``program``, else the reason it does not."""
        if not program.has_cone:
            return "it solves the cone-constrained programs (ReLU, leaky ReLU, abs) only"
        if not isinstance(program.loss, SquaredLoss):
            return f"the {type(program.loss).__name__} is not the squared loss"
        reason = group_per_block_and_output(program)
        if reason is not None:
            return reason
        n, m = program.operator.n_samples, program.operator.n_patterns * program.operator.n_inputs
        samples = (None if n <= self.max_samples else
                   f"{n} samples exceed max_samples={self.max_samples} (each step factors an "
                   "n_samples x n_samples matrix)")
        coefficients = (None if m <= self.max_coefficients else
                        f"{m} coefficients per output (n_patterns x (n_features + 1)) exceed "
                        f"max_coefficients={self.max_coefficients} (each step factors a matrix of "
                        "that order)")
        if self.space == "samples":
            return samples
        if self.space == "coefficients":
            return coefficients
        if samples is not None and coefficients is not None:
            return f"{samples}, and {coefficients}"
        return None

    def space_for(self, program: ConvexProgram) -> str:
        r"""``"samples"`` or ``"coefficients"``: where the Newton systems are solved.

        Per step, sample space forms :math:`K` (:math:`n^2 P p` multiply-adds) and factors
        the ``n x n`` matrix (:math:`n^3/3`); coefficient space forms :math:`L^\top H L`
        (:math:`2 P^2 p^3`) and factors it (:math:`(Pp)^3/3`), after one Gram matrix
        :math:`H` (:math:`n (Pp)^2 / 2`, counted here over 25 steps). ``"auto"`` takes the
        cheaper of those the limits allow.
        """
        if self.space in ("samples", "coefficients"):
            return self.space
        n, P, p = program.operator.n_samples, program.operator.n_patterns, program.operator.n_inputs
        m = P * p
        if n > self.max_samples:
            return "coefficients"
        if m > self.max_coefficients:
            return "samples"
        samples = n * n * m + n**3 / 3.0
        coefficients = m**3 / 3.0 + 2.0 * P * P * p**3 + n * m * m / 2.0 / 25.0
        return "coefficients" if coefficients < samples else "samples"

    def check(self, program: ConvexProgram) -> None:
        # the limits and the space first: supports() (in super().check) compares with them
        for name in ("max_samples", "max_coefficients"):
            value = getattr(self, name)
            if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0):
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}.")
        if self.space not in ("auto", "samples", "coefficients"):
            raise ValueError(f"space must be 'auto', 'samples' or 'coefficients', got {self.space!r}.")
        super().check(program)
        if not 0.0 < self.step_fraction < 1.0:
            raise ValueError(f"step_fraction must be in (0, 1), got {self.step_fraction!r}.")
        if not (isinstance(self.correctors, (int, np.integer)) and self.correctors >= 0):
            raise ValueError(f"correctors must be a non-negative integer, got {self.correctors!r}.")

    # -- the solve ---------------------------------------------------------------------
    def solve(self, program, *, tol, max_iter, init=None, verbose=0):
        self.check(program)
        with program.exact_products():  # float64 steps whatever the device
            return self._solve(program, tol=tol, max_iter=max_iter, init=init, verbose=verbose)

    def _solve(self, program, *, tol, max_iter, init, verbose):
        op, alpha = program.operator, float(program.alpha)
        Xa = np.asarray(op.gated.Xa, dtype=float)
        n, p = Xa.shape
        P = op.n_patterns
        B = 2 * P
        c = program.n_outputs
        w = np.asarray(program.sample_weight, dtype=float)
        w = w / w.sum()
        Y = np.asarray(program.Y, dtype=float)
        pos = w > 0

        Sd = np.asarray(op.diagonals(), dtype=float)  # (n, P) diagonals of S_k
        Ed = 2.0 * np.asarray(op.masks, dtype=float) - 1.0  # (n, P) signs of E_k
        # rows of X_a (x) X_a: X_a^T diag(d) X_a for every block is one product d^T Z2
        Z2 = _RowProducts(Xa)

        scratch = _Scratch()

        def forward(U, cone: bool = True, fit: bool = True, out=None):
            """``(F u, G u)`` for blocks ``U`` of shape ``(B, p)`` (``G u`` is None
            unless ``cone``, ``F u`` is None unless ``fit``: the solves and the
            objective need ``F u`` only, the step lengths ``G u`` only); ``G u`` is
            written into ``out`` (``(n, B)``) if given."""
            if not cone:
                fit_ = np.matmul(Xa, (U[:P] - U[P:]).T, out=scratch.get("forward", (n, P)))
                return np.einsum("nk,nk->n", Sd, fit_), None
            H = np.matmul(Xa, U.T, out=out)  # (n, B)
            z = None
            if fit:
                diff = np.subtract(H[:, :P], H[:, P:], out=scratch.get("forward", (n, P)))
                z = np.einsum("nk,nk->n", Sd, diff)
            _apply_signs(H, Ed, out=H)
            return z, H

        def adjoint(v):
            r""":math:`\mathcal F^\top v` as blocks ``(B, p)``."""
            G = (Xa.T @ (Sd * v[:, None])).T  # (P, p)
            return np.concatenate([G, -G], axis=0)

        def centred(r):
            return r - w @ r

        ctx = _Context(alpha, w, Xa, Sd, Ed, Z2, forward, adjoint, centred, P, scratch=scratch)
        if self.space_for(program) == "coefficients":
            # H = A^T W A - (A^T w)(A^T w)^T, A = [S_k X_a]_k: the data term of every step
            H = op.gated.block_gram(w, single=False, diagonals=op.diagonals)
            sw = (Xa.T @ (Sd * w[:, None])).T.reshape(-1)  # A^T w, (P p,)
            H -= np.outer(sw, sw)
            ctx.H = np.ascontiguousarray(H)
            del H
        if self.single_precision:
            ctx.Xa32, ctx.Sd32 = Xa.astype(np.float32), Sd.astype(np.float32)
            if ctx.H is not None:
                ctx.H32 = ctx.H.astype(np.float32)

        # -- start: v_k = w_k at the analytic centre of cone k (F u = 0) ---------------------
        gates = np.asarray(op.gated.gates, dtype=float)  # (p, P)
        G0 = (Xa @ gates) * Ed  # |X_a g_k| >= 0
        interior = G0.min(axis=0) > 1e-9 * np.maximum(G0.max(axis=0), 1e-300)
        dirs = (gates / np.maximum(np.linalg.norm(gates, axis=0), 1e-300)).T  # (P, p)
        if not interior.all():
            dirs[~interior] = self._interior_directions(Xa, Ed[:, ~interior])
        usable = np.linalg.norm(dirs, axis=1) > 0  # patterns whose cone has an interior
        dirs[usable] = self._analytic_centres(Xa, Ed[:, usable], Z2, dirs[usable])
        active = np.concatenate([usable, usable])  # blocks in the problem (others stay 0)
        ctx.active = active
        # at the scale of the central path of mu0 = MU0_FRACTION J0 / nu: each block's n + 2 barrier
        # terms balance its penalty, alpha |u| ~ mu (n + 2); t solves alpha = 2 mu t / s
        nu = max(int(active.sum()), 1) * (n + 2)
        cols = []
        for j in range(c):
            mu = MU0_FRACTION * max(0.5 * float(w @ centred(Y[:, j]) ** 2), 1e-300) / nu
            eps = mu * (n + 2) / alpha
            U = np.zeros((B, p))
            U[:P] = eps * dirs
            U[P:] = eps * dirs
            U[~active] = 0.0
            t = np.where(active, (mu + np.sqrt(mu * mu + alpha * alpha * eps * eps)) / alpha, 0.0)
            cols.append(_Column(j, U, t, mu))

        history = History()
        progress = ProgressPrinter(verbose, self.name, max_iter=max_iter, tol=tol)
        start = self._init_candidate(program, init) if init is not None else None

        def certify_column(col, refine: bool, final: bool = False):
            """Primal value of the iterate and the best dual bound of column ``col.j``."""
            y = Y[:, col.j]
            U = col.U
            z, g = col.products if col.products is not None else forward(U)
            rc = centred(z - y)
            primal = 0.5 * float(w @ rc**2) + alpha * float(np.linalg.norm(U, axis=1).sum())
            theta = w * rc  # loss gradient (sums to zero: the intercept is optimal)
            lam = _on_all_blocks(col.lam if col.lam is not None else col.mu / g[:, active], active)
            # || F_j^T theta - G_j^T lam_j ||, with the multiplier iterate
            signed = _apply_signs(lam, Ed, out=scratch.get("a", (n, B)))
            worst = float(np.linalg.norm(adjoint(theta) - (Xa.T @ signed).T, axis=1).max(initial=0.0))
            # exact dual norms (the best cone multipliers for this theta) can only
            # help where the multiplier iterate's norm exceeds alpha: below it the
            # scale is 1 either way. The projections cost more than a step, so they
            # are computed only where they can end the solve: where the unscaled
            # theta's dual value (the most any multipliers can give) meets the
            # tolerance, or for the path's last point
            def dual_at(th):
                return -float(np.sum(th[pos] ** 2 / (2.0 * w[pos]) + th[pos] * y[pos]))

            best_primal = min(primal, col.primal)
            useful = final or best_primal - dual_at(theta) <= tol * abs(best_primal)
            if refine and worst > alpha and useful:
                if col.projector is None:
                    col.projector = program.cone_projector()
                exact = self._exact_worst(program, col.j, theta, c, col.projector)
                if exact < worst:
                    worst, lam = exact, None
            s = 1.0 if worst <= alpha else alpha / worst
            th = s * theta
            dual = dual_at(th)
            if primal < col.primal:
                col.primal, col.best_U = primal, U.copy()
            if dual > col.dual:  # stored scaled: dual feasible column by column
                col.dual, col.theta = dual, th
                if lam is None:
                    col.theta_lam = None
                else:  # into the column's own work array (see _Scratch)
                    col.theta_lam = np.multiply(lam, s, out=scratch.get(f"theta_lam{col.j}", lam.shape))

        def bounds():
            primal = sum(col.primal for col in cols)
            dual = sum(col.dual for col in cols)
            if start is not None:
                dual = max(dual, start["dual"])
            return primal, dual

        def finish(prune: bool = False):
            if prune:
                for col in cols:
                    self._prune(col, Y[:, col.j], w, alpha, forward, centred, tol)
            coef, b = self._assemble(cols, Y, w, forward, B, p, c)
            points = [self._dual_point(cols, n, B, c)]
            primal = sum(col.primal for col in cols)
            if start is not None:
                points.append(start["point"])
                if start["primal"] < primal:
                    coef, b = start["coef"], start["intercept"]
            return coef, b, points

        def report(it):
            primal, dual = bounds()
            if start is not None:
                primal = min(primal, start["primal"])
            history.record(it, progress.elapsed(), primal, dual)
            progress(it, primal, dual)
            coef, b, points = finish()
            progress.snapshot(coef, b, points, iteration=it, objective=primal)
            return primal, dual

        if start is not None and start["primal"] - start["dual"] <= tol * abs(start["primal"]):
            history.record(0, progress.elapsed(), start["primal"], start["dual"])
            progress.close()
            return Solution(start["coef"], start["intercept"], [start["point"]], 0,
                            [], history)
        for col in cols:
            certify_column(col, refine=False)
        primal, dual = report(0)
        it = 0
        curve: list[float] = []  # the objective after each step (the start is not a step)
        while primal - dual > tol * abs(primal) and it < max_iter:
            it += 1
            for col in cols:
                if col.done:
                    continue
                # float32 products while far from the tolerance (and while they work);
                # float64 for the last steps, whose directions must match the gap asked for
                until = SINGLE_UNTIL * tol if ctx.H is None else max(SINGLE_UNTIL * tol, SINGLE_FLOOR)
                single = (self.single_precision and not col.exact
                          and col.primal - col.dual > until * abs(col.primal))
                moved = self._safe_step(col, ctx, Y[:, col.j], single)
                if not moved and single:  # float32 rounding (N indefinite, or no progress)
                    col.exact = True
                    moved = self._safe_step(col, ctx, Y[:, col.j], False)
                elif single and col.step < 0.01 and ctx.H is None:
                    # a float32 sample-space direction that barely moves (its K's rounding;
                    # the coefficient space's refined solves check themselves, and its
                    # first steps are short in any precision)
                    col.exact = True
                rel = (col.primal - col.dual) / max(abs(col.primal), 1e-300)
                certify_column(col, refine=rel <= self.refine_from * tol or not moved, final=not moved)
                if moved and col.primal - col.dual <= PRUNE_FROM * tol * abs(col.primal):
                    # the dust blocks of the interior point cost about mu per block: the
                    # pruned best point may already certify (prune_blocks keeps it only then)
                    self._prune(col, Y[:, col.j], w, alpha, forward, centred, tol)
                col.done = col.primal - col.dual <= tol * abs(col.primal) or not moved
            primal, dual = report(it)
            curve.append(primal)
            if all(col.done for col in cols):
                break
        progress.close()
        coef, b, points = finish(prune=True)
        primal, dual = bounds()
        if primal < history.primal[-1]:  # pruning lowered the returned network's objective
            history.primal[-1] = primal  # (the last check's record is the returned network)
            if curve:
                curve[-1] = primal
        return Solution(coef, b, points, it, curve, history)

    def _safe_step(self, col: _Column, ctx: "_Context", y: np.ndarray, single: bool) -> bool:
        """:meth:`_step`, ``False`` where rounding makes a factorization fail."""
        try:
            return self._step(col, ctx, y, single=single)
        except np.linalg.LinAlgError:
            return False

    # -- one predictor-corrector step ------------------------------------------------------
    def _step(self, col: _Column, ctx: "_Context", y: np.ndarray, single: bool = False) -> bool:
        r"""One Mehrotra predictor-corrector step with Nesterov-Todd scaling of the
        epigraph cones; ``False`` if the iterate could not move.

        Unknowns: the blocks ``x_j = (t_j, u_j)`` in the second-order cone, the cone
        multipliers :math:`\lambda_j \ge 0` of :math:`G_j u_j \ge 0`, and the epigraph
        multipliers :math:`z_j = (z_{j0}, \bar z_j)` in the second-order cone. The KKT
        conditions are :math:`z_{j0} = \alpha`, :math:`\bar z_j = \mathcal F_j^\top\theta
        - G_j^\top\lambda_j` (so :math:`z_j` in the cone is exactly dual feasibility),
        :math:`\lambda_j g_j = 0` and :math:`x_j \circ z_j = 0` (Jordan product).
        Eliminating :math:`d\lambda` and :math:`dz` through the scaling :math:`W_j`
        (:math:`W_j x_j = W_j^{-1} z_j`) leaves the block matrices
        :math:`X_a^\top \operatorname{diag}(\lambda_j/g_j) X_a + W_j^2` of the module
        docstring's system.
        """
        Xa, w, alpha, active = ctx.Xa, ctx.w, ctx.alpha, ctx.active
        forward, adjoint, Ed = ctx.forward, ctx.adjoint, ctx.Ed
        U, t = col.U, col.t
        B, p = U.shape
        n = Xa.shape[0]
        a_idx = np.flatnonzero(active)
        m = a_idx.size
        # the active blocks as a slice when all are (views, not n x 2P copies)
        sel = slice(None) if m == B else a_idx
        z, g = col.products if col.products is not None else forward(U)
        ga = g[:, sel]
        x = np.concatenate([t[sel, None], U[sel]], axis=1)  # (m, q): (t, u)
        if col.lam is None:  # start on the central path of mu: lam g = mu, x o z = mu e
            col.lam = col.mu / ga
            col.zsoc = col.mu * _jinv(x)  # the SOC multipliers z_j (x o z = mu e)
        lam, zs = col.lam, col.zsoc
        theta = w * ctx.centred(z - y)
        comp = float(np.einsum("nb,nb->", lam, ga)) + float(np.einsum("mq,mq->", x, zs))
        mu = comp / (m * (n + 1))  # SOC degree 1

        W, Winv, W2 = _nt_scaling(x, zs, square=True)
        lt = _bmv(W, x)  # scaled point W x = W^{-1} z
        # blocks in (u, t) order for the linear algebra (slices: fancy indexing of
        # these (m, q, q) stacks costs as much as the scaling itself)
        D = np.empty_like(W2)
        D[:, :p, :p] = W2[:, 1:, 1:]
        D[:, :p, p] = W2[:, 1:, 0]
        D[:, p, :p] = W2[:, 0, 1:]
        D[:, p, p] = W2[:, 0, 0]
        # (float64 products: float32 ones of these curvatures, whose weights lam / g
        # span many decades, make blocks near the boundary singular in rounding)
        scratch = ctx.scratch
        D[:, :p, :p] += ctx.Z2.grams(np.divide(lam, ga, out=scratch.get("a", ga.shape)))
        solve = (self._factor(D, ctx, B, p, single=single) if ctx.H is None
                 else self._factor_coefficients(D, ctx, B, p, single=single))
        gradf = adjoint(theta)

        def direction(target, corr_g, corr_s, refine=True, slot="0"):
            # the n x m arrays go to the scratch arrays of ``slot`` (dga, dlam; the
            # returned direction holds them until that slot is asked for again)
            # complementarity rows, scaled: W dx + W^{-1} dz = lt \ (target e - lt o lt - corr_s)
            rhs_s = -_jprod(lt, lt) - corr_s
            rhs_s[:, 0] += target
            rs = _jdiv(lt, rhs_s)
            Wrs = _bmv(W, rs)
            tg = scratch.get("tg", ga.shape)  # (target - corr_g) / ga, (m active columns)
            np.subtract(target, corr_g, out=tg)
            tg /= ga
            # u rows: -(grad f - G^T lam - zbar) + G^T((target - lam g - corr)/g) + [W rs]_u
            #       = -grad f + zbar + G^T((target - corr)/g) + [W rs]_u
            signed = _apply_signs(_on_all_blocks(tg, active), Ed, out=scratch.get("a", (n, B)))
            RU = -gradf + (Xa.T @ signed).T
            if m < B:
                RU[~active] = 0.0
            RU[sel] += zs[:, 1:] + Wrs[:, 1:]
            Rt = np.zeros(B)
            Rt[sel] = -(alpha - zs[:, 0]) + Wrs[:, 0]
            dU, dt = solve(RU, Rt, refine=refine)
            dga = forward(dU, fit=False, out=scratch.get("dga" + slot, (n, B)))[1][:, sel]
            dx = np.concatenate([dt[sel, None], dU[sel]], axis=1)
            dz = Wrs - _bmv(W2, dx)  # W (rs - W dx)
            # in place: dlam = (target - corr - lam g - lam dg) / g = tg - lam (1 + dg / g)
            dlam = np.divide(dga, ga, out=scratch.get("dlam" + slot, ga.shape))
            dlam += 1.0
            dlam *= lam
            np.subtract(tg, dlam, out=dlam)
            return dU, dt, dx, dga, dlam, dz

        def ratio(v, dv) -> float:
            # the largest step keeping v + a dv > 0, v > 0: 1 / max(-dv / v) (one
            # division and one reduction; masks and boolean indexing of these n x 2P
            # arrays cost more than the step's products)
            worst = float(np.min(np.divide(dv, v, out=scratch.get("a", v.shape))))
            return -1.0 / worst if worst < 0 else np.inf

        def max_step(dU, dt, dx, dga, dlam, dz) -> float:
            return min(ratio(ga, dga), ratio(lam, dlam), _soc_step(x, dx), _soc_step(zs, dz))

        # the predictor only sets the centring and the second-order terms: no refinement
        aff = direction(0.0, 0.0, 0.0, refine=False)
        a_aff = min(1.0, max_step(*aff))
        _, _, dx, dga, dlam, dz = aff
        # the second-order term of the cone pairs, dlam dg. Without correctors it goes
        # into the array the corrector's direction divides in place, (target - corr) / g
        # (one n x 2P array fewer: the cone arrays bound the problems ConeBarrier takes)
        corr_g = np.multiply(dlam, dga, out=scratch.get("tg" if self.correctors == 0 else "corr", lam.shape))
        comp_aff = _pair_products(lam, dlam, ga, dga, a_aff) + float(
            np.einsum("mq,mq->", x + a_aff * dx, zs + a_aff * dz))
        sigma = min(1.0, (comp_aff / max(comp, 1e-300)) ** 3)
        corr_s = _jprod(_bmv(Winv, dz), _bmv(W, dx))
        target = sigma * mu
        # the predictor's arrays are spent: the corrector reuses its slot
        slot = "0"
        best = direction(target, corr_g, corr_s, slot=slot)
        a_best = max_step(*best)
        # Gondzio's centrality correctors on the polyhedral pairs (lam_i, g_i), which
        # limit most steps: aim at a longer step, push the products lam_i g_i of that
        # trial point back into [0.1, 10] sigma mu, and keep the corrected direction
        # while it lengthens the step (one more solve each, same factorization)
        for _ in range(self.correctors):
            trial = min(1.0, a_best + 0.2)
            _, _, _, dga_c, dlam_c, _ = best
            v = (lam + trial * dlam_c) * (ga + trial * dga_c)
            push = np.clip(v, 0.1 * target, 10.0 * target) - v
            np.maximum(push, -10.0 * target, out=push)  # large products: cap the cut
            other = "1" if slot == "0" else "0"  # best keeps its slot's arrays
            cand = direction(target, corr_g - push, corr_s, slot=other)
            a_c = max_step(*cand)
            if a_c < a_best + 0.02:  # under a tenth of the aspiration: stop
                break
            best, a_best, corr_g, slot = cand, a_c, corr_g - push, other
        dU, dt, dx, dga, dlam, dz = best
        step = min(1.0, self.step_fraction * a_best)
        # the boundary roots lose digits in cancellation: check the new point itself,
        # its cone values G u recomputed (on badly scaled data G u + step G du rounds
        # differently), and keep its products for the certificate and the next step
        # (min > 0 rather than (v > 0).all(): no n x m boolean array; both fail on NaN)
        lam_new = scratch.get("lam_new", lam.shape)
        for _ in range(60):
            xn, zn = x + step * dx, zs + step * dz
            if not (_in_soc(xn).all() and _in_soc(zn).all()):
                step *= 0.5
                continue
            g_new = np.multiply(dga, step, out=scratch.get("a", ga.shape))
            g_new += ga
            np.multiply(dlam, step, out=lam_new)
            lam_new += lam
            if g_new.min() > 0 and lam_new.min() > 0:
                Un = U + step * dU
                products = forward(Un, out=scratch.get("g_new", g.shape))
                if products[1][:, sel].min() > 0:
                    break
            step *= 0.5
        else:
            return False
        # the old cone values and multipliers become the next step's work arrays
        scratch.give("g_new", g)
        scratch.give("lam_new", lam)
        col.U, col.products = Un, products
        col.t = t + step * dt
        col.lam = lam_new
        col.zsoc = zs + step * dz
        col.mu = max(sigma * mu, 1e-300)
        col.step = step
        return step > 1e-12

    @staticmethod
    def _factor(D, ctx: "_Context", B: int, p: int, single: bool = False):
        r"""Factor :math:`D + \mathcal F^\top M \mathcal F` (blocks ``D`` on the active
        blocks) once; return ``solve(RU, Rt) -> (dU, dt)`` by Woodbury (module docstring).

        With ``single``, the product :math:`K` is formed in float32 and each solve is
        refined once with the exact float64 products (``solve(..., refine=False)``
        skips that)."""
        a_idx = np.flatnonzero(ctx.active)
        P, w, Xa, Sd = ctx.P, ctx.w, ctx.Xa, ctx.Sd
        forward, adjoint, centred = ctx.forward, ctx.adjoint, ctx.centred
        Dinv, Lk = ConeBarrier._block_inverses(D, a_idx, B, p, P)
        # K = F D^{-1} F^T = T T^T,  T = [S_k X_a L_k],  L_k L_k^T = A_vk + A_wk
        # the one O(n^2 P d) product, in float32 when asked (then refined once below)
        X_, S_ = (ctx.Xa32, ctx.Sd32) if single else (Xa, Sd)
        # X_a [L_1 .. L_P] in one product, already in the (n, P p) layout of T
        # float64 in chunks of patterns, whose factor stays in cache between its product
        # and its Gram (96 -> 85 ms at the goal-2 size; no gain in float32)
        n = Xa.shape[0]
        chunk = P if single else min(P, K_CHUNK)
        L_ = Lk.astype(X_.dtype)
        K = None
        for lo in range(0, P, chunk):
            hi = min(P, lo + chunk)
            T = ctx.scratch.get("T" + X_.dtype.char, (n, (hi - lo) * p), X_.dtype)
            np.matmul(X_, L_[lo:hi].transpose(1, 0, 2).reshape(p, -1), out=T)
            T.reshape(n, hi - lo, p)[...] *= S_[:, lo:hi, None]
            part = T @ T.T
            K = part if K is None else K.__iadd__(part)
        K = K.astype(np.float64, copy=False)
        # N = I + R^T K R with R = C^T W^{1/2}:  R^T K R = W^{1/2} C K C^T W^{1/2}
        N = woodbury_matrix(K, w)
        try:
            factor = cho_factor(N, lower=True, check_finite=False)
        except LinAlgError:  # pragma: no cover - N >= I in exact arithmetic
            factor = cho_factor(N + 1e-12 * np.eye(N.shape[0]), lower=True, check_finite=False)

        def apply_dinv(RU, Rt):
            out = _bmv(Dinv, np.concatenate([RU, Rt[:, None]], axis=1))
            return out[:, :p], out[:, p]

        def woodbury(RU, Rt):
            aU, at = apply_dinv(RU, Rt)
            q, _ = forward(aU, cone=False)
            v = woodbury_middle(factor, q, w)
            cU, ct = apply_dinv(adjoint(v), np.zeros(B))
            return aU - cU, at - ct

        def apply_H(dU, dt):
            """:math:`(D + \\mathcal F^\\top M \\mathcal F)` times ``(dU, dt)`` exactly."""
            out = np.zeros((B, p + 1))
            out[a_idx] = _bmv(D, np.concatenate([dU[a_idx], dt[a_idx, None]], axis=1))
            out[:, :p] += adjoint(w * centred(forward(dU, cone=False)[0]))
            return out[:, :p], out[:, p]

        def solve(RU, Rt, refine=True):
            dU, dt = woodbury(RU, Rt)
            if single and refine:  # one step of iterative refinement with the exact products
                HU, Ht = apply_H(dU, dt)
                eU, et = woodbury(RU - HU, Rt - Ht)
                dU, dt = dU + eU, dt + et
            return dU, dt

        return solve

    @staticmethod
    def _block_inverses(D, a_idx, B: int, p: int, P: int):
        r"""The inverse blocks :math:`D_j^{-1}` (``(B, p + 1, p + 1)``, zero on inactive
        blocks) and, per pattern, the Cholesky factor :math:`L_k` of :math:`A_k =
        [D_{v_k}^{-1}]_{uu} + [D_{w_k}^{-1}]_{uu}` (``(P, p, p)``), shared by both spaces."""
        # Jacobi scaling first: entries reach lam/g ~ 1/g^2 near the cone boundaries, and
        # an unscaled Cholesky of such a block loses its positive definiteness in rounding
        sc = 1.0 / np.sqrt(np.einsum("bii->bi", D))
        Ds = sc[:, :, None] * sc[:, None, :]
        Ds *= D
        try:
            Linv = _lower_inverse(np.linalg.cholesky(Ds)) * sc[:, None, :]  # L^{-1} S
        except np.linalg.LinAlgError:
            # a block dominated by a few rows can lose its smallest eigenvalues in
            # rounding: clip them (the step stays a descent direction)
            ev, Q = np.linalg.eigh(Ds)
            ev = np.maximum(ev, 1e-13 * ev[:, -1:])
            Linv = (Q / np.sqrt(ev)[:, None, :]).transpose(0, 2, 1) * sc[:, None, :]
        inv_active = np.matmul(Linv.transpose(0, 2, 1), Linv)  # S (S D S)^{-1} S = D^{-1}
        if a_idx.size == B:
            Dinv = inv_active
        else:
            Dinv = np.zeros((B, p + 1, p + 1))
            Dinv[a_idx] = inv_active
        A = Dinv[:P, :p, :p] + Dinv[P:, :p, :p]
        A = 0.5 * (A + A.transpose(0, 2, 1))
        try:  # positive definite unless both blocks of a pattern are frozen
            Lk = np.linalg.cholesky(A)
        except np.linalg.LinAlgError:
            ev, Q = np.linalg.eigh(A)
            Lk = Q * np.sqrt(np.maximum(ev, 0.0))[:, None, :]
        return Dinv, Lk

    @staticmethod
    def _factor_coefficients(D, ctx: "_Context", B: int, p: int, single: bool = False):
        r"""Factor :math:`D + \mathcal F^\top M \mathcal F` in coefficient space; return
        ``solve(RU, Rt) -> (dU, dt)``.

        With :math:`\mathcal F = [A, -A]` on the ``u`` parts and :math:`H = A^\top M A`
        (``ctx.H``), the blocks of pattern ``k`` see the data term only through
        :math:`s_k = du_{v_k} - du_{w_k}`: :math:`x_j = D_j^{-1}(r_j \mp [(H s)_k; 0])`,
        hence :math:`(I + A_{\rm blk} H) s = a` with :math:`A_k = [D_{v_k}^{-1}]_{uu} +
        [D_{w_k}^{-1}]_{uu} = L_k L_k^\top` and :math:`a_k = [D_{v_k}^{-1} r_{v_k}]_u -
        [D_{w_k}^{-1} r_{w_k}]_u`. Woodbury's identity gives :math:`s = a - L (I + L^\top H
        L)^{-1} L^\top H a`: one ``P p x P p`` matrix, at least the identity, factored per
        step, and no inverse of :math:`L` (zero for patterns left out). With ``single``
        it is formed and factored in float32 and every solve with it, unless
        ``solve(..., refine=False)``, refined ``REFINEMENTS`` times against the float64
        matrix (products with ``H``, :math:`O((Pp)^2)`); a refinement that does not
        converge raises ``LinAlgError`` (:meth:`ConeBarrier._safe_step` then retries the
        step in float64).
        """
        a_idx = np.flatnonzero(ctx.active)
        P, H = ctx.P, ctx.H
        m = P * p
        Dinv, Lk = ConeBarrier._block_inverses(D, a_idx, B, p, P)
        dtype = np.float32 if single else np.float64
        H_ = ctx.H32 if single else H
        L_ = Lk.astype(dtype, copy=False)
        # L^T H L block by block: L_k^T on the row blocks of H (a contiguous view), then
        # L_l on the column blocks, a band of LHL_CHUNK patterns' rows at a time (the
        # band's intermediate stays in cache) and only the lower triangle, the one the
        # Cholesky reads; into arrays reused by every step (fresh m x m ones are mapped
        # and faulted in at every step: 0.3-0.6 s at m = 5500 on our machines)
        scratch = ctx.scratch
        LHL = scratch.get("LHL" + np.dtype(dtype).char, (m, m), dtype)
        band = scratch.get("LtH" + np.dtype(dtype).char, (min(P, LHL_CHUNK), p, m), dtype)
        for k0 in range(0, P, LHL_CHUNK):
            k1 = min(P, k0 + LHL_CHUNK)
            rows = slice(k0 * p, k1 * p)
            LtH = np.matmul(L_[k0:k1].transpose(0, 2, 1), H_[rows].reshape(k1 - k0, p, m),
                            out=band[: k1 - k0])
            LtH = LtH.reshape((k1 - k0) * p, m)[:, : k1 * p].reshape(-1, k1, p)
            np.einsum("ilb,lbc->ilc", LtH, L_[:k1], optimize=True,
                      out=LHL[rows, : k1 * p].reshape(-1, k1, p))
        LHL[np.diag_indices_from(LHL)] += 1.0
        # LAPACK factors Fortran-ordered arrays in place: the transpose is one, and its
        # upper triangle is the lower triangle filled above (a C-ordered array would be
        # copied first: 1.28 -> 1.14 s per factorization at m = 5500)
        factor = cho_factor(LHL.T, lower=False, check_finite=False, overwrite_a=True)

        def lt_h(v):
            r""":math:`L^\top H v` for blocks ``v`` (shape ``(P, p)``), flat, float64."""
            return np.einsum("kba,kb->ka", Lk, (H @ v.reshape(m)).reshape(P, p)).reshape(m)

        def middle(rhs, refine):
            r""":math:`(I + L^\top H L)^{-1}` rhs, float64 in and out."""
            if not single:
                return cho_solve(factor, rhs, check_finite=False)
            y = cho_solve(factor, rhs.astype(np.float32), check_finite=False).astype(np.float64)
            sizes = []
            for _ in range(REFINEMENTS if refine else 0):
                resid = rhs - y - lt_h(_bmv(Lk, y.reshape(P, p)))
                correction = cho_solve(factor, resid.astype(np.float32), check_finite=False)
                y += correction
                sizes.append(float(np.linalg.norm(correction)))
            if sizes and (sizes[-1] > 1e-4 * np.linalg.norm(y) or (len(sizes) > 1 and sizes[-1] > 0.5 * sizes[0])):
                # the float32 factor is too far off for the refinement to converge: the
                # step is retried in float64 (ConeBarrier._safe_step), and so are the next
                raise LinAlgError("float32 refinement did not converge")
            return y

        def solve(RU, Rt, refine=True):
            r = np.concatenate([RU, Rt[:, None]], axis=1)
            ar = _bmv(Dinv, r)
            a = ar[:P, :p] - ar[P:, :p]  # (P, p)
            y = middle(lt_h(a), refine)
            s = a - _bmv(Lk, y.reshape(P, p))
            g = (H @ s.reshape(m)).reshape(P, p)
            x = ar
            x[:P] -= _bmv(Dinv[:P, :, :p], g)
            x[P:] += _bmv(Dinv[P:, :, :p], g)
            return x[:, :p], x[:, p]

        return solve

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def _analytic_centres(Xa, E, Z2, U, iterations: int = 30, decrement: float = 1e-8):
        r"""Unit directions at the analytic centres of the cones ``{u: E_k X_a u >= 0}``.

        Batched Newton on :math:`\psi_k(u) = -\sum_i \log(E_k X_a u)_i +
        \tfrac12\lVert u\rVert^2` from strictly interior ``U`` (rows); its minimiser
        is the centre of the cone scaled to norm :math:`\sqrt n`. A gate through a data
        point is interior but next to the boundary, where the damped Newton step
        :math:`1/(1 + \sqrt{\text{decrement}})` is tiny: while the decrement exceeds 1,
        each step is instead the best of a few lengths up to the boundary
        (:math:`\psi_k` along the Newton direction costs one pass over ``g`` and
        ``dg``), then the Newton step (at most 0.99 of the way to the boundary). A cone
        leaves the batch once its Newton decrement is below ``decrement`` (its step
        would no longer move it). Measured on the issue-3 goal-2 program (500 cones of
        569 rows): converged in 19 batched iterations, where 30 damped ones left
        decrements up to 28; the centring matters (the path took 38 steps from the
        uncentred gates, 29 from the 30 damped iterations).
        """
        n, p = Xa.shape
        U = U * np.sqrt(n)
        eye = np.eye(p)
        todo = np.arange(U.shape[0])
        fractions = np.array([1.0, 0.5, 0.25, 0.1, 0.03, 0.01])  # of the longest step tried
        work = _Scratch()  # the (n, m) arrays of every iteration (m shrinks)
        for _ in range(iterations):
            k = todo.size
            Ut = U[todo]
            Et = np.take(E, todo, axis=1, out=work.get("E", (n, k)))
            g = np.matmul(Xa, Ut.T, out=work.get("g", (n, k)))
            g *= Et  # (n, m) > 0
            inv = np.divide(1.0, g, out=work.get("inv", (n, k)))
            tmp = np.multiply(Et, inv, out=work.get("tmp", (n, k)))
            grad = Ut - ((Xa.T @ tmp).T)
            H = Z2.grams(np.multiply(inv, inv, out=tmp)) + eye
            step = -np.linalg.solve(H, grad[:, :, None])[:, :, 0]
            dec = np.einsum("mp,mp->m", -grad, step)
            done = dec < decrement
            if done.all():
                break
            dg = np.matmul(Xa, step.T, out=work.get("dg", (n, k)))
            dg *= Et
            # the longest step keeping g + a dg > 0: 1 / max(-dg / g) over the rows
            rel = np.multiply(dg, inv, out=tmp)  # dg / g
            worst = rel.min(axis=0)
            with np.errstate(divide="ignore"):
                ratio = np.where(worst < 0, -1.0 / worst, np.inf)
            a = np.minimum(1.0, 0.99 * ratio)
            # far from the centre (decrement > 1, where Newton's full step may overshoot),
            # the best of a few lengths up to the longest: psi(U + a step) - psi(U)
            far = np.flatnonzero(dec > 1.0)
            if far.size:
                cand = a[None, far] * fractions[:, None]  # (c, far)
                us = np.einsum("mp,mp->m", Ut[far], step[far])
                ss = np.einsum("mp,mp->m", step[far], step[far])
                # psi's barrier part: -sum log(1 + a dg / g)
                rel = rel if far.size == k else np.take(rel, far, axis=1, out=work.get("rel", (n, far.size)))
                trial = work.get("trial", rel.shape)
                change = np.stack([-np.log1p(np.multiply(rel, c[None, :], out=trial), out=trial).sum(axis=0)
                                   for c in cand])
                change += cand * us[None, :] + 0.5 * cand**2 * ss[None, :]
                a[far] = cand[np.argmin(change, axis=0), np.arange(far.size)]
            a[done] = 0.0
            U[todo] = Ut + a[:, None] * step
            todo = todo[~done]
        return U / np.linalg.norm(U, axis=1, keepdims=True)

    @staticmethod
    def _interior_directions(Xa, E):
        """Unit directions strictly inside the cones ``{u: E_k X_a u >= 0}`` (one LP each;
        a zero row where the cone has an empty interior: that block stays at zero)."""
        from scipy.optimize import linprog

        n, p = Xa.shape
        out = np.zeros((E.shape[1], p))
        for k in range(E.shape[1]):
            # max s  s.t.  E X_a u >= s,  -1 <= u <= 1
            A = np.hstack([-(E[:, k:k + 1] * Xa), np.ones((n, 1))])
            res = linprog(np.r_[np.zeros(p), -1.0], A_ub=A, b_ub=np.zeros(n),
                          bounds=[(-1, 1)] * p + [(None, 1)], method="highs")
            if res.status == 0 and -res.fun > 1e-9:
                u = res.x[:p]
                out[k] = u / np.linalg.norm(u)
        return out

    @staticmethod
    def _exact_worst(program, j, theta, c, projector) -> float:
        """Largest exact cone dual norm of column ``j`` at ``theta`` (cone projections)."""
        Theta = np.zeros((theta.size, c))
        Theta[:, j] = theta
        return float(cone_dual_norms(program, Theta, projector)[:, j].max(initial=0.0))

    @staticmethod
    def _prune(col, y, w, alpha, forward, centred, tol) -> None:
        """Drop the blocks the interior point keeps at tiny norms (:func:`prune_blocks`)."""
        if col.best_U is None:
            return

        def objective(U):
            rc = centred(forward(U, cone=False)[0] - y)
            return 0.5 * float(w @ rc**2) + alpha * float(np.linalg.norm(U, axis=1).sum())

        col.best_U, col.primal = prune_blocks(col.best_U, col.primal, col.dual, tol, objective)

    @staticmethod
    def _assemble(cols, Y, w, forward, B, p, c):
        coef = np.zeros((B, p, c))
        b = np.zeros(c)
        for col in cols:
            U = col.best_U if col.best_U is not None else col.U
            coef[:, :, col.j] = U
            z, _ = forward(U, cone=False)
            b[col.j] = float(w @ (Y[:, col.j] - z))
        return coef, b

    @staticmethod
    def _dual_point(cols, n, B, c) -> DualPoint:
        Theta = np.zeros((n, c))
        Lam = np.zeros((n, B, c))
        for col in cols:
            if col.theta is not None:
                Theta[:, col.j] = col.theta
                if col.theta_lam is not None:
                    Lam[:, :, col.j] = col.theta_lam
        return DualPoint(Theta, Lam)

    @staticmethod
    def _init_candidate(program, init) -> dict:
        """The warm start as a feasible network with its certified bounds."""
        from ..certificates import dual_point_from_outputs

        coef = program.make_feasible(np.asarray(init[0], dtype=float))
        Fc = program.operator.matvec(coef)
        w = program.sample_weight / program.sample_weight.sum()
        b = w @ (program.Y - Fc)  # the optimal intercept of the squared loss
        Z = Fc + b[None, :]
        primal = program.loss.value(Z, program.Y, program.sample_weight) + program.regularizer(coef)
        point = dual_point_from_outputs(program, Z)
        dual = dual_value(program, point, refine=True)
        return {"coef": coef, "intercept": b, "primal": primal, "dual": dual, "point": point}
