"""``Deep1DRegressor``: deep narrow networks on scalar inputs, trained as a Lasso."""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ..certificates import Certificate, certify, dual_point_from_outputs
from ..deep1d import (
    ACTIVATIONS,
    ARCHITECTURES,
    BlockNetwork,
    ChainNetwork,
    build_dictionary,
    build_switch_dictionary,
    network_from_lasso,
    check_architecture,
    lasso_alpha_max,
    min_norm_interpolation,
    refine_lasso_support,
)
from ..losses import SquaredLoss
from ..operators import DictionaryOperator
from ..penalties import ColumnGroupL2
from ..programs import ConvexProgram
from ..solvers import FISTA

__all__ = ["Deep1DRegressor", "Deep1DCertificate"]


class Deep1DCertificate(Certificate):
    """A :class:`~convexnn.certificates.Certificate` worded for parallel narrow chains
    (or parallel rectangular step blocks).

    ``activation`` reads ``"<activation>, depth <L>"`` (plus ``", rectangular width
    <m>"``). The dictionary is complete (every unit chain's, or block's, values on the
    data are covered), so ``scope`` is ``"global"``: the bound holds for every network
    of that architecture, depth and activation, with any number of chains (blocks). With ``alpha = 0`` the numbers are those of the
    minimum-norm interpolation LP (primal: the penalty of the exported network; dual:
    the LP dual bound).
    """

    def _architecture_words(self) -> str:
        if "rectangular" in self.activation:
            return "parallel rectangular step blocks"
        return "parallel narrow chains"

    @property
    def certifies(self) -> str:
        return (
            f"Global certificate: no network of {self._architecture_words()} ({self.activation}) of "
            f"any width has an objective below {self.dual:.6g}; this one has {self.primal:.6g}, "
            f"within {self.gap:.3g} ({self.relative_gap:.2e} relative) of that bound."
        )


class Deep1DRegressor(RegressorMixin, BaseEstimator):
    """Deep network on one input feature, trained to its global optimum.

    With ``architecture="chains"`` (default) the network is a sum of ``m`` parallel
    chains of ``depth - 1`` width-one hidden layers (see :mod:`convexnn.deep1d`),

    .. math::

        f(x) = \\xi + \\sum_{k=1}^m \\alpha_k h_k(x), \\qquad
        h_k = \\sigma(w_{k,L-1}\\,\\sigma(\\cdots\\sigma(w_{k,1} x + b_{k,1})\\cdots)
        + b_{k,L-1}),

    trained on

    .. math::

        J = \\tfrac12 \\sum_i w_i\\,(f(x_i) - y_i)^2
        + \\alpha\\,\\tfrac1L\\sum_k\\Big(|\\alpha_k|^L + \\sum_l |w_{k,l}|^L\\Big)

    (sample weights :math:`w_i` normalised to sum to one: the plain mean by default;
    biases and :math:`\\xi` unpenalised). Zeger, Wang, Mishkin, Ergen, Candès &
    Pilanci ("A library of mirrors", 2024) show that this is exactly the Lasso
    :math:`\\min_{z,\\xi} \\tfrac12\\sum_i w_i((Az)_i + \\xi - y_i)^2 +
    \\alpha\\lVert z\\rVert_1` over a fixed dictionary ``A`` of features built from the
    training points (ramps at data points; capped ramps between data points at depth
    3; breakpoints at reflections :math:`2x_j - x_i` at depth 4). The paper's
    :math:`\\tfrac12\\lVert f - y\\rVert^2 + \\beta\\cdot\\text{penalty}` is this
    objective times ``n_samples``: ``alpha = beta / n_samples``.

    For the step activations (``sign``, ``threshold``) each unit carries an amplitude
    :math:`a` and the penalty is :math:`\\tfrac12\\sum_k(a_k^2 + \\alpha_k^2)` (depth 2
    only as chains). With ``architecture="rectangular"`` (step activations, any
    ``depth >= 3``) the network is a sum of rectangular blocks
    (:class:`~convexnn.deep1d.BlockNetwork`),

    .. math::

        f(x) = \\xi + \\sum_k \\alpha_k a_k\\,\\sigma\\big(u_k(x)\\cdot v_k + d_k\\big),
        \\qquad
        J = \\tfrac12 \\sum_i w_i\\,(f(x_i) - y_i)^2
            + \\alpha\\,\\tfrac12\\sum_k\\big(a_k^2 + \\alpha_k^2\\big),

    :math:`u_k(x) \\in \\{\\text{low}, \\text{high}\\}^{m}` the output of ``depth - 2``
    step layers of width ``m = width`` (their weights feed scale-invariant steps and
    are not penalised); it is exactly the Lasso over the step features with at most
    ``width`` switches at data points.

    The dictionary for each case (``x_j`` data points, :math:`s = \\pm1`):

    ==========================  ===================================================
    depth 2, relu/leaky/abs     ramps :math:`\\sigma(s(x - x_j))`
    depth 2, sign/threshold     steps :math:`\\sigma(s(x - x_j))`, :math:`\\sigma(0) = 1`
    depth 3, relu               ramps and capped ramps (clamps) between two data points
    depth 4, relu               depth 3 plus clamps whose breakpoint is a reflection
                                :math:`2x_j - x_i` (flagged in
                                ``breakpoint_is_reflection_``)
    rectangular, depth >= 3     step sequences with at most ``width`` switches, each
                                at a data point
    ==========================  ===================================================

    ``alpha = 0`` solves the minimum-norm interpolation :math:`\\min` penalty s.t.
    :math:`f(x_i) = y_i` exactly, as a linear program (HiGHS). ``alpha > 0`` solves the
    Lasso by FISTA with a duality-gap certificate.

    Which parts are the paper's theorems and which are convexnn's own derivations
    (step-unit penalties, depth 4 = depth 3 in value for parallel chains, the
    rectangular-block dictionary) is listed in :mod:`convexnn.deep1d`.

    Parameters
    ----------
    depth : int, default=2
        Number of weight layers ``L`` (``L - 1`` hidden units per chain): 2, 3 or 4
        for chains (3 and 4 need ``activation="relu"``), any ``L >= 3`` for
        ``architecture="rectangular"``.
    activation : {"relu", "leaky_relu", "abs", "sign", "threshold"}, default="relu"
        Step activations (``sign``, ``threshold``, with :math:`\\sigma(0) = 1`) carry a
        trainable amplitude per unit; their penalty is on amplitudes and output
        weights (the inner weight is scale-free and exported with magnitude 1).
    alpha : float, default=1e-3
        Regularisation strength (``>= 0``); ``0`` is exact minimum-norm interpolation.
    negative_slope : float, default=0.01
        Slope of ``leaky_relu`` for negative inputs, in ``[0, 1)``.
    tol : float, default=1e-8
        Target relative duality gap of the Lasso (``alpha > 0``).
    max_iter : int, default=5000
        FISTA iterations (``alpha > 0``).
    polish : bool, default=True
        Finish FISTA's iterate by solving the Lasso optimality system on its support
        (an active-set step, :func:`convexnn.deep1d.refine_lasso_support`); kept only
        if it lowers the objective. Ramp dictionaries are ill-conditioned, so
        first-order methods are slow in their last digits; the certificate is computed
        for whichever point is kept.
    verbose : int, default=0
    architecture : {"chains", "rectangular"}, default="chains"
        ``"chains"``: the parallel narrow chains above. ``"rectangular"`` (``sign`` /
        ``threshold`` only, any ``depth >= 3``): parallel blocks, each with hidden
        layers ``1..L-2`` of width ``width`` and one step unit in layer ``L - 1`` with
        an amplitude :math:`a_k`, :math:`f = \\xi + \\sum_k \\alpha_k a_k
        \\sigma(\\cdot)`, penalty :math:`\\tfrac12\\sum_k(a_k^2 + \\alpha_k^2)`
        (:class:`~convexnn.deep1d.BlockNetwork`). Training is exactly the Lasso over
        the step features with at most ``width`` switches at data points
        (:func:`~convexnn.deep1d.build_switch_dictionary`); the dictionary, hence the
        optimum, does not depend on ``depth >= 3`` and never increases with ``width``.
    width : int, default=2
        Width of the rectangular blocks' layers ``1..L-2`` (``"rectangular"`` only).

    Attributes
    ----------
    dictionary_ : Dictionary or SwitchDictionary
        The deduplicated features (``dictionary_.features_of(j)``: every feature
        column ``j`` stands for); a :class:`~convexnn.deep1d.SwitchDictionary` for
        ``architecture="rectangular"``.
    coef_ : ndarray of shape (n_atoms,)
        Lasso coefficients :math:`z`.
    intercept_ : float
        :math:`\\xi`.
    network_ : ChainNetwork or BlockNetwork
        The balanced network (one chain or block per non-zero coefficient);
        ``network_.forward`` reproduces :meth:`predict`.
    penalty_ : float
        The penalty of ``network_``: :math:`\\tfrac1L\\sum|\\theta|^L` over its
        weights (step units: :math:`\\tfrac12\\sum(a_k^2 + \\alpha_k^2)` over
        amplitudes and output weights); equals :math:`\\lVert z\\rVert_1`.
    objective_ : float
        ``J`` of ``network_`` on the training data; for ``alpha = 0`` the optimal value
        of the interpolation problem, i.e. ``penalty_``.
    breakpoints_ : ndarray of shape (n_breakpoints,)
        Sorted kinks (jumps, for step activations: the switch points) of the selected
        features.
    breakpoint_is_reflection_ : ndarray of bool, shape (n_breakpoints,)
        Whether each breakpoint is a reflection :math:`2x_j - x_i` (not a data point).
    n_neurons_ : int
        Number of parallel chains (each with ``depth - 1`` hidden units), or of
        rectangular blocks.
    alpha_max_ : float
        Smallest ``alpha`` whose solution is the constant model.
    certificate_ : Deep1DCertificate
        Primal (``objective_``), dual bound, gap; global scope.
    n_iter_ : int
        FISTA iterations (0 for ``alpha = 0``).
    n_features_in_ : int
        Always 1.
    """

    _parameter_constraints: dict = {
        "depth": [Interval(Integral, 2, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "negative_slope": [Interval(Real, 0, 1, closed="left")],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "polish": ["boolean"],
        "verbose": ["verbose"],
        "architecture": [StrOptions(set(ARCHITECTURES))],
        "width": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        depth: int = 2,
        activation: str = "relu",
        *,
        alpha: float = 1e-3,
        negative_slope: float = 0.01,
        tol: float = 1e-8,
        max_iter: int = 5000,
        polish: bool = True,
        verbose: int = 0,
        architecture: str = "chains",
        width: int = 2,
    ):
        self.depth = depth
        self.activation = activation
        self.alpha = alpha
        self.negative_slope = negative_slope
        self.tol = tol
        self.max_iter = max_iter
        self.polish = polish
        self.verbose = verbose
        self.architecture = architecture
        self.width = width

    def fit(self, X, y, sample_weight=None):
        """Fit the network.

        Parameters
        ----------
        X : array-like of shape (n_samples, 1)
            One input feature.
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative; normalised to sum to one. Zero-weight samples are ignored.

        Returns
        -------
        self
        """
        self._validate_params()
        check_architecture(self.depth, self.activation, self.negative_slope,
                           architecture=self.architecture, width=self.width)
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        if X.shape[1] != 1:
            raise ValueError(
                f"Deep1DRegressor needs exactly one input feature; got X with {X.shape[1]} "
                "columns. Pass X.reshape(-1, 1) for a 1-D array."
            )
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        total = sample_weight.sum()
        if not total > 0:
            raise ValueError("sample_weight sums to zero; at least one sample needs a positive weight.")
        keep = sample_weight > 0
        x, y, w = X[keep, 0], y[keep], sample_weight[keep] / total

        if self.architecture == "rectangular":
            D = build_switch_dictionary(x, self.depth, self.activation, self.width)
        else:
            D = build_dictionary(x, self.depth, self.activation, self.negative_slope)
        A = D.A[np.searchsorted(D.points, x)]
        self.dictionary_ = D
        self.alpha_max_ = lasso_alpha_max(A, y, w)
        label = f"{self.activation}, depth {self.depth}"
        if self.architecture == "rectangular":
            label += f", rectangular width {self.width}"

        if self.alpha == 0:
            _check_interpolable(x, y)
            if D.n_atoms == 0 or np.ptp(y) == 0:  # a constant interpolates
                coef, intercept, dual = np.zeros(D.n_atoms), float(y[0]), 0.0
            else:
                coef, intercept, dual, _ = min_norm_interpolation(A, y)
            network = network_from_lasso(D, coef, intercept)
            primal = network.penalty()
            gap = primal - dual
            cert = Deep1DCertificate(
                primal=primal, dual=dual, gap=gap, relative_gap=gap / max(abs(primal), np.finfo(float).tiny),
                scope="global", activation=label, n_patterns=int(D.n_atoms), tol=self.tol,
            )
            self.n_iter_ = 0
            objective = primal
        else:
            program = ConvexProgram(
                SquaredLoss(), ColumnGroupL2(), DictionaryOperator(A), y[:, None], w, float(self.alpha), True
            )
            cert, coef, intercept, network, objective, n_iter = self._solve_lasso(program, D, A, x, y, w, label)
            self.n_iter_ = n_iter
            if not cert.converged:
                warnings.warn(
                    f"Deep1DRegressor: the relative duality gap reached {cert.relative_gap:.2e}, above "
                    f"tol={self.tol:.1e}, after {n_iter} iterations (max_iter={self.max_iter}). "
                    "The network is usable and its certificate honest; increase max_iter or tol.",
                    ConvergenceWarning,
                    stacklevel=2,
                )

        self.coef_ = coef
        self.intercept_ = intercept
        self.network_ = network
        self.penalty_ = float(network.penalty())
        self.objective_ = float(objective)
        self.certificate_ = cert
        self.dual_gap_ = float(cert.gap)
        self.n_neurons_ = int(network.n_chains)
        nz = coef != 0
        bps = D.breakpoints[nz].ravel()
        refl = D.reflection[nz].ravel()
        ok = ~np.isnan(bps)
        bps, refl = bps[ok], refl[ok]
        self.breakpoints_, first = np.unique(bps, return_index=True)
        self.breakpoint_is_reflection_ = refl[first].astype(bool)
        self._X_fit, self._y_fit = x.copy(), y.copy()
        return self

    def _solve_lasso(self, program, D, A, x, y, w, label):
        """FISTA in stages (100, 400, 1600, ... iterations, warm-started), each followed
        by the exact support polish; stops once the certificate reaches ``tol``."""
        solver = FISTA()
        init, used, stage = None, 0, 100
        while True:
            budget = min(stage, self.max_iter - used)
            solution = solver.solve(program, tol=self.tol, max_iter=budget, init=init, verbose=self.verbose)
            used += solution.n_iter
            coef = solution.coef[:, 0, 0].copy()
            intercept = float(solution.intercept[0])
            points = list(solution.dual_points)
            if self.polish:
                z, xi, _ = refine_lasso_support(A, y, w, float(self.alpha), coef, intercept)
                zc, xic = z[:, None, None], np.array([xi])
                if program.objective(zc, xic) <= program.objective(solution.coef, solution.intercept):
                    coef, intercept = z, xi
                    points.append(dual_point_from_outputs(program, program.predict(zc, xic)))
            network = network_from_lasso(D, coef, intercept)
            objective = network.objective(x, y, self.alpha, w)
            base = certify(
                program, coef[:, None, None], np.array([intercept]), points,
                activation=label, tol=self.tol, primal=objective,
            )
            cert = Deep1DCertificate(**base.to_dict())
            if cert.converged or used >= self.max_iter or solution.n_iter < budget:
                return cert, coef, intercept, network, objective, int(used)
            init = (solution.coef, solution.intercept)
            stage *= 4

    def predict(self, X) -> np.ndarray:
        """Network outputs, shape ``(n_samples,)``."""
        check_is_fitted(self, "network_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.network_.forward(X[:, 0])

    def to_network(self) -> ChainNetwork | BlockNetwork:
        """The fitted :class:`~convexnn.deep1d.ChainNetwork` (or
        :class:`~convexnn.deep1d.BlockNetwork` for ``architecture="rectangular"``)."""
        check_is_fitted(self, "network_")
        return self.network_

    def to_torch(self, dtype=None):
        """The fitted network as a ``torch.nn.Module`` (``(n, 1)`` or ``(n,)`` to ``(n,)``)."""
        return self.to_network().to_torch(dtype=dtype)

    def plot(self, ax=None, **kwargs):
        """Plot the fit, its kinks and the selected features (see :func:`convexnn.deep1d.plot_deep1d`)."""
        from ..deep1d import plot_deep1d

        check_is_fitted(self, "network_")
        return plot_deep1d(self, ax=ax, **kwargs)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags


def _check_interpolable(x: np.ndarray, y: np.ndarray) -> None:
    order = np.lexsort((y, x))
    xs, ys = x[order], y[order]
    same = xs[1:] == xs[:-1]
    if np.any(same & (ys[1:] != ys[:-1])):
        raise ValueError(
            "alpha=0 asks for a network that interpolates the data, but some equal inputs have "
            "different targets; use alpha > 0."
        )
