"""One accelerated proximal-gradient loop shared by the solvers.

The smooth part is written :math:`f(x) = h(Kx)` with a linear ``K`` ("forward").
Because ``K`` is linear, the forward image of the extrapolated point is the same
extrapolation of stored images, so an iteration costs one forward and one adjoint
product: the minimum for a first-order method.

Step sizes: backtracking line search on the standard sufficient-decrease condition,
with a cautious 10 % increase after each accepted step; momentum is reset by the
gradient-based adaptive restart of O'Donoghue & Candès (2015).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Composite", "FlatParams", "fista"]


@dataclass
class Composite:
    """:math:`\\min_x h(Kx) + g(x)` described by callables on flat arrays."""

    forward: Callable[[np.ndarray], np.ndarray]  # x -> Kx (linear)
    smooth: Callable[[np.ndarray], tuple[float, np.ndarray]]  # Kx -> h, dh
    adjoint: Callable[[np.ndarray], np.ndarray]  # dh -> K^T dh
    prox: Callable[[np.ndarray, float], np.ndarray]  # (x, step) -> prox_{step g}(x)
    nonsmooth: Callable[[np.ndarray], float]  # x -> g(x)
    #: relative slack of the line search's decrease test: a few rounding units of the
    #: products (float64: 1e-14; float32 products on a device need more)
    slack: float = 1e-14


@dataclass
class FistaState:
    """Iterate, its forward image, momentum and step; reusable across calls (warm)."""

    x: np.ndarray
    aux: np.ndarray
    x_prev: np.ndarray
    aux_prev: np.ndarray
    t: float
    step: float
    value: float  # h(Kx) + g(x)
    grad_map_norm: float = np.inf


def init_state(problem: Composite, x0: np.ndarray, step: float) -> FistaState:
    """State at ``x0`` with zero momentum."""
    aux = problem.forward(x0)
    h, _ = problem.smooth(aux)
    return FistaState(x0, aux, x0, aux, 1.0, step, h + problem.nonsmooth(x0))


def fista(
    problem: Composite,
    state: FistaState,
    max_iter: int,
    stop: Callable[[int, FistaState], bool] | None = None,
) -> tuple[FistaState, int]:
    """Run up to ``max_iter`` iterations from ``state``.

    ``stop(i, state)`` is called after every iteration ``i`` (1-based) and ends the
    loop when it returns True. Returns the final state and the iterations done.
    """
    s = state
    for it in range(1, max_iter + 1):
        t_next = 0.5 * (1 + np.sqrt(1 + 4 * s.t * s.t))
        beta = (s.t - 1) / t_next
        y = s.x + beta * (s.x - s.x_prev)
        aux_y = s.aux + beta * (s.aux - s.aux_prev)
        hy, dh = problem.smooth(aux_y)
        gy = problem.adjoint(dh)
        step = s.step
        while True:
            xn = problem.prox(y - step * gy, step)
            aux_n = problem.forward(xn)
            hn, _ = problem.smooth(aux_n)
            d = xn - y
            dd = float(d @ d)
            if hn <= hy + float(gy @ d) + dd / (2 * step) + problem.slack * abs(hy) or step < 1e-30:
                break
            step *= 0.5
        value = hn + problem.nonsmooth(xn)
        # adaptive restart: momentum points against the prox-gradient direction
        restart = float((y - xn) @ (xn - s.x)) > 0 or value > s.value
        s = FistaState(
            x=xn,
            aux=aux_n,
            x_prev=xn if restart else s.x,
            aux_prev=aux_n if restart else s.aux,
            t=1.0 if restart else t_next,
            step=step * 1.1,
            value=value,
            grad_map_norm=np.sqrt(dd) / step,
        )
        if stop is not None and stop(it, s):
            return s, it
    return s, max_iter


class FlatParams:
    """A program's ``(coef, intercept)`` as one flat vector, with the penalty's prox
    and value on it (the intercept is free: the prox leaves it alone).

    For the cone-constrained ReLU program the prox is that of
    :math:`\\alpha R + \\iota_{\\mathcal K}`: every block is projected exactly onto its
    cone, then shrunk (see :mod:`convexnn.cones`), so every iterate is a feasible
    ReLU network. The projector remembers each block's active constraints between
    iterations, which makes most projections one small batched solve.
    """

    def __init__(self, program):
        self.program = program
        self.shape = program.coef_shape
        self.size = int(np.prod(self.shape))
        self.projector = program.cone_projector() if program.has_cone else None

    def unpack(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Views ``(coef, intercept)`` into ``x``."""
        return x[: self.size].reshape(self.shape), x[self.size :]

    def start(self, init) -> np.ndarray:
        """``init = (coef, intercept)`` flattened (projected onto the cones for ReLU),
        or zeros with the constant model's intercept."""
        if init is None:
            return np.concatenate([np.zeros(self.size), self.program.constant_intercept()])
        coef = np.asarray(init[0], dtype=float)
        if self.projector is not None:
            coef = self.projector.project_blocks(coef)
        return np.concatenate([coef.ravel(), init[1]])

    def prox(self, x: np.ndarray, step: float) -> np.ndarray:
        """Prox of ``step * alpha * R`` (plus the cone indicator for ReLU) on the coefficients."""
        coef, b = self.unpack(x)
        threshold = step * self.program.alpha
        if self.projector is not None:
            coef = self.projector.project_blocks(coef, threshold)
        shrunk = self.program.penalty.prox(coef, threshold)
        return np.concatenate([shrunk.ravel(), b])

    def nonsmooth(self, x: np.ndarray) -> float:
        """:math:`\\alpha R(V)`."""
        return self.program.regularizer(self.unpack(x)[0])
