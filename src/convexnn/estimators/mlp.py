"""``ConvexMLPRegressor`` and ``ConvexMLPClassifier``."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets

from ..losses import LogisticLoss, SoftmaxCrossEntropy, SquaredLoss
from ._base import BaseConvexMLP

__all__ = ["ConvexMLPRegressor", "ConvexMLPClassifier"]

_PARAMS_DOC = """
    Parameters
    ----------
    activation : {"relu", "leaky_relu", "abs", "gated_relu"}, default="relu"
        ``"relu"`` solves the cone-constrained program and exports a plain ReLU
        network. ``"leaky_relu"`` (:math:`\\max(h, s h)`, ``s = negative_slope``) and
        ``"abs"`` (:math:`|h|`) solve the same program, with the same cones, in which
        the masks :math:`D_k` are replaced by the diagonal the activation applies on
        each cone: :math:`D_k + s(I - D_k)` and :math:`2D_k - I` (Ergen & Pilanci,
        piecewise linear activations); both export plain networks of that
        activation. As for ReLU, the certificate covers networks whose units use the
        sampled activation patterns (``scope="sampled"``) unless the patterns are
        enumerated completely (``sampler="exhaustive"``). ``"gated_relu"`` solves the
        unconstrained group lasso; each hidden unit is gated by a fixed hyperplane
        (exported in ``gates_``).
    negative_slope : float, default=0.01
        Slope of ``"leaky_relu"`` for negative inputs, in ``[0, 1)``; ``0`` gives the
        ReLU fit exactly. Ignored by the other activations.
    alpha : float, default=3e-3
        Weight decay in the objective above (must be > 0). Not scikit-learn's
        ``MLP*.alpha``, which is divided by ``n_samples`` and leaves biases unpenalised:
        sklearn's ``alpha_sk`` corresponds to ``alpha = alpha_sk / n_samples`` here
        (up to the bias term).
    n_patterns : int, default=200
        Number of activation patterns (gates) to sample; duplicates and empty masks
        are removed, so ``gates_`` may have fewer columns.
    sampler : {"data", "gaussian", "exhaustive"}, PatternSampler or array, default="data"
        How gates are drawn. ``"data"``: hyperplanes through random points of the data
        (scale-aware); ``"gaussian"``: standard normal gates; ``"exhaustive"``: every
        pattern of one-dimensional data, which makes the certificate global. An array
        of shape ``(n_features + 1, n_patterns)`` gives the gates explicitly (last row:
        bias).
    solver : {"auto", "fista", "admm", "barrier", "gram_barrier", "cvxpy"} or Solver, default="auto"
        ``"fista"``: accelerated proximal gradient with duality-gap stopping, for
        every program; for ReLU its proximal step projects every block exactly onto
        its cone, so every iterate is a feasible ReLU network. ``"admm"`` (ReLU,
        leaky ReLU and abs with the squared loss, i.e. the regressor): ADMM on the
        cone-constrained program (Mishkin, Sahiner & Pilanci 2022; CRONOS), a
        linear solve per iteration (direct up to 3000 samples, else
        Nyström-preconditioned CG), stopping on the certified gap of an exactly
        feasible point (:class:`~convexnn.solvers.ADMM`); gated ReLU and the
        classifiers' losses (logistic, cross-entropy) are refused before any work
        with a ``ValueError`` that names the solver to use (``"fista"``). ``"barrier"
        (gated ReLU, squared or logistic loss, one group per neuron and output):
        an interior-point method on the dual in sample space, a few dozen Newton
        steps on ``n_samples x n_samples`` systems; certifies tight gaps (1e-6 and
        below) in seconds for up to a few thousand samples. On ReLU, leaky ReLU and
        abs with the squared loss (the regressor), ``"barrier"`` is the primal-dual
        interior-point method of the cone-constrained program
        (:class:`~convexnn.solvers.ConeBarrier`: Nesterov-Todd scaled cones, a few
        dozen steps on ``n_samples x n_samples`` systems, every iterate a feasible
        network); the classifiers' losses are refused with a ``ValueError``.
        ``"gram_barrier"`` (gated ReLU, squared loss, one group per neuron and
        output): a primal-dual interior-point method on the Gram matrix
        (:class:`~convexnn.solvers.GramBarrier`): with many samples and few features
        the ``P (d+1)``-square Gram matrix is formed once (float32) and each of a
        handful of steps factors it, so its cost hardly grows with ``n_samples``;
        with more coefficients than samples each step factors an ``n x n`` matrix
        instead (Woodbury's identity).
        ``"auto"``: for gated ReLU with the squared loss ``"gram_barrier"`` while
        ``n_patterns * (n_features + 1) <= 6000`` or ``n_samples <= 4000`` (in the
        cheaper of its two spaces); else ``"barrier"`` when it applies and there are
        at most 2000 samples (squared loss) or 600 (logistic loss); for the regressor's
        cone-constrained programs ``"barrier"`` up to 1500 samples, when
        ``tol >= 1e-8``; else ``"fista"``.
        ``"cvxpy"`` (extra) is the interior-point reference for tiny problems.
    tol : float, default=1e-3
        Target relative duality gap ``(primal - dual) / primal``.
    max_iter : int, default=5000
        Maximum number of solver iterations (proximal-gradient steps for
        ``"fista"``, ADMM iterations for ``"admm"``, Newton steps for ``"barrier"`` and
        ``"gram_barrier"``).
    max_time : float or None, default=None
        Time limit of the solve in seconds (> 0), counted from its start (pattern
        sampling before it and the certificate after it are not included); None:
        no limit. The solver stops at its first duality-gap check after the limit
        and the estimator keeps the network of that check with its exact
        certificate, as after Ctrl-C, and emits a ``ConvergenceWarning`` with the
        certified gap unless that gap already meets ``tol``; ``stop_reason_`` is
        then ``"max_time"``. Every solver honours it at its gap checks
        (``"cvxpy"`` also passes the time left to Clarabel's ``time_limit``). With
        ``pattern_search``, the limit covers all rounds.
    pattern_search : int, default=0
        Rounds of pattern search after the first solve (``"relu"``, ``"leaky_relu"``,
        ``"abs"``; a ``ValueError`` for ``"gated_relu"``, whose gates are fixed). The
        certificate only covers networks whose units use the program's patterns, and
        sampled patterns can miss the good ones (on real data an Adam run can end
        below the certified optimum over 200 sampled patterns). Each round runs a
        local descent (L-BFGS, 1000 iterations) on the non-convex objective from the
        certified network, adds the moved units' own activation patterns to the
        patterns the solution uses (unused sampled patterns are dropped), and solves
        that program again, certified to ``tol``. The descended network is feasible
        for it, so each round's certified ``J`` is at most the last one's. The search
        stops early when a descent lowers ``J`` by less than ``tol``; ``gates_`` and
        the certificate are those of the last program; ``search_history_`` records
        the rounds. Skipped when the patterns are complete (the certificate is then
        global already).
    warm_start : bool, default=False
        Reuse the previous fit's gates and solution as the starting point.
    random_state : int, RandomState instance or None, default=None
        Seeds the pattern sampler (the only randomness).
    verbose : int, default=0
        ``1``: a live progress bar (iteration, objective, relative duality gap,
        elapsed time) on standard error for fits that run longer than a second (drawn
        by rich when installed, else one line per gap check); ``2``: one line per gap
        check from the start. Ctrl-C during ``fit`` stops cleanly at any verbosity:
        the estimator keeps the network of the last gap check with its certificate
        and warns with :class:`~convexnn.FitInterruptedWarning`.
    device : None, "cpu", "cuda" or "cuda:N", default=None
        Where the program's products run. ``None``: numpy on the host. A torch
        device (needs the ``torch`` extra): the data and masks are copied to it once
        and every solver runs unchanged with its products there
        (:mod:`convexnn.devices`); the certificate is computed in float64 and the
        exported network is the same kind of numpy network.
    dtype : {None, "float32", "float64"}, default=None
        Working precision of the products on ``device``: None means float32 on a GPU
        and float64 on the CPU. Certificates are always float64; with float32, FISTA
        switches to float64 products by itself when float32 stops shrinking the gap.
        Ignored when ``device`` is None.
"""

_ATTRS_DOC = """
    Attributes
    ----------
    coefs_ : list of ndarray
        ``[W1 (n_features, n_neurons_), W2 (n_neurons_, n_outputs_)]``.
    intercepts_ : list of ndarray
        ``[b1 (n_neurons_,), b2 (n_outputs_,)]``. ``act(X @ W1 + b1) @ W2 + b2``
        with the fitted activation ``act`` (ReLU, leaky ReLU with ``negative_slope``,
        absolute value) reproduces the model's raw outputs exactly.
    gates_ : ndarray of shape (n_features + 1, n_patterns)
        The sampled gates (last row: bias coefficient); with ``pattern_search``, the
        last round's (the patterns used before it plus the descended units').
    neuron_patterns_ : ndarray of shape (``n_neurons_``,)
        Column of ``gates_`` each hidden unit came from (its gate, for gated ReLU).
    convex_coef_ : ndarray
        Solution of the convex program, shape ``(n_blocks, n_features + 1,
        n_outputs_)`` with ``n_blocks = n_patterns`` (gated) or ``2 * n_patterns``
        (ReLU, leaky ReLU, abs: positive blocks, then negative).
    n_neurons_ : int
        Hidden units with non-zero weights.
    n_outputs_ : int
        Number of network outputs.
    n_iter_ : int
        Solver iterations.
    stop_reason_ : str
        Why the solve ended: ``"converged"`` (relative gap at most ``tol``),
        ``"max_iter"``, ``"max_time"`` (the time limit; the network is that of the
        last gap check), ``"interrupted"`` (Ctrl-C) or ``"stalled"`` (the solver
        stopped short of ``tol`` before ``max_iter``, e.g. at rounding level).
        ``certificate_`` says what the kept network is certified to in every case.
    dual_gap_ : float
        ``certificate_.gap``.
    certificate_ : Certificate
        Primal (objective of the exported network), dual bound, gap, and whether it
        holds globally or only over the sampled patterns.
    loss_curve_ : list of float
        Convex objective after each iteration (empty when the solve was stopped by
        ``max_time`` or Ctrl-C; ``history_`` has the checks).
    history_ : dict of lists
        ``iteration``, ``time`` (s), ``primal``, ``dual`` at each duality-gap check
        (of the last program's solve, with ``pattern_search``).
    search_history_ : list of dict
        One entry per ``pattern_search`` round (empty without it): ``objective_before``
        (certified network's ``J``), ``descent_objective``, ``descent_seconds`` and,
        when the round solved, ``n_patterns``, ``objective`` (its certified network's
        ``J``), ``solve_seconds``, ``n_iter``; ``stopped`` says why the search ended
        there, if it did.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had string column names.
"""


class ConvexMLPRegressor(RegressorMixin, BaseConvexMLP):
    __doc__ = (
        """Two-layer ReLU network regression trained to a certified global optimum.

    Minimises the weight-decay objective of the network
    :math:`f(x) = \\sigma(x W_1 + b_1) W_2 + b_2` (:math:`\\sigma` = ``activation``:
    ReLU by default, leaky ReLU, absolute value or gated ReLU)

    .. math::

        J = \\frac{1}{n}\\sum_i \\tfrac12 \\lVert f(x_i) - y_i\\rVert^2
            + \\frac{\\alpha}{2}\\left(\\lVert W_1\\rVert^2 + \\lVert b_1\\rVert^2
            + \\lVert W_2\\rVert^2\\right)

    (``1/n`` becomes normalised ``sample_weight``) by solving its exact convex
    reformulation over sampled activation patterns, and reports a duality-gap
    certificate. Several outputs are supported.
    """
        + _PARAMS_DOC
        + _ATTRS_DOC
    )

    def _loss(self, n_outputs):
        return SquaredLoss()

    def _encode_targets(self, y):
        Y = np.asarray(y, dtype=float)
        return Y.reshape(Y.shape[0], -1)

    def fit(self, X, y, sample_weight=None):
        """Fit the network by solving the convex program.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A memory map (``np.load("X.npy", mmap_mode="r")``) is streamed in row
            chunks, never copied into RAM, so data larger than memory can be fitted
            with ``solver="fista"`` (see :mod:`convexnn.data`; a map of another dtype
            or not C-contiguous is first converted chunk by chunk into a temporary
            float64 ``.npy`` next to it).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights; normalised to sum to one (an integer weight acts like
            repeating the sample).

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, multi_output=True, y_numeric=True)

    def predict(self, X) -> np.ndarray:
        """Network outputs: shape ``(n_samples,)`` for one output, else ``(n_samples, n_outputs)``."""
        Z = self._forward(X)
        return Z[:, 0] if Z.shape[1] == 1 else Z

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


class ConvexMLPClassifier(ClassifierMixin, BaseConvexMLP):
    __doc__ = (
        """Two-layer ReLU network classifier trained to a certified global optimum.

    Minimises

    .. math::

        J = \\frac{1}{n}\\sum_i \\ell(f(x_i), y_i)
            + \\frac{\\alpha}{2}\\left(\\lVert W_1\\rVert^2 + \\lVert b_1\\rVert^2
            + \\lVert W_2\\rVert^2\\right)

    with the logistic loss :math:`\\log(1 + e^{-s f})`, ``s = ±1`` (one output) for two
    classes and the softmax cross-entropy (one output per class) for more, by
    solving the exact convex reformulation over sampled activation patterns. Any
    label type; ``classes_`` holds them sorted.
    """
        + _PARAMS_DOC
        + """    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the objective, with scikit-learn's semantics:
        ``{label: weight}`` (classes left out weigh 1), ``"balanced"`` for
        ``n_samples / (n_classes * np.bincount(y))``, or None for equal weights. The
        weight of sample ``i`` in the mean loss is proportional to
        ``class_weight[y_i] * sample_weight[i]`` (the product is normalised to sum
        to one), so ``"balanced"`` is the same fit as passing
        ``sample_weight=compute_sample_weight("balanced", y)``.
"""
        + _ATTRS_DOC
        + """    classes_ : ndarray of shape (n_classes,)
        Class labels; for two classes the network's output is the logit of ``classes_[1]``.
"""
    )

    _parameter_constraints: dict = {
        **BaseConvexMLP._parameter_constraints,
        "class_weight": [StrOptions({"balanced"}), dict, None],
    }

    def __init__(
        self,
        activation: str = "relu",
        *,
        negative_slope: float = 0.01,
        alpha: float = 3e-3,
        n_patterns: int = 200,
        sampler="data",
        solver="auto",
        tol: float = 1e-3,
        max_iter: int = 5000,
        max_time: float | None = None,
        pattern_search: int = 0,
        warm_start: bool = False,
        random_state=None,
        verbose: int = 0,
        device: str | None = None,
        dtype: str | None = None,
        class_weight=None,
    ):
        super().__init__(
            activation,
            negative_slope=negative_slope,
            alpha=alpha,
            n_patterns=n_patterns,
            sampler=sampler,
            solver=solver,
            tol=tol,
            max_iter=max_iter,
            max_time=max_time,
            pattern_search=pattern_search,
            warm_start=warm_start,
            random_state=random_state,
            verbose=verbose,
            device=device,
            dtype=dtype,
        )
        self.class_weight = class_weight

    def _weight_samples(self, y, sample_weight):
        # subclasses without a class_weight parameter weigh classes equally
        class_weight = getattr(self, "class_weight", None)
        if class_weight is None:
            return sample_weight
        try:
            weights = compute_sample_weight(class_weight, y)
        except ValueError as exc:  # e.g. a dict naming a label that is not in y
            raise ValueError(
                f"class_weight={class_weight!r} does not fit the labels in y "
                f"{list(self.classes_)!r}: {exc}"
            ) from None
        return sample_weight * weights

    def _loss(self, n_outputs):
        return LogisticLoss() if n_outputs == 1 else SoftmaxCrossEntropy()

    def _encode_targets(self, y):
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes in y; "
                f"got 1 class ({self.classes_[0]})."
            )
        if len(self.classes_) == 2:
            return codes.astype(float)[:, None]
        return np.eye(len(self.classes_))[codes]

    def fit(self, X, y, sample_weight=None):
        """Fit the network by solving the convex program.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A memory map (``np.load("X.npy", mmap_mode="r")``) is streamed in row
            chunks, never copied into RAM (as for :meth:`ConvexMLPRegressor.fit`).
        y : array-like of shape (n_samples,)
            Class labels of any type (at least two distinct).
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights, multiplied by the ``class_weight`` of each sample's
            class, then normalised to sum to one.

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, multi_output=False, y_numeric=False)

    def decision_function(self, X) -> np.ndarray:
        """Network outputs: logits of ``classes_[1]`` ``(n_samples,)`` for two classes,
        else one score per class ``(n_samples, n_classes)``."""
        Z = self._forward(X)
        return Z[:, 0] if Z.shape[1] == 1 else Z

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities from the loss's link (sigmoid or softmax),
        shape ``(n_samples, n_classes)``."""
        Z = self._forward(X)
        if Z.shape[1] == 1:
            p = self._loss(1).link(Z[:, 0])
            return np.column_stack([1 - p, p])
        return self._loss(Z.shape[1]).link(Z)

    def predict_log_proba(self, X) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """Most probable class label for each sample."""
        Z = self._forward(X)
        idx = (Z[:, 0] > 0).astype(int) if Z.shape[1] == 1 else Z.argmax(axis=1)
        return self.classes_[idx]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        return tags
