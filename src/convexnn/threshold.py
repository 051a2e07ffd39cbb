"""Threshold (step) activation networks as Lasso problems (Ergen, Gulluk, Lacotte &
Pilanci, ICLR 2023), and the closed form of the full-row-rank case.

The network
-----------
A two-layer threshold network with ``m`` hidden units and a trainable amplitude
:math:`s_j` per unit (the paper's :math:`\\sigma_s(h) = s\\,\\mathbb 1[h \\ge 0]`) is

.. math::

    f(x) = \\sum_{j=1}^m s_j\\, \\mathbb 1[x \\cdot w_j + b_j > 0]\\; a_j + c,
    \\qquad a_j \\in \\mathbb R^{n_{outputs}},

trained with DESIGN.md's conventions (weighted mean loss, ``alpha``, free output
intercept ``c``):

.. math::

    J(W_1, b_1, s, W_2, c) = \\sum_i w_i\\, \\ell(f(x_i), y_i)
        + \\frac{\\alpha}{2} \\sum_j \\left(s_j^2 + \\lVert a_j \\rVert^2\\right).

The first layer :math:`(w_j, b_j)` is *not* penalised, as in the paper: the step is
invariant to positive rescaling of :math:`(w_j, b_j)`, so a penalty
:math:`\\tfrac\\alpha2(\\lVert W_1\\rVert^2 + \\lVert b_1\\rVert^2)` could be driven to zero
without changing ``f``; with it the problem has the same optimal value below, as an
infimum that no network attains. (On finite data, ``> 0`` and the paper's ``>= 0`` give
the same set of activation patterns; convexnn uses ``> 0`` like its masks.)

The Lasso
---------
Each unit acts on the training data through its pattern
:math:`d = \\mathbb 1[X_a g > 0] \\in \\{0, 1\\}^n` only, and
:math:`\\tfrac12(s^2 + \\lVert a\\rVert^2) \\ge \\lVert s a\\rVert` with equality for
:math:`|s| = \\lVert a\\rVert`. Hence, over the dictionary :math:`D = [d_1, \\dots,
d_P]` of the patterns in use,

.. math::

    \\min J \\;=\\; \\min_{C \\in \\mathbb R^{P \\times c},\\, b}\\;
        \\sum_i w_i\\, \\ell\\big((D C)_i + b, y_i\\big)
        + \\alpha \\sum_{k=1}^P \\lVert C_{k,:} \\rVert_2,

a Lasso (one output) or a row-group Lasso (several outputs, units feeding every
output); a solution gives the network ``s_k = ±sqrt|C_k|``, ``a_k = C_k / s_k``, whose
``J`` equals the Lasso objective exactly. Over *all* patterns of the data this is the
training problem of threshold networks of any width (for widths at least the number of
non-zero rows of an optimal ``C``); over sampled patterns it is the problem restricted
to networks that use those patterns.

The full-row-rank collapse
--------------------------
When :math:`X_a = [X, 1]` has full row rank (``n_samples <= n_features + 1``), every
:math:`d \\in \\{0,1\\}^n` is a pattern (solve :math:`X_a g = 2d - 1`). The smallest
:math:`\\ell_1` norm of a combination of binary vectors equal to :math:`\\delta` is
:math:`\\max(\\delta)_+ + \\max(-\\delta)_+` (lower bound: every entry is at most the
positive mass and at least minus the negative mass; attained by the level sets of
:math:`\\delta`), so with the squared loss and no intercept the Lasso is

.. math::

    \\min_\\delta \\tfrac12 \\sum_i w_i (\\delta_i - y_i)^2
        + \\alpha\\big(\\max(\\delta)_+ + \\max(-\\delta)_+\\big),

which is the paper's :math:`\\min \\tfrac12\\lVert\\delta - y\\rVert^2 +
\\beta(\\max(\\delta)_+ + \\max(-\\delta)_+)` with :math:`w_i = 1/n`,
:math:`\\beta = n\\alpha`. With the free intercept, minimising over the shift gives
:math:`\\min_b \\max(z - b)_+ + \\max(b - z)_+ = \\max z - \\min z`:

.. math::

    \\min_z \\tfrac12 \\sum_i w_i (z_i - y_i)^2 + \\alpha\\,(\\max z - \\min z).

Both are solved by :func:`water_filling` in :math:`O(n \\log n)`: the solution clips
``y`` to ``[l, u]`` where the weighted mass above ``u`` and below ``l`` is ``alpha``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .certificates import DualPoint
from .losses import SquaredLoss
from .network import Network
from .operators import DictionaryOperator
from .patterns import augment, masks_from_gates
from .penalties import ColumnGroupL2, Penalty
from .programs import ConvexProgram

__all__ = [
    "DeepThresholdNetwork",
    "PatternDictionary",
    "apply_layers",
    "deep_threshold_network",
    "shattering_layers",
    "closed_form_threshold_regression",
    "collapsed_objective",
    "gates_for_masks",
    "has_full_row_rank",
    "level_sets",
    "threshold_network",
    "water_filling",
]


class PatternDictionary(DictionaryOperator):
    """The Lasso dictionary of a threshold network: the float masks of the gates.

    Column ``k`` is :math:`\\mathbb 1[X_a g_k > 0]`, the output of a unit with gate
    :math:`g_k` (and amplitude 1) on the training points.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    gates : ndarray of shape (n_features + 1, n_patterns)
        Last row: bias.
    """

    def __init__(self, X: np.ndarray, gates: np.ndarray):
        self.gates = np.asarray(gates, dtype=float)
        self.masks = masks_from_gates(np.asarray(X, dtype=float), self.gates)
        super().__init__(self.masks.astype(float))


def threshold_network(gates: np.ndarray, coef: np.ndarray, intercept: np.ndarray, penalty: Penalty) -> Network:
    """The threshold network of a Lasso solution.

    Parameters
    ----------
    gates : ndarray of shape (n_features + 1, n_patterns)
        The dictionary's gates.
    coef : ndarray of shape (n_patterns, 1, n_outputs)
        Lasso coefficients :math:`C`.
    intercept : ndarray of shape (n_outputs,)
    penalty : Penalty
        The Lasso's penalty; its balanced factorisation gives, for each non-zero row
        :math:`C_k`, the amplitude ``s_k`` and output weights ``a_k`` with
        :math:`s_k a_k = C_k` and :math:`\\tfrac12(s_k^2 + \\lVert a_k\\rVert^2) =
        \\lVert C_k\\rVert` (:class:`ColumnGroupL2` for one output,
        :class:`~convexnn.penalties.NuclearNorm`, the row norm of a ``1 x c`` block, for
        several).

    Returns
    -------
    Network
        ``activation="threshold"``; ``W1, b1`` are the gates of the units (not
        penalised), ``amplitudes`` the ``s_k``, ``W2`` the ``a_k``.
    """
    S, A, block = penalty.neurons(coef)  # S: (1, n_neurons)
    g = np.asarray(gates, dtype=float)[:, block]
    return Network(
        coefs=[g[:-1].copy(), A.copy()],
        intercepts=[g[-1].copy(), np.asarray(intercept, dtype=float).copy()],
        activation="threshold",
        amplitudes=S[0].copy(),
    )


# --------------------------------------------------------------------------- collapse


def _check_vector(y, sample_weight):
    y = np.asarray(y, dtype=float)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"y must be a non-empty 1-D array; got shape {y.shape}.")
    if not np.all(np.isfinite(y)):
        raise ValueError("y contains NaN or infinity.")
    if sample_weight is None:
        w = np.full(y.size, 1.0 / y.size)
    else:
        w = np.asarray(sample_weight, dtype=float)
        if w.shape != y.shape:
            raise ValueError(f"sample_weight must have shape {y.shape}; got {w.shape}.")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
            raise ValueError("sample_weight must be finite, non-negative and not all zero.")
    return y, w


def _level_from_top(y: np.ndarray, w: np.ndarray, alpha: float) -> float:
    """The ``u`` with :math:`\\sum_i w_i (y_i - u)_+ = \\alpha` (``sum(w) > 0``).

    :math:`\\varphi(u) = \\sum_i w_i (y_i - u)_+` is piecewise linear and non-increasing;
    with ``y`` sorted decreasingly, on :math:`[y_{(k+1)}, y_{(k)}]` it is
    :math:`S_k - u W_k` (prefix sums of ``w y`` and ``w``), so one sort and a binary
    search find the piece.
    """
    order = np.argsort(-y)
    ys, ws = y[order], w[order]
    W = np.cumsum(ws)
    S = np.cumsum(ws * ys)
    phi = S[:-1] - ys[1:] * W[:-1]  # phi at the (k+1)-th largest value, k = 1..n-1
    k = int(np.searchsorted(phi, alpha, side="left")) + 1  # top k points lie above u
    return float((S[k - 1] - alpha) / W[k - 1])


def water_filling(y, alpha: float, sample_weight=None, *, fit_intercept: bool = True) -> np.ndarray:
    """Closed-form solution of the collapsed threshold-network problem.

    With ``fit_intercept=True`` (the estimators' case, a free output intercept)

    .. math::

        \\min_z \\tfrac12 \\sum_i w_i (z_i - y_i)^2 + \\alpha\\,(\\max_i z_i - \\min_i z_i),

    and with ``fit_intercept=False``

    .. math::

        \\min_\\delta \\tfrac12 \\sum_i w_i (\\delta_i - y_i)^2
            + \\alpha\\,\\big(\\max(\\delta)_+ + \\max(-\\delta)_+\\big)

    (the paper's problem with :math:`w_i = 1` and :math:`\\beta = \\alpha`; with the mean
    loss :math:`w_i = 1/n`, :math:`\\beta = n\\alpha`).

    The solution is ``clip(y, l, u)``. Optimality: the subdifferential of
    :math:`\\max z` is the simplex on the maximisers, so :math:`w_i (y_i - z_i)`
    summed over the clipped top must equal ``alpha``: :math:`\\sum_i w_i (y_i - u)_+ =
    \\alpha`, and :math:`\\sum_i w_i (l - y_i)_+ = \\alpha` at the bottom. With the
    intercept, if these give ``u <= l`` (exactly when ``alpha`` is at least
    :math:`\\sum_i w_i (y_i - \\bar y)_+`) the solution is the constant weighted mean
    :math:`\\bar y`. Without it, the levels are ``max(u, 0)`` and ``min(l, 0)`` (the
    penalty only charges the positive and negative parts). Cost: two sorts,
    :math:`O(n \\log n)`.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
    alpha : float
        Penalty weight, > 0.
    sample_weight : array-like of shape (n_samples,), optional
        Non-negative weights; default ``1 / n_samples`` (the mean loss). Used as given
        (not normalised).
    fit_intercept : bool, default=True

    Returns
    -------
    z : ndarray of shape (n_samples,)
        The optimal fitted values (:math:`z` or :math:`\\delta`).
    """
    y, w = _check_vector(y, sample_weight)
    if not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a positive finite number; got {alpha!r}.")
    u = _level_from_top(y, w, alpha)
    lo = -_level_from_top(-y, w, alpha)
    if fit_intercept:
        if u <= lo:
            return np.full_like(y, float(w @ y / w.sum()))
    else:
        u, lo = max(u, 0.0), min(lo, 0.0)
    return np.clip(y, lo, u)


def collapsed_objective(z, y, alpha: float, sample_weight=None, *, fit_intercept: bool = True) -> float:
    """The objective :func:`water_filling` minimises, evaluated at ``z``."""
    y, w = _check_vector(y, sample_weight)
    z = np.asarray(z, dtype=float)
    fit = 0.5 * float(w @ (z - y) ** 2)
    if fit_intercept:
        return fit + alpha * float(z.max() - z.min())
    return fit + alpha * (max(float(z.max()), 0.0) + max(float(-z.min()), 0.0))


def level_sets(z) -> tuple[float, np.ndarray, np.ndarray]:
    """Layer-cake decomposition :math:`z = b + \\sum_k c_k \\mathbb 1[z \\ge v_k]`.

    With the distinct values :math:`v_0 < v_1 < \\dots < v_K` of ``z``: ``b = v_0``,
    :math:`c_k = v_k - v_{k-1} > 0`. The coefficients sum to :math:`\\max z - \\min z`,
    the smallest :math:`\\ell_1` norm of any such decomposition with a free ``b``.

    Returns
    -------
    intercept : float
    masks : ndarray of bool, shape (n_samples, K)
    coef : ndarray of shape (K,)
    """
    z = np.asarray(z, dtype=float)
    v = np.unique(z)
    masks = z[:, None] >= v[None, 1:]
    return float(v[0]), masks, np.diff(v)


def has_full_row_rank(X) -> bool:
    """Whether :math:`X_a = [X, 1]` has full row rank (every sign pattern is reachable).

    Needs ``n_samples <= n_features + 1``; the rank is numpy's (singular values above
    :math:`\\sigma_{max} \\max(n, d+1)\\,\\varepsilon`).
    """
    Xa = augment(np.asarray(X, dtype=float))
    n, p = Xa.shape
    return n <= p and int(np.linalg.matrix_rank(Xa)) == n


def gates_for_masks(X, masks) -> np.ndarray | None:
    """Gates realising given patterns: the minimum-norm solutions of
    :math:`X_a g_k = 2 d_k - 1`.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    masks : ndarray of bool, shape (n_samples, n_patterns)

    Returns
    -------
    gates : ndarray of shape (n_features + 1, n_patterns) or None
        ``None`` when some pattern is not reproduced exactly by its gate (``X_a`` not of
        full row rank, or too ill-conditioned).
    """
    X = np.asarray(X, dtype=float)
    masks = np.asarray(masks, dtype=bool)
    Xa = augment(X)
    gates = np.linalg.lstsq(Xa, 2.0 * masks - 1.0, rcond=None)[0]
    if not np.array_equal(masks_from_gates(X, gates), masks):
        return None
    return gates


def closed_form_threshold_regression(X, y, alpha: float, sample_weight) -> tuple[ConvexProgram, np.ndarray, np.ndarray, DualPoint] | None:
    """The global optimum of threshold-network regression when :math:`[X, 1]` has full
    row rank (squared loss, one output, free intercept).

    :func:`water_filling` gives the optimal outputs ``z``; :func:`level_sets` writes
    them with nested upper sets of ``z`` (one unit per distinct value above the
    minimum). The returned program is the Lasso over those patterns plus the two
    patterns :math:`\\mathbb 1[\\Theta > 0]` and :math:`\\mathbb 1[\\Theta < 0]` of the
    (projected) dual point :math:`\\Theta = \\nabla L(z)`. Since
    :math:`\\max_{d \\in \\{0,1\\}^n} |d^\\top\\Theta| = \\max(\\sum_i\\Theta_i^+,
    \\sum_i\\Theta_i^-)` is attained by those two patterns, the dual constraint checked
    over this dictionary is the one over *all* patterns, so the program is marked
    ``complete`` and its certificate is global.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    alpha : float
    sample_weight : ndarray of shape (n_samples,)
        Positive weights summing to one.

    Returns
    -------
    (program, coef, intercept, dual_point) or None
        ``None`` when :math:`[X, 1]` is not of full row rank (or a pattern cannot be
        realised exactly in floating point); the caller then solves the sampled Lasso.
    """
    X = np.asarray(X, dtype=float)
    if not has_full_row_rank(X):
        return None
    y = np.asarray(y, dtype=float).ravel()
    w = np.asarray(sample_weight, dtype=float)
    loss = SquaredLoss()
    z = water_filling(y, alpha, w, fit_intercept=True)
    b, masks, c = level_sets(z)
    Y = y[:, None]
    # the dual point exactly as certify() will see it (projection is deterministic)
    theta = loss.project_dual(loss.gradient(z[:, None], Y, w), Y, w)
    seen = loss.project_dual(theta, Y, w)[:, 0]
    columns = [masks[:, k] for k in range(masks.shape[1])]
    for extreme in (seen > 0, seen < 0):
        if extreme.any() and not any(np.array_equal(extreme, m) for m in columns):
            columns.append(extreme)
    if not columns:  # z constant and Theta == 0 (y constant): any one pattern will do
        columns.append(np.ones(len(y), dtype=bool))
    all_masks = np.column_stack(columns)
    gates = gates_for_masks(X, all_masks)
    if gates is None:
        return None
    program = ConvexProgram(
        loss, ColumnGroupL2(), PatternDictionary(X, gates), Y, w, float(alpha), complete=True
    )
    coef = np.zeros(program.coef_shape)
    coef[: len(c), 0, 0] = c
    return program, coef, np.array([b]), DualPoint(theta)



# --------------------------------------------------------------------------- deep networks


@dataclass
class DeepThresholdNetwork:
    """A deep threshold network: ``L - 1`` hidden layers of amplitude-scaled steps.

    .. math::

        h^{(0)} = x, \\qquad
        h^{(l)} = s^{(l)} \\odot \\mathbb 1\\big[h^{(l-1)} W^{(l)} + b^{(l)} > 0\\big]
        \\;(l = 1..L-1), \\qquad
        f(x) = h^{(L-1)} W^{(L)} + c,

    with the training objective (DESIGN.md conventions, weights :math:`w_i` summing to one)

    .. math::

        J = \\sum_i w_i\\, \\ell(f(x_i), y_i)
            + \\frac{\\alpha}{2}\\Big(\\lVert s^{(L-1)}\\rVert^2
            + \\lVert W^{(L)}\\rVert_F^2\\Big).

    Only the last hidden layer's amplitudes and the output weights are penalised: every
    earlier parameter feeds a step, which is invariant to positive rescaling of its
    input, so a penalty on them could be driven to zero without changing ``f`` (same
    optimal value, not attained), exactly as for the first layer of the two-layer
    network (:mod:`convexnn.threshold`).

    Attributes
    ----------
    weights : list of ndarray
        ``[W1 (n_features, m_1), ..., W_{L-1} (m_{L-2}, m_{L-1})]``.
    biases : list of ndarray
        ``[b1 (m_1,), ..., b_{L-1} (m_{L-1},)]``.
    amplitudes : list of ndarray
        ``[s1 (m_1,), ..., s_{L-1} (m_{L-1},)]``.
    output_weights : ndarray of shape (m_{L-1}, n_outputs)
    output_intercept : ndarray of shape (n_outputs,)
    activation : str
        Always ``"threshold"``.
    """

    weights: list
    biases: list
    amplitudes: list
    output_weights: np.ndarray
    output_intercept: np.ndarray
    activation: str = "threshold"

    @property
    def depth(self) -> int:
        """Number of weight layers ``L``."""
        return len(self.weights) + 1

    @property
    def hidden_layer_sizes(self) -> tuple[int, ...]:
        """Widths ``(m_1, ..., m_{L-1})``."""
        return tuple(int(W.shape[1]) for W in self.weights)

    @property
    def n_neurons(self) -> int:
        """Width of the last hidden layer."""
        return int(self.output_weights.shape[0])

    @property
    def coefs(self) -> list[np.ndarray]:
        """scikit-learn ``MLP`` layout: ``[W1, ..., W_{L-1}, W_L]``."""
        return [*self.weights, self.output_weights]

    @property
    def intercepts(self) -> list[np.ndarray]:
        """scikit-learn ``MLP`` layout: ``[b1, ..., b_{L-1}, c]``."""
        return [*self.biases, self.output_intercept]

    def hidden(self, X: np.ndarray, n_layers: int | None = None) -> np.ndarray:
        """Activations :math:`h^{(l)}` of hidden layer ``l = n_layers`` (default ``L - 1``)."""
        h = np.asarray(X, dtype=float)
        n_layers = len(self.weights) if n_layers is None else int(n_layers)
        for W, b, s in zip(self.weights[:n_layers], self.biases[:n_layers], self.amplitudes[:n_layers]):
            h = (h @ W + b > 0) * s[None, :]
        return h

    def forward(self, X: np.ndarray) -> np.ndarray:
        """Outputs, shape ``(n_samples, n_outputs)``."""
        return self.hidden(X) @ self.output_weights + self.output_intercept

    def weight_decay(self) -> float:
        """:math:`\\tfrac12(\\lVert s^{(L-1)}\\rVert^2 + \\lVert W^{(L)}\\rVert_F^2)`."""
        s = self.amplitudes[-1]
        return 0.5 * float(np.vdot(s, s) + np.vdot(self.output_weights, self.output_weights))

    def objective(self, X: np.ndarray, Y: np.ndarray, sample_weight: np.ndarray, loss, alpha: float) -> float:
        """The training objective ``J`` (weights sum to one)."""
        return loss.value(self.forward(X), Y, sample_weight) + alpha * self.weight_decay()

    def named_arrays(self) -> dict[str, np.ndarray]:
        """Every array under the names ``W1..WL``, ``b1..bL`` (``bL``: the output
        intercept), ``s1..s{L-1}`` (amplitudes), plus ``depth``."""
        out: dict[str, np.ndarray] = {"depth": np.asarray(float(self.depth))}
        for l, (W, b) in enumerate(zip(self.coefs, self.intercepts), start=1):
            out[f"W{l}"] = np.asarray(W, dtype=np.float64)
            out[f"b{l}"] = np.asarray(b, dtype=np.float64)
        for l, s in enumerate(self.amplitudes, start=1):
            out[f"s{l}"] = np.asarray(s, dtype=np.float64)
        return out

    def to_torch(self, squeeze_output: bool = False, dtype=None):
        """The same network as a ``torch.nn.Module`` (needs the ``torch`` extra).

        Parameters
        ----------
        squeeze_output : bool
            Return shape ``(n_samples,)`` instead of ``(n_samples, 1)``.
        dtype : torch.dtype, default torch.float64
        """
        from .export.torch import torch_builder

        torch, nn, t = torch_builder(dtype)
        net = self

        class DeepThresholdModule(nn.Module):
            """``h_l = s_l * 1[h_{l-1} W_l + b_l > 0]``, output ``h_{L-1} W_L + c``."""

            def __init__(self):
                super().__init__()
                self.squeeze_output = squeeze_output
                self.weights = nn.ParameterList([nn.Parameter(t(W)) for W in net.weights])
                self.biases = nn.ParameterList([nn.Parameter(t(b)) for b in net.biases])
                self.amplitudes = nn.ParameterList([nn.Parameter(t(s)) for s in net.amplitudes])
                self.W_out = nn.Parameter(t(net.output_weights))
                self.b_out = nn.Parameter(t(net.output_intercept))

            def forward(self, x):
                h = x.to(self.W_out.dtype)
                for W, b, s in zip(self.weights, self.biases, self.amplitudes):
                    h = (h @ W + b > 0).to(h.dtype) * s
                out = h @ self.W_out + self.b_out
                return out[:, 0] if self.squeeze_output else out

        return DeepThresholdModule()


def _separating_direction(X: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """A direction ``u`` whose projections ``X u`` separate the distinct rows of ``X``.

    Returns ``(u, v)`` with ``v`` the sorted distinct projections, or ``None`` when the
    rows are not distinct enough (after 20 tries of a fixed-seed Gaussian direction; for
    one feature ``u = 1``). The gap between consecutive projections must be at least
    ``1e-9`` of their spread, so that the midpoints below are robust to rounding.
    """
    n_distinct = np.unique(X, axis=0).shape[0]
    if n_distinct < 2:
        return None
    rng = np.random.default_rng(0)  # deterministic: the choice does not change J
    for attempt in range(20):
        u = np.ones(1) if X.shape[1] == 1 else rng.normal(size=X.shape[1])
        p = X @ u
        v = np.unique(p)
        spread = float(v[-1] - v[0])
        if v.size == n_distinct and spread > 0 and np.min(np.diff(v)) > 1e-9 * spread:
            return u, v
        if X.shape[1] == 1:
            break
    return None


def shattering_layers(X, hidden_layer_sizes) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Hidden layers ``1..L-2`` under which the training data is shattered.

    With ``N`` distinct rows of ``X`` and a direction ``u`` separating them (projections
    :math:`v_1 < \\dots < v_N`), layer 1 has the ``N - 1`` units
    :math:`\\mathbb 1[x \\cdot u - (v_k + v_{k+1})/2 > 0]` (amplitude 1): on the data
    its output ``F`` is a staircase, so :math:`[F, 1]` has rank ``N`` and every one of
    the :math:`2^N` patterns of the distinct points is
    :math:`\\mathbb 1[[F, 1] g > 0]` for some ``g`` (:func:`gates_for_masks`). Layers
    ``2..L-2`` copy it (``W = I``, ``b = -1/2``, ``s = 1``). These layers are not
    penalised (their scale is irrelevant to the steps that follow).

    Widths. For every pattern of the ``N`` points to be reachable by the units of layer
    ``L - 1``, halfspaces must shatter the features :math:`h^{(L-2)} \\in \\mathbb
    R^{m_{L-2}}`, and halfspaces in :math:`\\mathbb R^m` shatter at most ``m + 1``
    points: for layer ``L - 2``, :math:`m_{L-2} \\ge N - 1` is necessary. For layers
    ``1..L-3`` it is only what this construction uses (each carries the staircase); a
    narrower earlier layer can suffice for other constructions (e.g. when :math:`[X, 1]`
    has full row rank, :math:`\\lceil\\log_2 N\\rceil` first-layer units can give the
    points distinct binary codes, which the next layer turns into a staircase), so the
    ``ValueError`` below is a limit of this construction, not of the paper's theorem.
    (With one input feature it is necessary for layer 1 too: ``m`` steps along a line
    take at most ``m + 1`` distinct values.) The exported layers have exactly ``N - 1``
    units (units beyond that would be dead ones). This construction is convexnn's own;
    the paper states the simplified problem for data shattered at some layer without
    prescribing how the earlier layers achieve it.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    hidden_layer_sizes : sequence of int
        ``(m_1, ..., m_{L-1})``, at least two entries.

    Returns
    -------
    layers : list of ``(W, b, s)``, length ``L - 2``

    Raises
    ------
    ValueError
        If a width ``m_l`` (``l <= L - 2``) is below ``N - 1``, or the rows of ``X``
        cannot be separated by a projection (fewer than two distinct rows, or rows
        distinct only at rounding level).
    """
    X = np.asarray(X, dtype=float)
    sizes = [int(m) for m in hidden_layer_sizes]
    if len(sizes) < 2:
        raise ValueError(f"a deep threshold network needs at least two hidden layers; got {sizes}.")
    found = _separating_direction(X)
    if found is None:
        raise ValueError(
            "the deep threshold network needs at least two distinct training inputs that a "
            "projection separates (rows equal up to rounding cannot be shattered)."
        )
    u, v = found
    N = v.size
    narrow = [(l + 1, m) for l, m in enumerate(sizes[:-1]) if m < N - 1]
    if narrow:
        l, m = narrow[0]
        raise ValueError(
            f"hidden layer {l} has width {m}, but convexnn's shattering construction of the {N} "
            f"distinct training inputs carries a staircase of {N - 1} steps through hidden layers "
            f"1..{len(sizes) - 1} and needs width >= {N - 1} in each (for layer {len(sizes) - 1}, "
            f"the last before the Lasso layer, this is necessary for every pattern to be "
            f"reachable); use hidden_layer_sizes with those layers >= {N - 1}."
        )
    theta = 0.5 * (v[:-1] + v[1:])
    layers = [(np.repeat(u[:, None], N - 1, axis=1), -theta, np.ones(N - 1))]
    for _ in range(len(sizes) - 2):
        layers.append((np.eye(N - 1), np.full(N - 1, -0.5), np.ones(N - 1)))
    return layers


def apply_layers(X, layers) -> np.ndarray:
    """Forward pass through ``(W, b, s)`` layers: :math:`h \\mapsto s \\odot \\mathbb 1[h W + b > 0]`."""
    h = np.asarray(X, dtype=float)
    for W, b, s in layers:
        h = (h @ W + b > 0) * s[None, :]
    return h


def deep_threshold_network(layers, gates, coef, intercept, penalty: Penalty, max_width: int | None = None) -> DeepThresholdNetwork:
    """The deep threshold network of a Lasso solution over the patterns of layer ``L - 2``.

    Parameters
    ----------
    layers : list of ``(W, b, s)``
        Hidden layers ``1..L-2`` (:func:`shattering_layers`).
    gates : ndarray of shape (m_{L-2} + 1, n_patterns)
        The Lasso dictionary's gates on the layer-``L - 2`` features.
    coef, intercept, penalty
        As for :func:`threshold_network`: unit ``k`` of the last hidden layer gets
        :math:`s_k = \\pm\\sqrt{\\lVert C_k\\rVert}`, :math:`W^{(L)}_k = C_k / s_k`.
    max_width : int, optional
        ``m_{L-1}``; a ``ValueError`` is raised when the solution needs more units.
    """
    last = threshold_network(gates, coef, intercept, penalty)
    if max_width is not None and last.n_neurons > max_width:
        raise ValueError(
            f"the optimal network needs {last.n_neurons} units in the last hidden layer, but "
            f"hidden_layer_sizes[-1] = {max_width} (the width condition m_{{L-1}} >= "
            f"{last.n_neurons}); increase the last hidden layer's width."
        )
    return DeepThresholdNetwork(
        weights=[W for W, _, _ in layers] + [last.coefs[0]],
        biases=[b for _, b, _ in layers] + [last.intercepts[0]],
        amplitudes=[s for _, _, s in layers] + [last.amplitudes],
        output_weights=last.coefs[1],
        output_intercept=last.intercepts[1],
    )
