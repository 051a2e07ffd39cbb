"""Non-negative least squares, the workhorse of cone projections and multipliers.

:func:`scipy.optimize.nnls` (scipy 1.17) returns wrong solutions on the wide,
degenerate systems these problems produce (``n_features + 1`` rows, ``n_samples``
columns): its reported residual disagrees with the one its solution attains. The
bounded-variable least-squares method of :func:`scipy.optimize.lsq_linear` solves them
correctly, so every NNLS in convexnn goes through here.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import lsq_linear

__all__ = ["nnls"]


def nnls(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:math:`\\arg\\min_{x \\ge 0} \\lVert A x - b \\rVert_2` (BVLS, Stark & Parker 1995)."""
    if not np.any(b):
        return np.zeros(A.shape[1])
    # BVLS stops on the relative change of the cost; for nearly-feasible projections
    # the cost itself is tiny, so a loose tol stops after a couple of steps with a
    # visibly wrong answer: ask for (near) machine precision
    return lsq_linear(A, b, bounds=(0.0, np.inf), method="bvls", tol=1e-15).x
