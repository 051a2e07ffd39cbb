"""``ConvexThresholdRegressor`` and ``ConvexThresholdClassifier``: two-layer threshold
(step) networks trained to a certified optimum by solving their Lasso reformulation
(Ergen, Gulluk, Lacotte & Pilanci, ICLR 2023; the maths is in :mod:`convexnn.threshold`).
"""

from __future__ import annotations

import numpy as np
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..certificates import dual_value
from ..network import Network
from ..penalties import ColumnGroupL2, NuclearNorm
from ..programs import ConvexProgram
from ..solvers import History, Solution
from ..threshold import (
    DeepThresholdNetwork,
    PatternDictionary,
    apply_layers,
    closed_form_threshold_regression,
    deep_threshold_network,
    shattering_layers,
    threshold_network,
)
from ._base import BaseConvexMLP
from .mlp import ConvexMLPClassifier, ConvexMLPRegressor

__all__ = ["ConvexThresholdRegressor", "ConvexThresholdClassifier"]

# not parameters here: threshold estimators always fit step units
_CONSTRAINTS = {
    k: v for k, v in BaseConvexMLP._parameter_constraints.items()
    if k not in ("activation", "negative_slope", "device", "dtype")
}
_CONSTRAINTS["solver"] = [StrOptions({"auto", "fista"}), HasMethods(["solve"])]
_CONSTRAINTS["hidden_layer_sizes"] = [None, "array-like"]

_OBJECTIVE_DOC = """
    The network, with ``m = n_neurons_`` hidden units of amplitude :math:`s_j`, is

    .. math::

        f(x) = \\sum_{j=1}^{m} s_j\\, \\mathbb 1[x \\cdot W_{1,:,j} + b_{1,j} > 0]\\,
               W_{2,j,:} + b_2,

    and ``fit`` minimises

    .. math::

        J = \\frac1n \\sum_i \\ell(f(x_i), y_i)
            + \\frac{\\alpha}{2}\\left(\\lVert s\\rVert^2 + \\lVert W_2\\rVert^2\\right)

    (``1/n`` becomes normalised ``sample_weight``; the output intercept ``b_2`` is
    free). The first layer ``(W_1, b_1)`` is not penalised: the step is invariant to
    its positive rescaling, so such a penalty could be made arbitrarily small without
    changing ``f`` (the optimal value would be the same, but not attained). Over the
    sampled activation patterns :math:`d_k = \\mathbb 1[[X, 1] g_k > 0]` this is exactly
    the Lasso

    .. math::

        \\min_{C, b}\\; \\frac1n \\sum_i \\ell\\big((D C)_i + b, y_i\\big)
            + \\alpha \\sum_k \\lVert C_{k,:} \\rVert_2, \\qquad D = [d_1, \\dots, d_P],

    solved by FISTA with a duality-gap certificate; unit ``k`` of the exported network
    has :math:`s_k = \\pm\\sqrt{\\lVert C_k\\rVert}`, :math:`W_{2,k} = C_k / s_k`, and the
    network's ``J`` equals the Lasso objective exactly. With several outputs each unit
    feeds every output (row-group Lasso).

    **Deeper networks** (``hidden_layer_sizes=(m_1, ..., m_{L-1})`` with ``L - 1 >= 2``
    hidden layers; Ergen, Gulluk, Lacotte & Pilanci, ICLR 2023, Section 3). The
    network is :math:`h^{(l)} = s^{(l)} \\odot \\mathbb 1[h^{(l-1)} W_l + b_l > 0]`,
    :math:`f = h^{(L-1)} W_L + b_L` (:class:`~convexnn.threshold.DeepThresholdNetwork`),
    with

    .. math::

        J = \\frac1n \\sum_i \\ell(f(x_i), y_i)
            + \\frac{\\alpha}{2}\\left(\\lVert s^{(L-1)}\\rVert^2 + \\lVert W_L\\rVert^2\\right)

    (every earlier parameter feeds a scale-invariant step and is not penalised). Each
    last-layer unit acts on the data through a pattern
    :math:`\\mathbb 1[[h^{(L-2)}, 1] g > 0]`, so for fixed layers ``1..L-2`` training is
    the Lasso above over the patterns of :math:`h^{(L-2)}` provided the last hidden layer
    is wide enough (:math:`m_{L-1} \\ge` the number of non-zero rows of ``C``: the
    *width condition* of the paper). ``fit`` builds layers ``1..L-2`` that **shatter**
    the ``N`` distinct training inputs (a staircase of ``N - 1`` steps along a
    separating direction, :func:`~convexnn.threshold.shattering_layers`; this needs
    :math:`m_l \\ge N - 1` for ``l = 1..L-2`` and a ``ValueError`` says so otherwise —
    necessary for layer ``L - 2``, since halfspaces in :math:`\\mathbb R^m` shatter at
    most ``m + 1`` points, but for earlier layers a requirement of this construction
    only). Then every
    :math:`d \\in \\{0,1\\}^N` is a pattern, the Lasso is over *all* binary patterns —
    a lower bound for every threshold network of any depth and width — and the fitted
    network attains it. For the regressor with one output it collapses to the
    water-filling problem
    :math:`\\min_z \\frac1n\\sum_i \\tfrac12 (z_i - y_i)^2 + \\alpha(\\max z - \\min z)`
    (closed form, **global** certificate); otherwise (classifier, several outputs,
    repeated inputs, ``closed_form=False``) the Lasso over sampled patterns of
    :math:`h^{(L-2)}` is solved by FISTA (``"sampled"`` certificate).
    If the solution needs more than :math:`m_{L-1}` units,
    ``fit`` raises a ``ValueError`` naming the width needed (``m_{L-1} >= N - 1``
    always suffices for the closed form: one unit per distinct fitted value above the
    smallest). The exported layers have the widths actually used (at most the
    requested ones; extra units would be dead).

    *The paper's and convexnn's.* The paper proves that deep threshold training is
    this Lasso over the patterns reachable at layer ``L - 1`` once the last hidden
    layer is wide enough, and a simplified problem when the data is shattered at some
    layer. The explicit staircase layers, fixing layers ``1..L-2`` to them, the
    argument that the all-pattern Lasso bounds every network of any depth and width
    from below (each last-layer unit is :math:`s\\,d` with :math:`d \\in \\{0,1\\}^N`
    and costs at least :math:`|s|\\lVert a\\rVert`), and the strict ``> 0`` step
    (the paper's is :math:`\\ge 0`; on finite data they give the same patterns) are
    convexnn's derivation.
"""

_PARAMS_DOC = """
    Parameters
    ----------
    alpha : float, default=3e-3
        Weight decay in ``J`` (must be > 0); DESIGN.md's ``alpha``, not scikit-learn's
        ``MLP*.alpha`` (which is divided by ``n_samples``).
    n_patterns : int, default=200
        Number of activation patterns (gates) to sample; duplicates and empty masks
        are removed, so ``gates_`` may have fewer columns.
    sampler : {"data", "gaussian", "exhaustive"}, PatternSampler or array, default="data"
        How gates are drawn, as for :class:`ConvexMLPRegressor`. ``"exhaustive"``
        (one feature) enumerates every pattern and makes the certificate global. An
        array of shape ``(n_features + 1, n_patterns)`` gives the gates explicitly
        (last row: bias).
    solver : {"auto", "fista"} or Solver, default="auto"
        FISTA on the Lasso (``"auto"`` is FISTA).
    tol : float, default=1e-3
        Target relative duality gap ``(primal - dual) / primal``.
    max_iter : int, default=5000
        Maximum number of proximal-gradient iterations.
    max_time : float or None, default=None
        Time limit of the Lasso solve in seconds, as for
        :class:`ConvexMLPRegressor`: the solve stops at its first gap check after
        it, keeps that check's network with its certificate and warns
        (``stop_reason_ == "max_time"``). Not used by the closed form.
    warm_start : bool, default=False
        Reuse the previous fit's gates and solution as the starting point.
    random_state : int, RandomState instance or None, default=None
        Seeds the pattern sampler (the only randomness).
    verbose : int, default=0
        Progress output during ``fit``, as for :class:`ConvexMLPRegressor`.
    hidden_layer_sizes : tuple of int or None, default=None
        ``None``: the two-layer network of any width (the default behaviour). One entry
        ``(m,)``: the two-layer network, and ``fit`` raises a ``ValueError`` if the
        solution needs more than ``m`` units. Two or more entries: the deep network
        above (hidden layers ``1..L-2`` need width ``>= N - 1``, ``N`` the number of
        distinct training inputs).
"""

_ATTRS_DOC = """
    Attributes
    ----------
    coefs_ : list of ndarray
        ``[W1 (n_features, n_neurons_), W2 (n_neurons_, n_outputs_)]``; the columns of
        ``W1`` (with ``b1``) are the units' gates. Deep networks: ``[W1, ..., WL]``.
    intercepts_ : list of ndarray
        ``[b1 (n_neurons_,), b2 (n_outputs_,)]``; deep networks: ``[b1, ..., bL]``.
    amplitudes_ : ndarray of shape (``n_neurons_``,)
        Amplitude :math:`s_j` of each unit: ``(amplitudes_ * (X @ W1 + b1 > 0)) @ W2 + b2``
        reproduces the model's raw outputs exactly. Deep networks: a list
        ``[s1, ..., s_{L-1}]``, one array per hidden layer.
    gates_ : ndarray of shape (n_features + 1, n_patterns)
        The gates of the Lasso dictionary (last row: bias coefficient); for deep
        networks, gates on the layer-``L - 2`` features (shape ``(m_{L-2} + 1,
        n_patterns)``).
    neuron_patterns_ : ndarray of shape (``n_neurons_``,)
        Column of ``gates_`` each hidden unit came from.
    convex_coef_ : ndarray of shape (n_patterns, 1, n_outputs_)
        The Lasso solution :math:`C`.
    n_neurons_ : int
        Hidden units (non-zero rows of :math:`C`).
    n_outputs_ : int
    n_iter_ : int
        Solver iterations (0 for the closed form).
    stop_reason_ : str
        ``"converged"``, ``"max_iter"``, ``"max_time"``, ``"interrupted"`` or
        ``"stalled"``, as for :class:`ConvexMLPRegressor` (``"converged"`` for the
        closed form).
    dual_gap_ : float
        ``certificate_.gap``.
    certificate_ : Certificate
        Primal (``J`` of the exported network), dual bound, gap, and scope
        (``"global"``: over every pattern of the data; ``"sampled"``: over the sampled
        patterns only).
    loss_curve_ : list of float
        Lasso objective after each iteration.
    history_ : dict of lists
        ``iteration``, ``time`` (s), ``primal``, ``dual`` at each duality-gap check.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had string column names.
"""


class _ThresholdMixin:
    """Threshold-network behaviour on top of a ConvexMLP estimator: the Lasso program
    over the pattern dictionary and the step network read off its solution."""

    #: not a parameter: these estimators always fit threshold units
    activation = "threshold"
    #: not parameters: the Lasso is solved on the CPU in float64
    device = None
    dtype = None
    _parameter_constraints: dict = dict(_CONSTRAINTS)

    def _deep(self) -> bool:
        return self.hidden_layer_sizes is not None and len(self._layer_sizes()) >= 2

    def _layer_sizes(self) -> tuple[int, ...]:
        sizes = np.atleast_1d(np.asarray(self.hidden_layer_sizes))
        if sizes.ndim != 1 or sizes.size == 0 or not all(
            float(m).is_integer() and m >= 1 for m in sizes.tolist() if not isinstance(m, bool)
        ) or sizes.dtype == bool:
            raise ValueError(
                f"hidden_layer_sizes must be None or a non-empty sequence of positive integers; "
                f"got {self.hidden_layer_sizes!r}."
            )
        return tuple(int(m) for m in sizes.tolist())

    def _solve_deep(self, X, Y, w):
        """Shattering layers ``1..L-2``, then the Lasso over the patterns of their output."""
        layers = shattering_layers(X, self._layer_sizes())
        self._prefix_layers = layers
        F = apply_layers(X, layers)
        if isinstance(self, ConvexThresholdRegressor) and self.closed_form and Y.shape[1] == 1:
            found = self._closed_form(F, Y, w)
            if found is not None:
                return found
        return BaseConvexMLP._solve(self, F, Y, w)

    def _program(self, X, Y, w, patterns) -> ConvexProgram:
        # one output: plain l1; several: l2 norm of each row C_k (a 1 x c block, whose
        # nuclear norm is its row norm) for units feeding every output
        penalty = NuclearNorm() if Y.shape[1] > 1 else ColumnGroupL2()
        operator = PatternDictionary(X, patterns.gates)
        return ConvexProgram(
            self._loss(Y.shape[1]), penalty, operator, Y, w, float(self.alpha), patterns.complete
        )

    def _network(self, program, coef, intercept) -> Network | DeepThresholdNetwork:
        if self.hidden_layer_sizes is None:
            return threshold_network(program.gates, coef, intercept, program.penalty)
        sizes = self._layer_sizes()
        layers = self._prefix_layers if len(sizes) >= 2 else []
        net = deep_threshold_network(layers, program.gates, coef, intercept, program.penalty, sizes[-1])
        if len(sizes) == 1:  # the two-layer network, width-checked
            return threshold_network(program.gates, coef, intercept, program.penalty)
        return net

    def _set_fitted(self, program, coef, solution, network, cert) -> None:
        super()._set_fitted(program, coef, solution, network, cert)
        if isinstance(network, DeepThresholdNetwork):
            self.coefs_ = [np.asarray(W, dtype=float) for W in network.coefs]
            self.intercepts_ = [np.asarray(b, dtype=float) for b in network.intercepts]
            self.amplitudes_ = [np.asarray(s, dtype=float) for s in network.amplitudes]
        else:
            self.amplitudes_ = np.asarray(network.amplitudes, dtype=float)

    def to_network(self) -> Network | DeepThresholdNetwork:
        """The fitted step network: a :class:`~convexnn.network.Network`
        (``activation="threshold"``), or for ``len(hidden_layer_sizes) >= 2`` a
        :class:`~convexnn.threshold.DeepThresholdNetwork`."""
        check_is_fitted(self, "coefs_")
        if isinstance(self.amplitudes_, list):
            return DeepThresholdNetwork(
                weights=list(self.coefs_[:-1]), biases=list(self.intercepts_[:-1]),
                amplitudes=list(self.amplitudes_), output_weights=self.coefs_[-1],
                output_intercept=self.intercepts_[-1],
            )
        return Network(
            list(self.coefs_), list(self.intercepts_), "threshold", amplitudes=self.amplitudes_
        )

    def activation_patterns(self, X) -> np.ndarray:
        """Boolean masks of the Lasso dictionary's gates on ``X`` (for deep networks: on
        the features :math:`h^{(L-2)}` of ``X``); see
        :meth:`ConvexMLPRegressor.activation_patterns`."""
        if not isinstance(getattr(self, "amplitudes_", None), list):
            return super().activation_patterns(X)
        from sklearn.utils.validation import validate_data

        from ..patterns import masks_from_gates

        X = validate_data(self, X, dtype=np.float64, reset=False)
        net = self.to_network()
        return masks_from_gates(net.hidden(X, net.depth - 2), self.gates_)


class ConvexThresholdRegressor(_ThresholdMixin, ConvexMLPRegressor):
    __doc__ = (
        """Two-layer threshold (step) network regression trained to a certified optimum.

    The hidden units are perceptron-style steps with a trainable amplitude; the loss
    is the squared error :math:`\\ell(f, y) = \\tfrac12\\lVert f - y\\rVert^2`.
    """
        + _OBJECTIVE_DOC
        + """
    **Closed form.** When ``[X, 1]`` has full row rank (``n_samples <= n_features + 1``
    and no linear dependence among the rows; checked on the samples with positive
    weight) every one of the :math:`2^n` patterns is available, and with one output
    the problem collapses to
    :math:`\\min_z \\frac1n\\sum_i \\tfrac12 (z_i - y_i)^2 + \\alpha(\\max z - \\min z)`,
    solved exactly by water-filling in :math:`O(n \\log n)`
    (:func:`convexnn.threshold.water_filling`). With ``closed_form=True`` (default)
    that solution is used instead of sampling: ``closed_form_`` is then True,
    ``gates_`` realise the optimal network's patterns, and the certificate is
    **global** (no threshold network of any width does better).

    References: T. Ergen, H. I. Gulluk, J. Lacotte, M. Pilanci. Globally optimal training
    of neural networks with threshold activation functions. ICLR 2023.
    """
        + _PARAMS_DOC
        + """    closed_form : bool, default=True
        Use the water-filling solution when ``[X, 1]`` has full row rank and there is
        one output (otherwise, or with ``False``, solve the sampled Lasso).
"""
        + _ATTRS_DOC
        + """    closed_form_ : bool
        Whether the closed-form (global) solution was used.
"""
    )

    _parameter_constraints: dict = {**_CONSTRAINTS, "closed_form": ["boolean"]}

    def __init__(
        self,
        *,
        alpha: float = 3e-3,
        n_patterns: int = 200,
        sampler="data",
        solver="auto",
        tol: float = 1e-3,
        max_iter: int = 5000,
        max_time: float | None = None,
        warm_start: bool = False,
        random_state=None,
        verbose: int = 0,
        closed_form: bool = True,
        hidden_layer_sizes=None,
    ):
        self.alpha = alpha
        self.n_patterns = n_patterns
        self.sampler = sampler
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.max_time = max_time
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.closed_form = closed_form
        self.hidden_layer_sizes = hidden_layer_sizes

    def _closed_form(self, X, Y, w):
        """``(program, solution)`` of the water-filling solution on ``X``, or None."""
        found = closed_form_threshold_regression(X, Y[:, 0], self.alpha, w)
        if found is None:
            return None
        program, coef, intercept, point = found
        value = program.objective(coef, intercept)
        history = History()
        history.record(0, 0.0, value, dual_value(program, point))
        self.closed_form_ = True
        return program, Solution(coef, intercept, [point], 0, [value], history)

    def _solve(self, X, Y, w):
        self.closed_form_ = False
        if self._deep():
            return self._solve_deep(X, Y, w)
        if self.closed_form and Y.shape[1] == 1:
            found = self._closed_form(X, Y, w)
            if found is not None:
                return found
        return super()._solve(X, Y, w)


class ConvexThresholdClassifier(_ThresholdMixin, ConvexMLPClassifier):
    __doc__ = (
        """Two-layer threshold (step) network classifier trained to a certified optimum.

    The loss is the logistic loss :math:`\\log(1 + e^{-s f})`, ``s = ±1`` (one output)
    for two classes and the softmax cross-entropy (one output per class) for more,
    exactly as :class:`ConvexMLPClassifier`. Any label type; ``classes_`` holds them
    sorted.
    """
        + _OBJECTIVE_DOC
        + """
    References: T. Ergen, H. I. Gulluk, J. Lacotte, M. Pilanci. Globally optimal training
    of neural networks with threshold activation functions. ICLR 2023.
    """
        + _PARAMS_DOC
        + """    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the objective, as for :class:`ConvexMLPClassifier`
        (the weight of sample ``i`` is proportional to ``class_weight[y_i] *
        sample_weight[i]``).
"""
        + _ATTRS_DOC
        + """    classes_ : ndarray of shape (n_classes,)
        Class labels; for two classes the network's output is the logit of ``classes_[1]``.
"""
    )

    _parameter_constraints: dict = {
        **_CONSTRAINTS,
        "class_weight": ConvexMLPClassifier._parameter_constraints["class_weight"],
    }

    def __init__(
        self,
        *,
        alpha: float = 3e-3,
        n_patterns: int = 200,
        sampler="data",
        solver="auto",
        tol: float = 1e-3,
        max_iter: int = 5000,
        max_time: float | None = None,
        warm_start: bool = False,
        random_state=None,
        verbose: int = 0,
        class_weight=None,
        hidden_layer_sizes=None,
    ):
        self.alpha = alpha
        self.n_patterns = n_patterns
        self.sampler = sampler
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.max_time = max_time
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.class_weight = class_weight
        self.hidden_layer_sizes = hidden_layer_sizes

    def _solve(self, X, Y, w):
        if self._deep():
            return self._solve_deep(X, Y, w)
        return super()._solve(X, Y, w)
