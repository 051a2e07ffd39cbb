"""Local descent on the non-convex network, and the activation patterns it finds.

The convex programs are exact over the activation patterns they are given, and sampled
patterns can miss the ones a good ReLU network uses: on real data a plain Adam run can
end well below the certified optimum over a few hundred sampled patterns (the certificate
is for the program over those patterns, not for every network). Convexity gives a way
to close that gap without giving up the certificate:

1. solve the convex program over the current patterns (certified, DESIGN.md §1);
2. read off its network and run a local descent (L-BFGS) on the non-convex objective

   .. math::

       J(W_1, b_1, W_2, b_2) = \\sum_i w_i\\, \\ell(\\sigma(x_i W_1 + b_1) W_2 + b_2,\\, y_i)
       + \\tfrac{\\alpha}{2}\\left(\\lVert W_1\\rVert^2 + \\lVert b_1\\rVert^2
       + \\lVert W_2\\rVert^2\\right)

   from it (its units move, and with them their patterns
   :math:`\\mathbb 1[X_a u_j > 0]`);
3. add the moved units as gates and solve again.

The descended network is feasible for the new program (each unit lies in its own
pattern's cone), so the new certified optimum is at most the descended network's
``J``, which is at most the previous optimum: every round's certified ``J`` is lower or
equal, up to the solver's tolerance. :func:`descend` is step 2; :func:`network_gates`
and :func:`coef_from_network` turn its network into gates and into a feasible point of
the new program (a solver's warm start).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from .losses import Loss
from .network import Network
from .patterns import _row_chunks

__all__ = ["descend", "network_gates", "coef_from_network"]

#: L-BFGS iterations of one pattern-search round (the estimators' ``pattern_search``)
DESCENT_MAX_ITER = 1000


def _activation(network: Network):
    """``(sigma(H), sigma'(H))`` of the network's activation, elementwise."""
    act = network.activation
    if act == "relu":
        return lambda H: np.maximum(H, 0.0), lambda H: (H > 0).astype(H.dtype)
    if act == "leaky_relu":
        s = float(network.negative_slope)
        return (lambda H: np.where(H > 0, H, s * H)), (lambda H: np.where(H > 0, 1.0, s))
    if act == "abs":
        return np.abs, np.sign
    raise ValueError(
        f"descend() needs a relu, leaky_relu or abs network, got activation={act!r} (a gated "
        "ReLU network's gates are fixed, so its convex program is already exact for them)."
    )


def descend(network: Network, X: np.ndarray, Y: np.ndarray, sample_weight: np.ndarray, loss: Loss,
            alpha: float, *, max_iter: int = 1000) -> tuple[Network, float]:
    """Lower the non-convex objective ``J`` from ``network`` by L-BFGS.

    Minimises ``J`` (module docstring; DESIGN.md §1, with the sample weights as given)
    over all weights and biases locally, starting at ``network``. The output weights
    keep their zero pattern (a cone program's unit feeds one output; that architecture
    is kept), and ``b2`` is free. ReLU's derivative at 0 is taken as 0.

    Parameters
    ----------
    network : Network
        A ``"relu"``, ``"leaky_relu"`` or ``"abs"`` network (the start).
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_outputs)
        Encoded targets, as the loss takes them.
    sample_weight : ndarray of shape (n_samples,)
        Weights of the loss (the estimators pass weights summing to one).
    loss : Loss
    alpha : float
        Weight decay, DESIGN.md's ``alpha``.
    max_iter : int, default=1000
        L-BFGS iterations (each one or a few passes over the data).

    Returns
    -------
    network : Network
        The descended network, of the same width (dead units included).
    objective : float
        Its ``J``; never above the start's (the start is returned if nothing improves).
    """
    if max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}.")
    objective_and_gradient, theta0, unpack = _objective(network, X, Y, sample_weight, loss, alpha)
    J0 = objective_and_gradient(theta0)[0]
    # ftol = gtol = 0: run the iterations asked for (L-BFGS-B still stops when its line
    # search fails, i.e. at a point where it cannot descend further)
    result = minimize(objective_and_gradient, theta0, jac=True, method="L-BFGS-B",
                      options={"maxiter": int(max_iter), "maxcor": 20, "ftol": 0.0, "gtol": 0.0})
    if not np.isfinite(result.fun) or result.fun >= J0:
        return network, float(J0)
    A, b, C, e = unpack(result.x)
    out = Network([A, C], [b, e], network.activation, negative_slope=network.negative_slope)
    return out, float(result.fun)


def _objective(network: Network, X, Y, sample_weight, loss: Loss, alpha: float):
    """``(J and its gradient as functions of a flat theta, theta of network, unpack)``.

    ``theta = [W1, b1, W2, b2]`` raveled; ``W2``'s zero pattern is fixed (masked).
    """
    sigma, dsigma = _activation(network)
    X = np.asarray(X)
    Y = np.asarray(Y, dtype=float)
    w = np.asarray(sample_weight, dtype=float)
    W1, W2 = (np.asarray(a, dtype=float) for a in network.coefs)
    b1, b2 = (np.asarray(a, dtype=float) for a in network.intercepts)
    d, m = W1.shape
    c = W2.shape[1]
    if X.ndim != 2 or X.shape[1] != d or Y.shape != (X.shape[0], c) or w.shape != (X.shape[0],):
        raise ValueError(
            f"descend() needs X of shape (n_samples, {d}), Y of shape (n_samples, {c}) and "
            f"sample_weight of shape (n_samples,) for this network ({d} features, {c} outputs); "
            f"got X {X.shape}, Y {Y.shape}, sample_weight {w.shape}."
        )
    support = W2 != 0  # each unit keeps the outputs it feeds
    sizes = np.cumsum([d * m, m, m * c])
    chunks = list(_row_chunks(X.shape[0], 3 * max(m, c)))

    def unpack(theta):
        A, b, C, e = np.split(theta, sizes)
        return A.reshape(d, m), b, C.reshape(m, c) * support, e

    def objective_and_gradient(theta):
        A, b, C, e = unpack(theta)
        value = 0.5 * alpha * (np.vdot(A, A) + np.vdot(b, b) + np.vdot(C, C))
        gA, gb, gC, ge = alpha * A, alpha * b, alpha * C, np.zeros(c)
        for s in chunks:  # row chunks: no n x width temporaries beyond one chunk's
            H = X[s] @ A + b
            R = sigma(H)
            v, gZ = loss.value_and_gradient(R @ C + e, Y[s], w[s])
            value += v
            gC += R.T @ gZ
            ge += gZ.sum(axis=0)
            gH = (gZ @ C.T) * dsigma(H)
            gA += X[s].T @ gH
            gb += gH.sum(axis=0)
        return float(value), np.concatenate([gA.ravel(), gb, (gC * support).ravel(), ge])

    theta0 = np.concatenate([W1.ravel(), b1, (W2 * support).ravel(), b2])
    return objective_and_gradient, theta0, unpack


def network_gates(network: Network) -> np.ndarray:
    """The units as gates ``[W1; b1]``, shape ``(n_features + 1, n_neurons)``: unit ``j``'s
    own activation pattern is :math:`\\mathbb 1[X_a g_j > 0]`."""
    return np.vstack([network.coefs[0], network.intercepts[0][None, :]])


def coef_from_network(program, network: Network, pattern_of_unit: np.ndarray) -> np.ndarray:
    """A feasible point of a cone ``program`` that represents ``network`` exactly.

    Unit ``j`` with input weights :math:`u_j` (bias last) feeding output ``o`` with
    weight :math:`a_j` becomes :math:`|a_j| u_j` in block ``k = pattern_of_unit[j]``
    (output ``o``): block ``k`` (the ``v`` blocks) for :math:`a_j > 0`, block
    ``P + k`` (the ``w`` blocks) for :math:`a_j < 0`. The program's output is then the
    network's, and its penalty :math:`\\sum_j |a_j| \\lVert u_j\\rVert \\le
    \\tfrac12\\sum_j(\\lVert u_j\\rVert^2 + a_j^2)` at most the weight decay: the
    program's objective at this point is at most the network's ``J`` (with the same
    ``b2``).

    Parameters
    ----------
    program : ConvexProgram
        A cone program (ReLU, leaky ReLU, abs) whose gate ``pattern_of_unit[j]`` has unit
        ``j``'s activation pattern, so that the unit lies in that pattern's cone.
    network : Network
        Each unit feeds at most one output.
    pattern_of_unit : ndarray of int, shape (n_neurons,)
        The program pattern of each unit; ``-1`` drops the unit (an empty pattern: the
        unit is zero on the data and only adds weight decay).
    """
    if not program.has_cone:
        raise ValueError("coef_from_network() needs a cone program (relu, leaky_relu or abs).")
    U = network_gates(network)
    W2 = np.asarray(network.coefs[1], dtype=float)
    if np.count_nonzero(W2, axis=1).max(initial=0) > 1:
        raise ValueError("coef_from_network() needs units that each feed one output "
                         "(the cone programs' architecture).")
    P = program.gates.shape[1]
    coef = program.zero_coef()
    for j in np.flatnonzero((np.asarray(pattern_of_unit) >= 0) & (W2 != 0).any(axis=1)):
        o = int(np.flatnonzero(W2[j])[0])
        a = W2[j, o]
        block = int(pattern_of_unit[j]) + (P if a < 0 else 0)
        coef[block, :, o] += abs(a) * U[:, j]
    return coef
