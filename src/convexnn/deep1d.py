"""Deep networks on one-dimensional data as Lasso problems ("A library of mirrors").

Zeger, Wang, Mishkin, Ergen, Candès & Pilanci (2024) show that training a network on
scalar inputs :math:`x_1..x_n` with the penalty :math:`\\tfrac{\\beta}{L}\\sum|\\theta|^L`
over its weights (biases unpenalised) is a Lasso over a fixed dictionary of features
built from the training points. This module builds those dictionaries, solves the
minimum-norm interpolation (``alpha = 0``) exactly as a linear program, and turns a
Lasso solution back into the network it stands for.

Architecture: parallel narrow chains
------------------------------------
The network is a sum of ``m`` chains, each with ``L - 1`` hidden layers of width one:

.. math::

    h^{(0)}_k = x,\\qquad h^{(l)}_k = \\sigma\\big(w_{k,l}\\, h^{(l-1)}_k + b_{k,l}\\big)
    \\;(l = 1..L-1),\\qquad f(x) = \\xi + \\sum_{k=1}^m \\alpha_k h^{(L-1)}_k,

penalised by :math:`P(\\theta) = \\tfrac1L\\sum_k\\big(|\\alpha_k|^L + \\sum_l
|w_{k,l}|^L\\big)` (biases and :math:`\\xi` free). For ReLU, leaky ReLU and absolute
value, a chain is positively homogeneous in its weights (with its biases rescaled), so
it equals :math:`z_k\\,\\phi_k(x)` with :math:`\\phi_k` the same chain with unit weights
and :math:`|z_k| = |\\alpha_k|\\prod_l|w_{k,l}|`; by the AM-GM inequality the cheapest
chain with a given :math:`z_k` has every weight of magnitude :math:`|z_k|^{1/L}` and
costs exactly :math:`|z_k|`. Training is therefore

.. math::

    \\min_{z,\\xi}\\; \\tfrac12\\sum_i w_i\\,\\big((A z)_i + \\xi - y_i\\big)^2
    + \\alpha\\,\\lVert z\\rVert_1

over the dictionary :math:`A_{ij} = \\phi_j(x_i)` of unit chains, once the (infinite)
family of unit chains is reduced to a finite one: between consecutive data points a
feature's values on the data are affine in its breakpoints, so the dual constraint
:math:`|A^\\top\\lambda| \\le \\alpha` is tightest at breakpoints on data points (or, at
depth 4, at their reflections).

Dictionaries (``x_j`` data points, ``s = \\pm 1``):

* depth 2: ``relu`` / ``leaky_relu`` / ``abs`` ramps :math:`\\sigma(s(x - x_j))`;
  ``sign`` / ``threshold`` steps :math:`\\sigma(s(x - x_j))` with
  :math:`\\sigma(0) = +1` (the step sits *at* the data point, closed on its side);
* depth 3 (ReLU): ramps and capped ramps
  :math:`\\mathrm{relu}(s_2(\\mathrm{relu}(s_1(x - x_{j_1})) - t_2))` with
  :math:`t_2` the inner unit's value at :math:`x_{j_2}`, i.e. clamps between two data
  points;
* depth 4 (ReLU): one more clamp layer (threshold at the value at :math:`x_{j_3}`), and
  first-layer breakpoints at the reflections :math:`2x_{j_2} - x_{j_1}` of data points
  about data points (the paper's :math:`k = 1` features).

Step activations are scale invariant, so their units carry a trainable amplitude
:math:`a_k` (:math:`a_k\\sigma(w_k x + b_k)`, Ergen et al. 2023); the penalty is
:math:`\\tfrac12\\sum_k(a_k^2 + \\alpha_k^2)` and the inner weight is exported with
:math:`|w_k| = 1` (its size is meaningless). As chains, only depth 2 is built for them, and
only depth 2 for ``leaky_relu`` and ``abs``: deeper narrow chains of step units compute
the same step features (a step of a step is a step). Deeper step networks are built as
parallel **rectangular blocks** (``architecture="rectangular"``, any depth >= 3, see
:class:`BlockNetwork` and :func:`build_switch_dictionary`); the paper's *tree* networks
of sign units are not built.

What is the paper's and what is convexnn's
------------------------------------------
The paper's abstract (arXiv 2403.01046, v1) states: training on 1-D data is a Lasso
with a fixed, explicit dictionary that depends on activation and depth, for 2-layer
networks with piecewise-linear activations, deep narrow ReLU networks of up to 4
layers, and rectangular and tree networks with sign activation of arbitrary depth; in
ReLU networks a fourth layer creates features at reflections of the training data.
(Later versions say that in "certain general architectures" with absolute value or
ReLU a *third* layer already creates reflections; those architectures are not the
parallel narrow chains built here.) The theorem statements themselves (exact
penalties, widths, dictionary index sets) could not be consulted while writing this
module, so the following are convexnn's own derivations, each checked by tests
(cvxpy on brute-force dictionaries, L-BFGS from random starts, the issue's
interpolation oracles) rather than taken from the paper:

* the completeness argument above (features affine in their breakpoints between
  data points; AM-GM balancing of the :math:`\\tfrac1L\\sum|\\theta|^L` penalty);
* the step activations' amplitude parametrisation and its penalty
  :math:`\\tfrac12\\sum(a_k^2 + \\alpha_k^2)` (taken from Ergen et al. 2023 for
  threshold units, applied here to 1-D chains and blocks);
* that with parallel narrow ReLU chains depth 4 has the same optimal value as depth 3
  (the reflection features are, on the data, convex combinations of depth-3 clamps);
* the rectangular-block dictionary (step features with at most ``width`` switches at
  data points) and the block that realises each feature;
* the deduplication and tie-breaking rules below.

Every feature of the ReLU chains is a *clamp* :math:`c + \\min(\\mathrm{relu}(s(x -
a)), h)` (breakpoints :math:`a` and :math:`a + s h`, :math:`h \\le \\infty`): clamping
a clamp at its value at a data point gives a clamp whose breakpoints are old ones or
that data point, so the dictionaries are built symbolically (exact comparisons of
breakpoints, no floating-point drift) and only the distinct ones are evaluated.

Deduplication and tie-breaking. With a free intercept two features that coincide on
the training points up to sign and an additive constant are the same Lasso column
(same fit, same cost). Each column keeps one representative feature — the **first**
in this order: (1) no reflection breakpoint before a reflection breakpoint; (2) ramps
(one breakpoint) before capped ramps; (3) smaller breakpoints first (lexicographic);
(4) earlier in the enumeration (the paper's index order ``(k, s, j)``). The network
is built from the representatives; ``Dictionary.features_of`` lists every enumerated
feature a column stands for. Features constant on the data are dropped (the
intercept covers them).

With parallel chains the depth-4 reflection features are, on the data, convex
combinations of depth-3 clamps between data points, so depth 4 reaches the same
optimal *value* as depth 3 (the optimum never increases with depth because the
dictionaries are nested). Reflections change which optimal networks exist: they can
be sparser and kink between data points.

``alpha`` is DESIGN.md's: the mean squared loss plus ``alpha`` times the penalty. The
paper writes :math:`\\tfrac12\\lVert f - y\\rVert^2 + \\beta P(\\theta)` (a sum), so
``alpha = beta / n_samples``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ACTIVATIONS",
    "ARCHITECTURES",
    "BlockNetwork",
    "SwitchDictionary",
    "blocks_from_lasso",
    "build_switch_dictionary",
    "network_from_lasso",
    "ChainNetwork",
    "Dictionary",
    "build_dictionary",
    "chains_from_lasso",
    "lasso_alpha_max",
    "min_norm_interpolation",
    "plot_deep1d",
    "refine_lasso_support",
]

#: activations and the depths built for each
ACTIVATIONS: dict[str, tuple[int, ...]] = {
    "relu": (2, 3, 4),
    "leaky_relu": (2,),
    "abs": (2,),
    "sign": (2,),
    "threshold": (2,),
}
STEP_ACTIVATIONS = ("sign", "threshold")
#: ``"chains"``: parallel narrow chains; ``"rectangular"``: parallel rectangular blocks
#: of step units (sign / threshold, any depth >= 3)
ARCHITECTURES = ("chains", "rectangular")

#: largest ``n_samples * n_atoms`` (entries of the dictionary) that is built
MAX_DICTIONARY_ENTRIES = 25_000_000
#: largest number of enumerated features (the map column -> features is kept for all)
MAX_ENUMERATED = 20_000_000
_CHUNK = 1 << 18


def _squared_objective(net, x, y, alpha: float, sample_weight=None) -> float:
    """:math:`\\tfrac12\\sum_i w_i (f(x_i) - y_i)^2 + \\alpha P` of a 1-D network ``net``
    (its ``forward`` and ``penalty``); ``w`` sums to one, uniform when None."""
    y = np.asarray(y, dtype=float).reshape(-1)
    w = np.full(y.shape[0], 1.0 / y.shape[0]) if sample_weight is None else np.asarray(sample_weight, float)
    r = net.forward(x) - y
    return 0.5 * float(w @ (r * r)) + alpha * net.penalty()


# --------------------------------------------------------------------------- activations


def activate(t: np.ndarray, activation: str, negative_slope: float = 0.01) -> np.ndarray:
    """Apply an activation elementwise (steps use :math:`\\sigma(0) = +1`)."""
    if activation == "relu":
        return np.maximum(t, 0.0)
    if activation == "leaky_relu":
        return np.where(t > 0, t, negative_slope * t)
    if activation == "abs":
        return np.abs(t)
    if activation == "sign":
        return np.where(t >= 0, 1.0, -1.0)
    if activation == "threshold":
        return (t >= 0).astype(float)
    raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}.")


def check_architecture(depth: int, activation: str, negative_slope: float = 0.01, *,
                       architecture: str = "chains", width: int = 2) -> None:
    """Raise ``ValueError`` for a combination this module does not build."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}.")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {list(ARCHITECTURES)}.")
    if architecture == "rectangular":
        if activation not in STEP_ACTIVATIONS:
            raise ValueError(
                f"architecture='rectangular' is built for the step activations {STEP_ACTIVATIONS}; "
                f"got activation={activation!r}."
            )
        if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 3:
            raise ValueError(f"architecture='rectangular' needs an integer depth >= 3, got {depth!r}.")
        if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
            raise ValueError(f"width must be a positive integer, got {width!r}.")
        return
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth not in (2, 3, 4):
        raise ValueError(f"depth must be 2, 3 or 4 (number of weight layers), got {depth!r}.")
    if depth not in ACTIVATIONS[activation]:
        hint = " (or architecture='rectangular' for deeper step networks)" if activation in STEP_ACTIVATIONS else ""
        raise ValueError(
            f"depth={depth} is not available for activation={activation!r}: the Lasso "
            f"equivalence for parallel narrow chains is built for depths "
            f"{ACTIVATIONS[activation]} with this activation (depths 3 and 4 need 'relu'){hint}."
        )
    if activation == "leaky_relu" and not (0.0 <= negative_slope < 1.0):
        raise ValueError(f"negative_slope must be in [0, 1), got {negative_slope!r}.")


# --------------------------------------------------------------------------- network


@dataclass
class ChainNetwork:
    """Parallel narrow chains: :math:`f(x) = \\xi + \\sum_k \\alpha_k h_k^{(L-1)}(x)`.

    Each chain ``k`` has ``depth - 1`` hidden units of width one,
    :math:`h^{(l)}_k = a_{k,l}\\,\\sigma(w_{k,l} h^{(l-1)}_k + b_{k,l})` with
    :math:`h^{(0)} = x` (the amplitude :math:`a_{k,l}` exists for step activations
    only; otherwise it is 1).

    Attributes
    ----------
    weights, biases : ndarray of shape (n_chains, depth - 1)
    output_weights : ndarray of shape (n_chains,)
    intercept : float
    activation : str
    negative_slope : float
        Slope of ``leaky_relu`` for negative inputs.
    amplitudes : ndarray of shape (n_chains, depth - 1) or None
        Step activations only.
    """

    weights: np.ndarray
    biases: np.ndarray
    output_weights: np.ndarray
    intercept: float
    activation: str = "relu"
    negative_slope: float = 0.01
    amplitudes: np.ndarray | None = None

    @property
    def depth(self) -> int:
        """Number of weight layers ``L`` (hidden layers + output)."""
        return self.weights.shape[1] + 1

    @property
    def n_chains(self) -> int:
        """Number of parallel chains (non-zero Lasso coefficients)."""
        return self.weights.shape[0]

    def _hidden(self, x: np.ndarray):
        h = x[:, None]
        for layer in range(self.weights.shape[1]):
            pre = h * self.weights[:, layer] + self.biases[:, layer]
            h = activate(pre, self.activation, self.negative_slope)
            if self.amplitudes is not None:
                h = h * self.amplitudes[:, layer]
        return h

    def forward(self, x) -> np.ndarray:
        """Outputs at scalar inputs ``x`` (shape ``(n,)`` or ``(n, 1)``), shape ``(n,)``."""
        x = np.asarray(x, dtype=float).reshape(-1)
        return self._hidden(x) @ self.output_weights + self.intercept

    def features(self, x) -> np.ndarray:
        """Chain outputs before the output weights, shape ``(n, n_chains)``."""
        return self._hidden(np.asarray(x, dtype=float).reshape(-1))

    def penalty(self) -> float:
        """:math:`\\tfrac1L\\sum|\\theta|^L` over the weights (biases and intercept free).

        For step activations the penalised weights are the amplitudes and the output
        weights; the scale-free inner weights are not penalised.
        """
        L = self.depth
        total = float(np.sum(np.abs(self.output_weights) ** L))
        if self.amplitudes is None:
            total += float(np.sum(np.abs(self.weights) ** L))
        else:
            total += float(np.sum(np.abs(self.amplitudes) ** L))
        return total / L

    def objective(self, x, y, alpha: float, sample_weight=None) -> float:
        """:math:`\\tfrac12\\sum_i w_i (f(x_i) - y_i)^2 + \\alpha P(\\theta)` (weights sum to one;
        the plain mean when ``sample_weight`` is None)."""
        return _squared_objective(self, x, y, alpha, sample_weight)

    def to_torch(self, dtype=None):
        """The same network as a ``torch.nn.Module`` mapping ``(n,)`` or ``(n, 1)`` to ``(n,)``."""
        from .export.torch import torch_builder

        torch, nn, t = torch_builder(dtype)
        net = self

        class ParallelChains(nn.Module):
            """``xi + sum_k alpha_k h_k``, each ``h_k`` a chain of width-one layers."""

            def __init__(self):
                super().__init__()
                self.activation = net.activation
                self.negative_slope = float(net.negative_slope)
                self.weight = nn.Parameter(t(net.weights))
                self.bias = nn.Parameter(t(net.biases))
                self.output_weight = nn.Parameter(t(net.output_weights))
                self.intercept = nn.Parameter(t(np.array(net.intercept)))
                if net.amplitudes is not None:
                    self.amplitude = nn.Parameter(t(net.amplitudes))
                else:
                    self.amplitude = None

            def act(self, pre):
                if self.activation == "relu":
                    return torch.relu(pre)
                if self.activation == "leaky_relu":
                    return torch.where(pre > 0, pre, self.negative_slope * pre)
                if self.activation == "abs":
                    return torch.abs(pre)
                if self.activation == "sign":
                    return torch.where(pre >= 0, 1.0, -1.0).to(pre.dtype)
                return (pre >= 0).to(pre.dtype)

            def forward(self, x):
                h = x.reshape(-1, 1).to(self.weight.dtype)
                for layer in range(self.weight.shape[1]):
                    h = self.act(h * self.weight[:, layer] + self.bias[:, layer])
                    if self.amplitude is not None:
                        h = h * self.amplitude[:, layer]
                return h @ self.output_weight + self.intercept

        return ParallelChains()


# --------------------------------------------------------------------------- dictionary


@dataclass
class Dictionary:
    """A deduplicated feature dictionary on the training points.

    Attributes
    ----------
    A : ndarray of shape (n_points, n_atoms)
        Column ``j`` is the representative unit chain of atom ``j`` at the sorted
        distinct training inputs ``points``.
    points : ndarray of shape (n_points,)
        Sorted distinct training inputs.
    depth, activation, negative_slope :
        The architecture.
    signs, biases : ndarray of shape (n_atoms, depth - 1)
        The representative unit chain of each atom: layer ``l`` computes
        :math:`\\sigma(s_l h + \\beta_l)`.
    breakpoints : ndarray of shape (n_atoms, 2)
        Kinks (steps for step activations) of each atom; the second is NaN for ramps.
    reflection : ndarray of bool, shape (n_atoms, 2)
        Whether each breakpoint is a reflection :math:`2x_j - x_i` that is not a data
        point.
    feature_column : ndarray of int, shape (n_enumerated,)
        Column of every enumerated feature (``-1``: constant on the data, dropped).
    enumeration_shape : tuple of int
        Shape whose C-order flat index is the enumeration index: ``(K, 2, ..., 2, N,
        ..., N)`` for the paper's tuple ``(k, s_1..s_{L-1}, j_1..j_{L-1})``.
    """

    A: np.ndarray
    points: np.ndarray
    depth: int
    activation: str
    negative_slope: float
    signs: np.ndarray
    biases: np.ndarray
    breakpoints: np.ndarray
    reflection: np.ndarray
    feature_column: np.ndarray
    enumeration_shape: tuple

    @property
    def n_atoms(self) -> int:
        """Number of columns."""
        return self.A.shape[1]

    def evaluate(self, x) -> np.ndarray:
        """The atoms at inputs ``x``, shape ``(n, n_atoms)``."""
        x = np.asarray(x, dtype=float).reshape(-1)
        return _unit_chains(x, self.signs, self.biases, self.activation, self.negative_slope)

    def features_of(self, column: int) -> list[dict]:
        """Every enumerated feature that column ``column`` stands for.

        Each is a dict ``{"k": 0 or 1, "s": tuple of ±1, "j": tuple of point indices}``
        in the paper's notation (``k = 1``: first breakpoint at the reflection
        :math:`2x_{j_2} - x_{j_1}`; indices into ``points``).
        """
        idx = np.flatnonzero(self.feature_column == column)
        m = self.depth - 1
        out = []
        for flat in idx:
            parts = np.unravel_index(flat, self.enumeration_shape)
            out.append(
                {
                    "k": int(parts[0]),
                    "s": tuple(int(1 - 2 * b) for b in parts[1 : 1 + m]),
                    "j": tuple(int(j) for j in parts[1 + m :]),
                }
            )
        return out


def _unit_chains(x, signs, biases, activation, negative_slope):
    h = np.repeat(x[:, None], signs.shape[0], axis=1)
    for layer in range(signs.shape[1]):
        h = activate(h * signs[:, layer] + biases[:, layer], activation, negative_slope)
    return h


def _snap(values: np.ndarray, points: np.ndarray, scale: float) -> np.ndarray:
    """Replace values within rounding (1e-12 of the data scale) of a data point by it."""
    out = np.array(values, dtype=float, copy=True)
    pos = np.searchsorted(points, out)
    for cand in (np.clip(pos - 1, 0, points.size - 1), np.clip(pos, 0, points.size - 1)):
        near = np.abs(points[cand] - out) <= 1e-12 * scale
        out[near] = points[cand][near]
    return out


def _relu_pass(points, grid, k, S, J):
    """Symbolic clamps of ReLU unit chains for a batch of enumerated tuples.

    A unit chain's output is :math:`\\min(\\mathrm{relu}(s(x - a)), h)` (it is always
    0 at the data point that set its last threshold, so no constant appears), stored as
    ``(a, e, s)`` with ``e = a + s h`` (``e = NaN`` for ``h = inf``) as indices into
    ``grid`` (data points then reflections). Returns ``(a_id, e_id, s, alive, biases)``;
    ``biases[:, l]`` is the unit-chain bias of layer ``l``.
    """
    T, m = S.shape
    x = points
    a_val = x[J[:, 0]]
    if m >= 2 and np.any(k == 1):
        # the paper's k = 1 features: first breakpoint at the reflection of x_{j1} about x_{j2}
        mirror = _snap(2 * x[J[:, 1]] - x[J[:, 0]], points, grid["scale"])
        a_val = np.where(k == 1, mirror, a_val)
    a_id = np.searchsorted(grid["values"], a_val)
    e_id = np.full(T, -1)
    s = S[:, 0].astype(float)
    alive = np.ones(T, bool)
    biases = np.zeros((T, m))
    biases[:, 0] = -s * a_val
    vals = grid["values"]
    for layer in range(1, m):
        xj = x[J[:, layer]]
        sigma = S[:, layer].astype(float)
        a = vals[a_id]
        finite = e_id >= 0
        e = np.where(finite, vals[np.maximum(e_id, 0)], np.nan)
        zero_side = s * (xj - a) <= 0
        beyond = finite & (s * (xj - e) >= 0)
        between = ~zero_side & ~beyond
        # threshold t = value of the current unit chain at x_j
        h = np.where(finite, np.abs(e - a), np.inf)
        t = np.where(zero_side, 0.0, np.where(beyond, h, np.abs(xj - a)))
        biases[:, layer] = -sigma * t
        plus = sigma > 0
        xj_id = np.searchsorted(vals, xj)
        new_a = a_id.copy()
        new_e = e_id.copy()
        new_s = s.copy()
        # sigma = +1: zero side keeps, between moves the start to x_j, beyond dies
        m1 = plus & between
        new_a[m1] = xj_id[m1]
        alive &= ~(plus & beyond)
        # sigma = -1: zero side dies, between -> clamp from x_j back to a, beyond -> reversed
        m2 = ~plus & between
        new_a[m2], new_e[m2], new_s[m2] = xj_id[m2], a_id[m2], -s[m2]
        m3 = ~plus & beyond
        new_a[m3], new_e[m3], new_s[m3] = e_id[m3], a_id[m3], -s[m3]
        alive &= ~(~plus & zero_side)
        a_id, e_id, s = new_a, new_e, new_s
    return a_id, e_id, s, alive, biases


def _dedup_columns(M: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Columns equal up to sign and an additive constant (on the rows of ``M``).

    Returns ``(keep, label)``: ``keep`` lists the first column of every class (in the
    given order), ``label[i]`` is the class of column ``i`` (``-1``: constant column).
    """
    n, K = M.shape
    label = np.full(K, -1)
    if K == 0 or n == 0:
        return np.zeros(0, int), label
    D = M - M[:1]
    tol = 1e-9 * scale
    nonconst = np.abs(D).max(axis=0) > tol
    first = np.argmax(np.abs(D) > tol, axis=0)
    sgn = np.sign(D[first, np.arange(K)])
    D = D * np.where(sgn == 0, 1.0, sgn)
    q = np.round(D / tol).astype(np.int64)
    idx = np.flatnonzero(nonconst)
    if idx.size == 0:
        return np.zeros(0, int), label
    _, first_pos, inv = np.unique(q[:, idx].T, axis=0, return_index=True, return_inverse=True)
    inv = inv.reshape(-1)
    order = np.argsort(first_pos)  # classes by first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    label[idx] = rank[inv]
    keep = idx[np.sort(first_pos)]
    return keep, label


def build_dictionary(x, depth: int = 2, activation: str = "relu", negative_slope: float = 0.01) -> Dictionary:
    """Build the deduplicated dictionary of the depth-``depth`` chains on inputs ``x``.

    Parameters
    ----------
    x : array-like of shape (n_samples,) or (n_samples, 1)
        Training inputs (duplicates allowed).
    depth : {2, 3, 4}
    activation : {"relu", "leaky_relu", "abs", "sign", "threshold"}
    negative_slope : float, default=0.01

    Returns
    -------
    Dictionary
        ``A`` is evaluated at the sorted distinct inputs; see :class:`Dictionary`.
    """
    check_architecture(depth, activation, negative_slope)
    x = np.asarray(x, dtype=float).reshape(-1)
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError("x must be a non-empty array of finite numbers.")
    points = np.unique(x)
    N = points.size
    scale = max(float(np.ptp(points)), float(np.abs(points).max()), 1e-300)
    m = depth - 1
    K = 2 if (activation == "relu" and depth == 4) else 1
    shape = (K,) + (2,) * m + (N,) * m
    total = int(np.prod(shape))
    if total > MAX_ENUMERATED:
        raise ValueError(
            f"depth={depth} enumerates {total:,} features on {N} distinct inputs "
            f"(limit {MAX_ENUMERATED:,}); use fewer distinct points or a smaller depth "
            "(with parallel ReLU chains depth 3 reaches the same optimal value as depth 4)."
        )

    if activation != "relu" or depth == 2:
        # direct evaluation of the 2N depth-2 features
        if total * N > MAX_DICTIONARY_ENTRIES:
            raise ValueError(
                f"the depth-2 dictionary on {N} distinct inputs has {total * N:,} entries "
                f"(limit {MAX_DICTIONARY_ENTRIES:,}); use fewer distinct points."
            )
        flat = np.arange(total)
        parts = np.unravel_index(flat, shape)
        s = 1.0 - 2.0 * parts[1]
        a = points[parts[2]]
        signs, biases = s[:, None], (-s * a)[:, None]
        bps = np.column_stack([a, np.full(total, np.nan)])
        refl = np.zeros((total, 2), bool)
        # tie-break order: (no reflection), ramps first, smaller breakpoints, enumeration
        order = np.lexsort((flat, a))
        M = _unit_chains(points, signs[order], biases[order], activation, negative_slope)
        keep, label = _dedup_columns(M, scale)
        sel = order[keep]
        feature_column = np.full(total, -1)
        feature_column[order] = label
        return Dictionary(
            A=M[:, keep], points=points, depth=depth, activation=activation,
            negative_slope=negative_slope, signs=signs[sel], biases=biases[sel],
            breakpoints=bps[sel], reflection=refl[sel], feature_column=feature_column,
            enumeration_shape=shape,
        )

    # ReLU depth 3 / 4: symbolic clamps
    refl_vals = np.zeros(0)
    if K == 2:
        refl_vals = (2 * points[None, :] - points[:, None]).ravel()
        refl_vals = _snap(refl_vals, points, scale)
    values = np.unique(np.concatenate([points, refl_vals]))
    is_data = np.isin(values, points)
    grid = {"values": values, "scale": scale}
    G = values.size
    keys = np.empty(total, np.int64)
    for start in range(0, total, _CHUNK):
        flat = np.arange(start, min(start + _CHUNK, total))
        parts = np.unravel_index(flat, shape)
        S = 1 - 2 * np.column_stack(parts[1 : 1 + m])
        J = np.column_stack(parts[1 + m :])
        a_id, e_id, s, alive, _ = _relu_pass(points, grid, parts[0], S, J)
        # canonical key up to sign and constant: ramp (a, s) or clamp {lo, hi}
        lo = np.minimum(a_id, np.where(e_id >= 0, e_id, a_id))
        hi = np.maximum(a_id, e_id)
        ramp_key = 2 * a_id + (s > 0)
        clamp_key = 2 * G + lo * G + hi
        key = np.where(e_id >= 0, clamp_key, ramp_key)
        keys[start : start + flat.size] = np.where(alive, key, -1)
    live = np.flatnonzero(keys >= 0)
    ukeys, first, inv = np.unique(keys[live], return_index=True, return_inverse=True)
    rep = live[first]  # first enumerated tuple of every symbolic class
    parts = np.unravel_index(rep, shape)
    S = 1 - 2 * np.column_stack(parts[1 : 1 + m])
    J = np.column_stack(parts[1 + m :])
    a_id, e_id, s, alive, biases = _relu_pass(points, grid, parts[0], S, J)
    b1 = values[a_id]
    b2 = np.where(e_id >= 0, values[np.maximum(e_id, 0)], np.nan)
    bps = np.column_stack([np.minimum(b1, np.where(np.isnan(b2), b1, b2)), np.where(np.isnan(b2), np.nan, np.maximum(b1, b2))])
    refl = np.column_stack([~is_data[a_id], (e_id >= 0) & ~is_data[np.maximum(e_id, 0)]])
    has_refl = refl.any(axis=1)
    capped = e_id >= 0
    n_atoms_max = ukeys.size
    if n_atoms_max * N > MAX_DICTIONARY_ENTRIES:
        raise ValueError(
            f"the depth-{depth} dictionary has {n_atoms_max:,} distinct features on {N} points "
            f"({n_atoms_max * N:,} entries, limit {MAX_DICTIONARY_ENTRIES:,}); use fewer "
            "distinct points or a smaller depth."
        )
    bp2 = np.where(np.isnan(bps[:, 1]), -np.inf, bps[:, 1])
    order = np.lexsort((rep, bp2, bps[:, 0], capped, has_refl))
    M = _unit_chains(points, S[order].astype(float), biases[order], "relu", negative_slope)
    keep, label = _dedup_columns(M, scale)
    class_label = np.empty(ukeys.size, int)
    class_label[order] = label
    feature_column = np.full(total, -1)
    feature_column[live] = class_label[inv.reshape(-1)]
    sel = order[keep]
    return Dictionary(
        A=M[:, keep], points=points, depth=depth, activation="relu",
        negative_slope=negative_slope, signs=S[sel].astype(float), biases=biases[sel],
        breakpoints=bps[sel], reflection=refl[sel], feature_column=feature_column,
        enumeration_shape=shape,
    )


# --------------------------------------------------------------------------- rectangular step blocks


def _step_levels(activation: str) -> tuple[float, float]:
    """(low, high) values of a step activation."""
    return (-1.0, 1.0) if activation == "sign" else (0.0, 1.0)


@dataclass
class BlockNetwork:
    """Parallel rectangular blocks of step units on a scalar input.

    Block ``k`` has hidden layers ``1..L-2`` of width ``m`` and one unit in layer
    ``L - 1``:

    .. math::

        u^{(1)}_k = \\sigma(w_k x + c_k) \\in \\mathbb R^m,\\qquad
        u^{(l)}_k = \\sigma(u^{(l-1)}_k V_{k,l} + c_{k,l}) \\;(l = 2..L-2),\\qquad
        g_k = a_k\\,\\sigma(u^{(L-2)}_k \\cdot v_k + d_k),

    and :math:`f(x) = \\xi + \\sum_k \\alpha_k g_k`, with the penalty
    :math:`P = \\tfrac12\\sum_k (a_k^2 + \\alpha_k^2)` (every earlier weight feeds a
    scale-invariant step and is not penalised). :math:`\\sigma` is ``sign`` or
    ``threshold`` with :math:`\\sigma(0) = \\sigma(\\text{high})`.

    Attributes
    ----------
    first_weights, first_biases : ndarray of shape (n_blocks, m)
    inner_weights : ndarray of shape (n_blocks, L - 3, m, m)
    inner_biases : ndarray of shape (n_blocks, L - 3, m)
    block_weights : ndarray of shape (n_blocks, m)
    block_biases, amplitudes, output_weights : ndarray of shape (n_blocks,)
    intercept : float
    activation : str
    """

    first_weights: np.ndarray
    first_biases: np.ndarray
    inner_weights: np.ndarray
    inner_biases: np.ndarray
    block_weights: np.ndarray
    block_biases: np.ndarray
    amplitudes: np.ndarray
    output_weights: np.ndarray
    intercept: float
    activation: str = "sign"

    @property
    def depth(self) -> int:
        """Number of weight layers ``L`` (hidden layers ``1..L-1`` + output)."""
        return self.inner_weights.shape[1] + 3

    @property
    def n_chains(self) -> int:
        """Number of parallel blocks (non-zero Lasso coefficients)."""
        return self.first_weights.shape[0]

    @property
    def width(self) -> int:
        """Width ``m`` of the blocks' layers ``1..L-2``."""
        return self.first_weights.shape[1]

    def features(self, x) -> np.ndarray:
        """Block outputs :math:`g_k(x)`, shape ``(n, n_blocks)``."""
        x = np.asarray(x, dtype=float).reshape(-1)
        u = activate(x[:, None, None] * self.first_weights + self.first_biases, self.activation)
        for l in range(self.inner_weights.shape[1]):
            pre = np.einsum("nbi,bij->nbj", u, self.inner_weights[:, l]) + self.inner_biases[:, l]
            u = activate(pre, self.activation)
        pre = np.einsum("nbi,bi->nb", u, self.block_weights) + self.block_biases
        return activate(pre, self.activation) * self.amplitudes

    def forward(self, x) -> np.ndarray:
        """Outputs at scalar inputs ``x``, shape ``(n,)``."""
        return self.features(x) @ self.output_weights + self.intercept

    def penalty(self) -> float:
        """:math:`\\tfrac12\\sum_k (a_k^2 + \\alpha_k^2)`."""
        return 0.5 * float(np.sum(self.amplitudes**2) + np.sum(self.output_weights**2))

    def objective(self, x, y, alpha: float, sample_weight=None) -> float:
        """:math:`\\tfrac12\\sum_i w_i (f(x_i) - y_i)^2 + \\alpha P` (weights sum to one)."""
        return _squared_objective(self, x, y, alpha, sample_weight)

    def to_torch(self, dtype=None):
        """The same network as a ``torch.nn.Module`` mapping ``(n,)`` or ``(n, 1)`` to ``(n,)``."""
        from .export.torch import torch_builder

        torch, nn, t = torch_builder(dtype)
        net = self

        class ParallelStepBlocks(nn.Module):
            """``xi + sum_k alpha_k a_k sigma(u_k . v_k + d_k)``, ``u_k`` a rectangular step block."""

            def __init__(self):
                super().__init__()
                self.activation = net.activation
                for name in ("first_weights", "first_biases", "inner_weights", "inner_biases",
                             "block_weights", "block_biases", "amplitudes", "output_weights"):
                    setattr(self, name, nn.Parameter(t(getattr(net, name))))
                self.intercept = nn.Parameter(t(np.array(net.intercept)))

            def act(self, pre):
                if self.activation == "sign":
                    return torch.where(pre >= 0, 1.0, -1.0).to(pre.dtype)
                return (pre >= 0).to(pre.dtype)

            def forward(self, x):
                x = x.reshape(-1).to(self.first_weights.dtype)
                u = self.act(x[:, None, None] * self.first_weights + self.first_biases)
                for l in range(self.inner_weights.shape[1]):
                    u = self.act(torch.einsum("nbi,bij->nbj", u, self.inner_weights[:, l]) + self.inner_biases[:, l])
                g = self.act(torch.einsum("nbi,bi->nb", u, self.block_weights) + self.block_biases)
                return (g * self.amplitudes) @ self.output_weights + self.intercept

        return ParallelStepBlocks()


@dataclass
class SwitchDictionary:
    """The dictionary of parallel rectangular step blocks: step features with at most
    ``width`` switches, each at a data point.

    Attributes
    ----------
    A : ndarray of shape (n_points, n_atoms)
        Column ``j`` at the sorted distinct inputs ``points``: it starts at the low
        level (``-1`` for sign, ``0`` for threshold) and switches level at each of its
        switch points (the value *at* a switch point is already the new level).
    points : ndarray of shape (n_points,)
    depth, activation, width :
        The architecture.
    switches : ndarray of int, shape (n_atoms, width)
        Indices into ``points`` of each atom's switch points (``-1``: unused).
    breakpoints : ndarray of shape (n_atoms, width)
        The switch points (NaN: unused).
    reflection : ndarray of bool, shape (n_atoms, width)
        Always False (step features have no reflections).
    feature_column : ndarray of int, shape (n_enumerated,)
        Column of every enumerated feature; the enumeration is ``(start, switch set)``
        with ``start`` low (even index) or high (odd index), switch sets by size then
        lexicographically.
    """

    A: np.ndarray
    points: np.ndarray
    depth: int
    activation: str
    width: int
    switches: np.ndarray
    breakpoints: np.ndarray
    reflection: np.ndarray
    feature_column: np.ndarray

    @property
    def n_atoms(self) -> int:
        """Number of columns."""
        return self.A.shape[1]

    def evaluate(self, x) -> np.ndarray:
        """The atoms at inputs ``x``, shape ``(n, n_atoms)``."""
        x = np.asarray(x, dtype=float).reshape(-1)
        low, high = _step_levels(self.activation)
        bp = np.where(np.isnan(self.breakpoints), np.inf, self.breakpoints)
        parity = (x[:, None, None] >= bp[None]).sum(axis=2) % 2
        return np.where(parity == 1, high, low)

    def features_of(self, column: int) -> list[dict]:
        """The enumerated features column ``column`` stands for: ``{"start": "low" or
        "high", "switches": tuple of point indices}`` (the atom and its negation)."""
        sw = tuple(int(j) for j in self.switches[column] if j >= 0)
        return [{"start": "low", "switches": sw}, {"start": "high", "switches": sw}]


def build_switch_dictionary(x, depth: int = 3, activation: str = "sign", width: int = 2) -> SwitchDictionary:
    """The deduplicated dictionary of parallel rectangular step blocks on inputs ``x``.

    On sorted distinct points :math:`x_{(1)} < \\dots < x_{(N)}` a block's output is a
    step sequence whose level changes only where a first-layer unit switches, so it has
    at most ``width`` switches; conversely every such sequence is a block
    (:func:`blocks_from_lasso`). With a free intercept a feature and its negation are
    one column (tie rule: the representative starts at the low level); features with
    no switch are constant and dropped. Columns are ordered by number of switches,
    then lexicographically by switch positions (indices ``1..N-1``: the switch sits at
    ``points[j]``, between ``points[j-1]`` and ``points[j]``).

    Parameters
    ----------
    x : array-like of shape (n_samples,) or (n_samples, 1)
    depth : int, >= 3
        Does not change the dictionary (layers ``2..L-2`` only pass switches on).
    activation : {"sign", "threshold"}
    width : int, >= 1
    """
    from itertools import combinations
    from math import comb

    check_architecture(depth, activation, architecture="rectangular", width=width)
    x = np.asarray(x, dtype=float).reshape(-1)
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError("x must be a non-empty array of finite numbers.")
    points = np.unique(x)
    N = points.size
    K = min(int(width), max(N - 1, 0))
    n_atoms = sum(comb(N - 1, k) for k in range(1, K + 1))
    if n_atoms * N > MAX_DICTIONARY_ENTRIES or 2 * n_atoms > MAX_ENUMERATED:
        raise ValueError(
            f"the rectangular width-{width} dictionary on {N} distinct inputs has {n_atoms:,} "
            f"features ({n_atoms * N:,} entries, limit {MAX_DICTIONARY_ENTRIES:,}); use fewer "
            "distinct points or a smaller width."
        )
    low, high = _step_levels(activation)
    switches = np.full((n_atoms, max(int(width), 1)), -1, dtype=np.int64)
    row = 0
    for k in range(1, K + 1):
        c = comb(N - 1, k)
        flat = np.fromiter(combinations(range(1, N), k), dtype=np.dtype((np.int64, k)), count=c)
        switches[row : row + c, :k] = flat.reshape(c, k)
        row += c
    inc = np.zeros((n_atoms, N + 1), dtype=np.int64)
    used = switches >= 0
    rows = np.repeat(np.arange(n_atoms), used.sum(axis=1))
    np.add.at(inc, (rows, switches[used]), 1)
    parity = np.cumsum(inc[:, :N], axis=1) % 2
    A = np.where(parity.T == 1, high, low).astype(float)
    breakpoints = np.where(used, points[np.maximum(switches, 0)], np.nan)
    feature_column = np.repeat(np.arange(n_atoms), 2)
    return SwitchDictionary(
        A=A, points=points, depth=int(depth), activation=activation, width=int(width),
        switches=switches, breakpoints=breakpoints, reflection=np.zeros_like(used),
        feature_column=feature_column,
    )


def blocks_from_lasso(dictionary: SwitchDictionary, coef, intercept: float, tol: float = 0.0) -> BlockNetwork:
    """The balanced block network of a Lasso solution over a :class:`SwitchDictionary`.

    Atom ``j`` with switches :math:`t_1 < \\dots < t_k` and coefficient :math:`z_j \\ne 0`
    becomes one block: first-layer units :math:`\\sigma(x - t_i)` (unused units
    :math:`\\sigma(0)`, constant), pass-through layers (``sign``: identity weights, bias
    0; ``threshold``: identity, bias ``-1/2``), the block unit
    :math:`\\sigma(\\sum_i (-1)^{i+1} u_i + d)` with ``d = (k mod 2) - 1`` (sign) or
    ``-1/2`` (threshold) — its input alternates between ``-1`` and ``1`` (sign) or
    ``-1/2`` and ``1/2`` (threshold) at the switches, starting low — amplitude
    :math:`a = \\sqrt{|z_j|}` and output weight :math:`\\mathrm{sign}(z_j)\\sqrt{|z_j|}`, so
    the block computes :math:`z_j\\phi_j` and costs :math:`|z_j|`.
    """
    coef = np.asarray(coef, dtype=float).reshape(-1)
    nz = np.flatnonzero(np.abs(coef) > tol)
    z = coef[nz]
    S = dictionary.switches[nz]
    used = S >= 0
    k = used.sum(axis=1)
    m = max(int(k.max(initial=1)), 1)
    S, used = S[:, :m], used[:, :m]
    B = nz.size
    sign = dictionary.activation == "sign"
    t = np.where(used, dictionary.points[np.maximum(S, 0)], 0.0)
    first_w = used.astype(float)
    first_b = np.where(used, -t, 0.0)
    L = dictionary.depth
    inner_w = np.broadcast_to(np.eye(m), (B, L - 3, m, m)).copy()
    inner_b = np.full((B, L - 3, m), 0.0 if sign else -0.5)
    alt = np.where(np.arange(m) % 2 == 0, 1.0, -1.0)
    block_w = used * alt
    block_b = (k % 2) - 1.0 if sign else np.full(B, -0.5)
    c = np.sqrt(np.abs(z))
    return BlockNetwork(
        first_weights=first_w, first_biases=first_b, inner_weights=inner_w, inner_biases=inner_b,
        block_weights=block_w, block_biases=np.asarray(block_b, float), amplitudes=c,
        output_weights=np.sign(z) * c, intercept=float(intercept), activation=dictionary.activation,
    )


def network_from_lasso(dictionary, coef, intercept: float, tol: float = 0.0):
    """:func:`chains_from_lasso` or :func:`blocks_from_lasso`, by dictionary type."""
    if isinstance(dictionary, SwitchDictionary):
        return blocks_from_lasso(dictionary, coef, intercept, tol)
    return chains_from_lasso(dictionary, coef, intercept, tol)


# --------------------------------------------------------------------------- solutions


def chains_from_lasso(dictionary: Dictionary, coef, intercept: float, tol: float = 0.0) -> ChainNetwork:
    """The balanced network of a Lasso solution.

    Atom ``j`` with coefficient :math:`z_j \\ne 0` becomes one chain whose weights all
    have magnitude :math:`c = |z_j|^{1/L}` (signs of the unit chain; output weight
    :math:`\\mathrm{sign}(z_j)c`) and whose layer-``l`` bias is :math:`c^l\\beta_l`, so
    the chain computes :math:`z_j\\phi_j` and costs :math:`\\tfrac1L\\cdot L c^L =
    |z_j|`. Step units get :math:`|w| = 1`, bias :math:`\\beta`, amplitude
    :math:`c = |z_j|^{1/2}` instead.
    """
    coef = np.asarray(coef, dtype=float).reshape(-1)
    nz = np.flatnonzero(np.abs(coef) > tol)
    z = coef[nz]
    L = dictionary.depth
    c = np.abs(z) ** (1.0 / L)
    S = dictionary.signs[nz]
    B = dictionary.biases[nz]
    step = dictionary.activation in STEP_ACTIVATIONS
    if step:
        weights, biases, amplitudes = S.copy(), B.copy(), c[:, None] * np.ones_like(S)
    else:
        powers = c[:, None] ** np.arange(1, L)[None, :]
        weights, biases, amplitudes = S * c[:, None], B * powers, None
    return ChainNetwork(
        weights=weights, biases=biases, output_weights=np.sign(z) * c, intercept=float(intercept),
        activation=dictionary.activation, negative_slope=dictionary.negative_slope,
        amplitudes=amplitudes,
    )


def lasso_alpha_max(A: np.ndarray, y, sample_weight=None) -> float:
    """Smallest ``alpha`` whose Lasso solution (free intercept, weighted mean loss) is 0.

    :math:`\\alpha_{max} = \\lVert A^\\top W (y - \\bar y_w)\\rVert_\\infty` with
    :math:`W = \\mathrm{diag}(w)`, :math:`\\sum w = 1` (``1/n`` each by default) and
    :math:`\\bar y_w = w^\\top y`. In the paper's scaling (sum of squares) this is
    :math:`\\beta_{max} = \\lVert A^\\top (y - \\bar y)\\rVert_\\infty`.
    """
    y = np.asarray(y, dtype=float).reshape(-1)
    w = np.full(y.size, 1.0 / y.size) if sample_weight is None else np.asarray(sample_weight, float) / np.sum(sample_weight)
    if A.shape[1] == 0:
        return 0.0
    return float(np.abs(A.T @ (w * (y - w @ y))).max())


def min_norm_interpolation(A: np.ndarray, y) -> tuple[np.ndarray, float, float, np.ndarray]:
    """Minimum-:math:`\\ell_1` interpolation :math:`\\min \\lVert z\\rVert_1` s.t.
    :math:`A z + \\xi\\mathbf 1 = y` (``xi`` free), an LP solved by HiGHS.

    Returns ``(z, xi, dual_value, lam)``: the dual is :math:`\\max_\\lambda y^\\top\\lambda`
    s.t. :math:`\\lVert A^\\top\\lambda\\rVert_\\infty \\le 1`, :math:`\\mathbf 1^\\top\\lambda = 0`;
    ``dual_value`` is that objective at HiGHS' multipliers made exactly feasible (a lower
    bound on the optimum).
    """
    from scipy.optimize import linprog

    y = np.asarray(y, dtype=float).reshape(-1)
    n, K = A.shape
    c = np.concatenate([np.ones(2 * K), [0.0]])
    A_eq = np.hstack([A, -A, np.ones((n, 1))])
    bounds = [(0, None)] * (2 * K) + [(None, None)]
    res = linprog(c, A_eq=A_eq, b_eq=y, bounds=bounds, method="highs")
    if res.status != 0:
        raise ValueError(f"the minimum-norm interpolation LP failed: {res.message}")
    z = res.x[:K] - res.x[K : 2 * K]
    xi = float(res.x[-1])
    lam = np.asarray(res.eqlin.marginals, dtype=float)
    lam = lam - lam.mean()
    worst = float(np.abs(A.T @ lam).max(initial=0.0))
    if worst > 1:
        lam = lam / worst
    return z, xi, float(y @ lam), lam


def refine_lasso_support(A, y, w, alpha: float, coef, intercept: float, max_rounds: int = 100):
    r"""Polish an approximate Lasso solution by solving its optimality system exactly.

    For the weighted Lasso :math:`\min \tfrac12\sum_i w_i((Az)_i + \xi - y_i)^2 +
    \alpha\lVert z\rVert_1` a solution with support ``S`` and signs ``s`` satisfies
    :math:`A_S^\top W r = -\alpha s`, :math:`\mathbf 1^\top W r = 0` (``r`` the
    residual) and :math:`|A^\top W r| \le \alpha` off ``S``. Starting from the
    largest entries of ``coef`` (a proximal-gradient iterate; at most ``n_samples`` of
    them, the size of a basic solution), solve that linear system, drop entries whose
    sign flips (or the smallest one when the system is inconsistent), add the most
    violated feature, and repeat: an active-set method, ``max_rounds`` systems of size
    at most ``n_samples + 1``. Returns ``(coef, intercept, ok)``; ``ok`` says the result
    satisfies the optimality conditions to rounding (otherwise the input is returned).
    Ill-conditioned ramp dictionaries make first-order methods slow in their last
    digits; this finishes them exactly.
    """
    A = np.asarray(A, float)
    y = np.asarray(y, float)
    coef = np.asarray(coef, float).reshape(-1)
    n, K = A.shape
    if K == 0:
        return coef.copy(), float(intercept), False
    big = np.abs(coef) > 1e-6 * np.abs(coef).max(initial=0.0)
    S = [int(j) for j in np.argsort(-np.abs(coef))[: min(int(big.sum()), n)]]
    signs = {j: float(np.sign(coef[j])) for j in S}
    sw = np.sqrt(w)
    for _ in range(max_rounds):
        B = np.column_stack([A[:, S], np.ones(n)]) * sw[:, None]
        rhs = B.T @ (sw * y) - alpha * np.array([signs[j] for j in S] + [0.0])
        H = B.T @ B
        sol = np.linalg.lstsq(H, rhs, rcond=None)[0]
        zS, xi = sol[:-1], sol[-1]
        if np.linalg.norm(H @ sol - rhs) > 1e-9 * (np.linalg.norm(rhs) + np.linalg.norm(H) * np.linalg.norm(sol)):
            if not S:
                break
            S.pop(int(np.argmin(np.abs(zS))))  # no solution with these signs
            continue
        flipped = {j for j, v in zip(S, zS) if np.sign(v) != signs[j]}
        if flipped:
            S = [j for j in S if j not in flipped]
            continue
        z = np.zeros(K)
        z[S] = zS
        g = A.T @ (w * (A @ z + xi - y))
        viol = np.abs(g) - alpha
        worst = int(np.argmax(viol))
        if viol[worst] <= 1e-10 * max(alpha, 1e-300):
            return z, float(xi), True
        if worst in signs and worst in S:  # rounding in a degenerate system
            break
        S.append(worst)
        signs[worst] = -float(np.sign(g[worst]))
    return coef.copy(), float(intercept), False


# --------------------------------------------------------------------------- plot


def plot_deep1d(estimator, ax=None, *, n_grid: int = 400, show_features: bool = True, margin: float = 0.1):
    """Plot a fitted :class:`~convexnn.estimators.deep1d.Deep1DRegressor`.

    Draws the training data, the fitted function on a grid, its breakpoints (dashed;
    reflections in red, dotted) and, with ``show_features``, every selected feature
    :math:`z_j \\phi_j` (thin lines). Needs matplotlib (the ``plot`` extra).

    Returns
    -------
    ax : matplotlib Axes
    """
    import matplotlib.pyplot as plt  # lazy: optional dependency

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    pts = estimator.dictionary_.points
    lo, hi = float(pts.min()), float(pts.max())
    pad = margin * max(hi - lo, 1.0)
    grid = np.linspace(lo - pad, hi + pad, n_grid)
    if hasattr(estimator, "_X_fit"):
        ax.scatter(estimator._X_fit, estimator._y_fit, color="black", zorder=3, label="data")
    ax.plot(grid, estimator.network_.forward(grid), color="C0", lw=2, label="network")
    if show_features and estimator.network_.n_chains:
        F = estimator.network_.features(grid) * estimator.network_.output_weights
        for j in range(F.shape[1]):
            ax.plot(grid, F[:, j], lw=0.8, alpha=0.6, color="C1", label="selected features" if j == 0 else None)
    for b, r in zip(estimator.breakpoints_, estimator.breakpoint_is_reflection_):
        ax.axvline(b, color="C3" if r else "0.6", ls=":" if r else "--", lw=0.8)
    ax.set_xlabel("x")
    ax.set_ylabel("f(x)")
    ax.set_title(f"depth {estimator.depth}, {estimator.activation}, {estimator.n_neurons_} chains")
    ax.legend(loc="best", fontsize="small")
    return ax
