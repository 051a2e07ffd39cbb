"""Duality-gap certificates, computed from a program and a solution alone.

For the gated program the Fenchel dual is

.. math::

    \\max_{\\Theta}\\; -L^*(\\Theta) \\quad\\text{s.t.}\\quad \\mathbf 1^\\top\\Theta = 0,\\;
    r^\\circ\\big(X_a^\\top D_k \\Theta\\big) \\le \\alpha \\;\\; \\forall k,

and for the cone-constrained programs the cone constraints add multipliers
:math:`\\Lambda_j \\ge 0`: :math:`r^\\circ(\\pm X_a^\\top S_k\\Theta - X_a^\\top E_k
\\Lambda_j) \\le \\alpha`, with the activation's diagonal :math:`S_k` (:math:`D_k` for
ReLU, :math:`D_k + s(I - D_k)` for leaky ReLU, :math:`E_k` for the absolute value).
Any feasible :math:`(\\Theta, \\Lambda)` gives
:math:`-L^*(\\Theta) \\le p^\\star \\le` primal, so ``gap = primal - dual`` bounds the
suboptimality of the primal point. A dual point is made feasible by projecting
:math:`\\Theta` for the intercept constraint (inside ``dom L*``) and scaling
:math:`(\\Theta, \\Lambda)` down until every block satisfies its norm bound.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .programs import ConvexProgram

__all__ = [
    "Certificate",
    "DualPoint",
    "certify",
    "dual_point_from_outputs",
    "dual_value",
    "cone_dual_norms",
]


@dataclass
class DualPoint:
    """A dual candidate: ``Theta`` (n_samples, n_outputs) and, for ReLU, cone
    multipliers ``Lam`` (n_samples, 2P, n_outputs), both *before* feasibility scaling."""

    Theta: np.ndarray
    Lam: np.ndarray | None = None


@dataclass
class Certificate:
    """What a fit proves about its network.

    Attributes
    ----------
    primal : float
        Objective ``J`` of the exported network (DESIGN.md §1). For a feasible convex
        solution this equals the convex program's objective.
    dual : float
        A lower bound on the optimal value of the convex program over the patterns used.
    gap : float
        ``primal - dual``: no network representable by the program does better than
        ``primal - gap``.
    relative_gap : float
        ``gap / primal``.
    scope : str
        ``"global"`` when the pattern set is complete, so the bound holds for every
        two-layer network of any width (with this activation); ``"sampled"`` when it
        holds only for networks whose activation patterns are among the sampled ones.
    activation : str
        ``"relu"``, ``"gated_relu"``, ``"leaky_relu"`` or ``"abs"``.
    n_patterns : int
        Number of activation patterns in the program.
    tol : float
        Requested relative gap.
    cone_violation : float
        Largest relative violation of the ReLU cone constraints by the solution
        (0 for gated ReLU; the exported network is evaluated exactly either way).
    negative_slope : float or None
        Leaky ReLU's slope for negative inputs; None for the other activations.
    """

    primal: float
    dual: float
    gap: float
    relative_gap: float
    scope: str
    activation: str
    n_patterns: int
    tol: float
    cone_violation: float = 0.0
    negative_slope: float | None = None

    @property
    def converged(self) -> bool:
        """Whether ``relative_gap <= tol``."""
        return bool(self.relative_gap <= self.tol)

    @property
    def certifies(self) -> str:
        """One sentence saying what the numbers prove."""
        kind = {
            "relu": "ReLU",
            "gated_relu": "gated-ReLU",
            "leaky_relu": "leaky-ReLU",
            "abs": "absolute-value",
        }.get(self.activation, self.activation)
        if self.activation == "leaky_relu" and self.negative_slope is not None:
            kind += f" (negative slope {self.negative_slope:g})"
        if self.scope == "global":
            who = (
                f"Global certificate: no two-layer {kind} network of any width (the data's "
                "activation patterns were enumerated completely)"
            )
        else:
            who = (
                f"No two-layer {kind} network whose hidden units use only the "
                f"{self.n_patterns} sampled activation patterns"
            )
        text = (
            f"{who} has an objective below {self.dual:.6g}; this one has J = "
            f"{self.primal:.6g}, within {self.gap:.3g} ({self.relative_gap:.2e} relative) "
            "of that bound."
        )
        if self.scope != "global":
            text += " Not a global certificate: networks using other patterns are not covered."
        return text

    def __str__(self) -> str:
        return (
            f"primal {self.primal:.6g}, dual {self.dual:.6g}, gap {self.gap:.3g} "
            f"(relative {self.relative_gap:.2e}, tol {self.tol:.0e}), scope {self.scope}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON representation (floats, ints, strings)."""
        return {k: (float(v) if isinstance(v, np.floating) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Certificate:
        """Inverse of :meth:`to_dict`."""
        return cls(**d)


def dual_point_from_outputs(program: ConvexProgram, Z: np.ndarray, Lam=None) -> DualPoint:
    """The natural dual candidate at outputs ``Z``: :math:`\\Theta = \\nabla L(Z)`."""
    _, grad = program.data_fit(Z)
    return DualPoint(grad, Lam)


def cone_dual_norms(program: ConvexProgram, Theta: np.ndarray, projector=None) -> np.ndarray:
    r"""Exact dual norms of a cone-constrained program at ``Theta``, shape ``(2P, n_outputs)``.

    Block ``j`` (pattern ``k``, sign ``s``) is dual feasible iff
    :math:`\max_{u\in\mathcal K_k,\lVert u\rVert\le1}\langle -s X_a^\top S_k\Theta,
    u\rangle = \lVert\Pi_{\mathcal K_k}(-s X_a^\top S_k\Theta)\rVert \le \alpha`
    (Moreau's decomposition; :math:`S_k` is the activation's diagonal, :math:`D_k` for
    ReLU, applied by ``program.operator.rmatvec``): the best any cone multiplier can do,
    computed by an exact projection (:mod:`convexnn.cones`). Entries that are provably
    at most ``alpha`` are returned as their cheap upper bound ``min(|c|, alpha)``; only
    the largest value matters for the dual scaling.
    """
    C = -program.operator.rmatvec(Theta)  # (2P, p, c): minus the data term's gradient
    norms = np.sqrt(np.einsum("bpc,bpc->bc", C, C))
    out = np.minimum(norms, program.alpha)
    above = norms > program.alpha
    if above.any():
        projector = projector if projector is not None else program.cone_projector()
        proj = projector.project_blocks(C, zero_below=program.alpha)
        out[above] = np.sqrt(np.einsum("bpc,bpc->bc", proj, proj))[above]
    return out


def dual_value(program: ConvexProgram, point: DualPoint, refine: bool = False, projector=None) -> float:
    """Feasible dual objective obtained from ``point`` (projection, then scaling).

    For the ReLU program, ``refine`` computes the exact dual norms by cone projections
    (:func:`cone_dual_norms`, optionally with a warm ``projector``), unless the point's
    own multipliers already make it feasible (then the exact norms, which are no larger,
    give the same value); otherwise the point's own cone multipliers ``Lam`` are used (a
    valid but weaker bound).
    """
    with program.exact_products():  # the certificate is float64 whatever the device
        return _dual_value(program, point, refine, projector)


def _dual_value(program: ConvexProgram, point: DualPoint, refine: bool, projector) -> float:
    Theta = program.loss.project_dual(point.Theta, program.Y, program.sample_weight)
    if program.has_cone and refine and point.Lam is not None:
        # any multipliers Lam >= 0 bound the exact dual norms from above, so where the
        # point's own already make Theta feasible the exact ones (cone projections,
        # the expensive part) cannot change the scale of 1
        G = program.operator.adjoint_combined(Theta, np.maximum(point.Lam, 0.0))
        worst = float(program.penalty.dual_norms(G).max(initial=0.0))
        if worst > program.alpha:
            worst = min(worst, float(cone_dual_norms(program, Theta, projector).max(initial=0.0)))
    elif program.has_cone and refine:
        worst = float(cone_dual_norms(program, Theta, projector).max(initial=0.0))
    elif program.has_cone:
        Lam = point.Lam if point.Lam is not None else np.zeros(
            (program.operator.n_samples, program.operator.n_blocks, program.n_outputs)
        )
        G = program.operator.adjoint_combined(Theta, Lam)
        worst = float(program.penalty.dual_norms(G).max(initial=0.0))
    else:
        G = program.operator.rmatvec(Theta)
        worst = float(program.penalty.dual_norms(G).max(initial=0.0))
    scale = 1.0 if worst <= program.alpha else program.alpha / worst
    return program.dual_objective(scale * Theta)


def certify(
    program: ConvexProgram,
    coef: np.ndarray,
    intercept: np.ndarray,
    dual_points: list[DualPoint] | DualPoint,
    *,
    activation: str,
    tol: float,
    primal: float | None = None,
    refine: bool = False,
) -> Certificate:
    """Build the certificate of a solution.

    Parameters
    ----------
    program : ConvexProgram
    coef, intercept : ndarray
        The solution (for ReLU it must already be feasible: see
        :meth:`ConvexProgram.make_feasible`).
    dual_points : DualPoint or list of DualPoint
        Candidates; the best (largest) feasible dual value is used, since every one
        is a valid lower bound.
    activation : str
        Recorded in the certificate.
    tol : float
        The requested relative gap.
    primal : float, optional
        Objective of the exported network if already computed; otherwise the convex
        objective of ``(coef, intercept)``.
    refine : bool, default=False
        Use the exact ReLU dual norms (see :func:`cone_dual_norms`).
    """
    if isinstance(dual_points, DualPoint):
        dual_points = [dual_points]
    with program.exact_products():  # float64 whatever the device
        if primal is None:
            primal = program.objective(coef, intercept)
        dual = max((dual_value(program, p, refine) for p in dual_points), default=-np.inf)
    gap = primal - dual
    rel = gap / max(abs(primal), np.finfo(float).tiny)
    return Certificate(
        primal=float(primal),
        dual=float(dual),
        gap=float(gap),
        relative_gap=float(rel),
        scope="global" if program.complete else "sampled",
        activation=activation,
        n_patterns=int(program.operator.n_patterns),
        tol=float(tol),
        cone_violation=float(program.cone_violation(coef)),
        negative_slope=getattr(program.operator, "negative_slope", None),
    )
