"""``ConvexMLPRegressorCV`` and ``ConvexMLPClassifierCV``: ``alpha`` chosen by
cross-validation along the regularization path, like scikit-learn's ``LassoCV``."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from scipy.stats import rankdata
from sklearn.base import is_classifier
from sklearn.metrics import get_scorer_names
from sklearn.model_selection import check_cv
from sklearn.utils import _safe_indexing, indexable
from sklearn.utils._param_validation import Interval, StrOptions

from ..path import _build_program, _check_alphas, _walk, alpha_grid
from ._base import BaseConvexMLP
from .mlp import ConvexMLPClassifier, ConvexMLPRegressor

__all__ = ["ConvexMLPRegressorCV", "ConvexMLPClassifierCV"]

# parameters of the plain estimators that the CV estimators do not have
_NOT_CV_PARAMS = ("alpha", "warm_start", "pattern_search")

_CV_CONSTRAINTS = {
    "alphas": ["array-like", None],
    "n_alphas": [Interval(Integral, 1, None, closed="left")],
    "alpha_min_ratio": [Interval(Real, 0, 1, closed="right")],
    "cv": ["cv_object"],
    "scoring": [StrOptions(set(get_scorer_names())), callable, None],
}

_CV_PARAMS_DOC = """
    Parameters
    ----------
    activation : {"relu", "leaky_relu", "abs", "gated_relu"}, default="relu"
        As in the plain estimator.
    negative_slope : float, default=0.01
        Leaky ReLU's slope for negative inputs, in ``[0, 1)``, as in the plain estimator.
    alphas : array-like of shape (n_alphas,), default=None
        Grid of ``alpha`` values to compare (sorted into decreasing order). Default:
        ``n_alphas`` values log-spaced from ``alpha_max`` of the full training data
        (the smallest ``alpha`` whose solution is the constant model, computed
        exactly) down to ``alpha_min_ratio * alpha_max``.
    n_alphas : int, default=10
        Size of the default grid.
    alpha_min_ratio : float, default=1e-3
        Smallest over largest ``alpha`` of the default grid.
    cv : int, cross-validation generator or iterable, default=5
        As in scikit-learn (``check_cv``): an int gives ``KFold`` for regressors and
        ``StratifiedKFold`` for classifiers.
    scoring : str or callable, default=None
        scikit-learn scoring (default: the estimator's ``score``, R² or accuracy);
        larger is better. Test folds are scored without sample weights.
    n_patterns, sampler, solver, tol, max_iter, random_state
        As in the plain estimator; every fit along every path uses them. Each fold
        samples its own patterns on its training part; the refit samples on all data.
    max_time : float or None, default=None
        Time limit in seconds of *each* solve (every ``alpha`` of every fold and of
        the refit), as in the plain estimator; a solve that reaches it keeps its
        last gap check's network, warns, and the path goes on to the next ``alpha``
        from there. None: no limit.
    verbose : int, default=0
        Print one line per fitted ``alpha``.
    device : None, "cpu", "cuda" or "cuda:N", default=None
        Where the products of every fit run (see the plain estimator).
    dtype : {None, "float32", "float64"}, default=None
        Working precision on ``device`` (see the plain estimator).
"""

_CV_ATTRS_DOC = """
    Attributes
    ----------
    alphas_ : ndarray of shape (n_alphas,)
        The grid (decreasing).
    alpha_ : float
        The ``alpha`` with the best mean test score (the largest one among ties).
    best_index_ : int
        Index of ``alpha_`` in ``alphas_``.
    cv_results_ : dict of ndarray
        Like ``GridSearchCV.cv_results_``: ``param_alpha``, ``params``,
        ``split{k}_test_score``, ``mean_test_score``, ``std_test_score``,
        ``rank_test_score``, ``split{k}_train_score``, ``mean_train_score``,
        ``std_train_score``, ``split{k}_n_neurons``, ``mean_n_neurons``,
        ``mean_fit_time``, ``std_fit_time`` (seconds per fit).
    n_splits_ : int
        Number of cross-validation splits.
    path_ : RegularizationPath
        The refit: the path on all the data from ``alphas_[0]`` down to ``alpha_``
        (warm starts); its last point is the model this estimator predicts with.
    best_estimator_ : estimator
        The plain estimator fitted at ``alpha_`` on all the data. Its fitted
        attributes (``coefs_``, ``intercepts_``, ``certificate_``, ``n_neurons_``,
        ``gates_``, ... and ``classes_`` for classifiers) are also set on this
        estimator, which predicts with it.
"""


class _ConvexMLPCVMixin:
    """Cross-validation along the path; the plain estimator class is ``_plain``."""

    _plain: type[BaseConvexMLP]

    def _template(self) -> BaseConvexMLP:
        names = [n for n in self._plain._get_param_names() if n not in _NOT_CV_PARAMS]
        params = {n: getattr(self, n) for n in names if hasattr(self, n)}
        params["verbose"] = 0
        return self._plain(**params)

    def _fit_cv(self, X, y, sample_weight):
        self._validate_params()
        template = self._template()
        X, y, sample_weight = indexable(X, y, sample_weight)

        # the splits first: too few samples for cv is the first thing to report
        cv = check_cv(self.cv, y, classifier=is_classifier(self))
        splits = list(cv.split(X, y))
        if self.alphas is None:
            alpha_max = float(_build_program(template, X, y, sample_weight).alpha_max())
            alphas = alpha_grid(alpha_max, self.n_alphas, self.alpha_min_ratio)
        else:
            alphas = _check_alphas(self.alphas)

        test, train, neurons, times = [], [], [], []
        for k, (tr, te) in enumerate(splits):
            if self.verbose:
                print(f"[{type(self).__name__}] fold {k + 1}/{len(splits)}", flush=True)
            sw = None if sample_weight is None else _safe_indexing(sample_weight, tr)
            path, _ = _walk(
                template, _safe_indexing(X, tr), _safe_indexing(y, tr), sample_weight=sw,
                alphas=alphas, X_val=_safe_indexing(X, te), y_val=_safe_indexing(y, te),
                scoring=self.scoring, verbose=self.verbose,
            )
            test.append(path.val_scores)
            train.append(path.train_scores)
            neurons.append(path.n_neurons)
            times.append(path.times)
        test, train = np.array(test), np.array(train)
        neurons, times = np.array(neurons), np.array(times)
        n_splits = len(test)

        mean = test.mean(axis=0)
        # first maximum on the decreasing grid: the largest alpha among ties
        best = int(np.flatnonzero(mean == mean.max())[0]) if np.isfinite(mean).any() else 0
        results: dict = {
            "param_alpha": alphas.copy(),
            "params": [{"alpha": float(a)} for a in alphas],
        }
        for k in range(n_splits):
            results[f"split{k}_test_score"] = test[k]
        results["mean_test_score"] = mean
        results["std_test_score"] = test.std(axis=0)
        results["rank_test_score"] = rankdata(-np.nan_to_num(mean, nan=-np.inf), method="min").astype(
            np.int32
        )
        for k in range(n_splits):
            results[f"split{k}_train_score"] = train[k]
        results["mean_train_score"] = train.mean(axis=0)
        results["std_train_score"] = train.std(axis=0)
        for k in range(n_splits):
            results[f"split{k}_n_neurons"] = neurons[k]
        results["mean_n_neurons"] = neurons.mean(axis=0)
        results["mean_fit_time"] = times.mean(axis=0)
        results["std_fit_time"] = times.std(axis=0)

        # refit on all the data, walking the path down to the chosen alpha
        path, best_estimator = _walk(
            template, X, y, sample_weight=sample_weight, alphas=alphas[: best + 1],
            scoring=self.scoring, verbose=self.verbose,
        )
        for name, value in vars(best_estimator).items():
            if name.endswith("_") and not name.startswith("_"):
                setattr(self, name, value)
        self.best_estimator_ = best_estimator
        self.alphas_ = alphas
        self.alpha_ = float(alphas[best])
        self.best_index_ = best
        self.cv_results_ = results
        self.n_splits_ = n_splits
        self.path_ = path
        return self


def _cv_init_params(self, activation, negative_slope, alphas, n_alphas, alpha_min_ratio, cv,
                    scoring, n_patterns, sampler, solver, tol, max_iter, max_time, random_state,
                    verbose, device, dtype):
    self.activation = activation
    self.negative_slope = negative_slope
    self.alphas = alphas
    self.n_alphas = n_alphas
    self.alpha_min_ratio = alpha_min_ratio
    self.cv = cv
    self.scoring = scoring
    self.n_patterns = n_patterns
    self.sampler = sampler
    self.solver = solver
    self.tol = tol
    self.max_iter = max_iter
    self.max_time = max_time
    self.random_state = random_state
    self.verbose = verbose
    self.device = device
    self.dtype = dtype


class ConvexMLPRegressorCV(_ConvexMLPCVMixin, ConvexMLPRegressor):
    __doc__ = (
        """:class:`~convexnn.ConvexMLPRegressor` with ``alpha`` chosen by cross-validation.

    For every split the convex program is solved along the grid ``alphas_``, from
    the largest ``alpha`` down, each solve warm-started from the previous one
    (:func:`~convexnn.regularization_path`), and scored on the held-out part. The
    ``alpha`` with the best mean score is refitted on all the data by walking the
    same grid down to it. The estimator then predicts with that network and exposes
    its fitted attributes (``coefs_``, ``certificate_``, ...), as ``LassoCV`` does.
    """
        + _CV_PARAMS_DOC
        + _CV_ATTRS_DOC
    )

    _plain = ConvexMLPRegressor
    _parameter_constraints: dict = {
        **{k: v for k, v in ConvexMLPRegressor._parameter_constraints.items() if k not in _NOT_CV_PARAMS},
        **_CV_CONSTRAINTS,
    }

    def __init__(
        self,
        activation: str = "relu",
        *,
        negative_slope: float = 0.01,
        alphas=None,
        n_alphas: int = 10,
        alpha_min_ratio: float = 1e-3,
        cv=5,
        scoring=None,
        n_patterns: int = 200,
        sampler="data",
        solver="auto",
        tol: float = 1e-3,
        max_iter: int = 5000,
        max_time: float | None = None,
        random_state=None,
        verbose: int = 0,
        device: str | None = None,
        dtype: str | None = None,
    ):
        _cv_init_params(self, activation, negative_slope, alphas, n_alphas, alpha_min_ratio, cv,
                        scoring, n_patterns, sampler, solver, tol, max_iter, max_time,
                        random_state, verbose, device, dtype)

    def fit(self, X, y, sample_weight=None):
        """Choose ``alpha`` by cross-validation, then refit on all the data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), optional
            Weights of the training objective (every fit); test folds are scored
            unweighted.

        Returns
        -------
        self
        """
        return self._fit_cv(X, y, sample_weight)


class ConvexMLPClassifierCV(_ConvexMLPCVMixin, ConvexMLPClassifier):
    __doc__ = (
        """:class:`~convexnn.ConvexMLPClassifier` with ``alpha`` chosen by cross-validation.

    For every (stratified) split the convex program is solved along the grid
    ``alphas_``, from the largest ``alpha`` down, each solve warm-started from the
    previous one (:func:`~convexnn.regularization_path`), and scored on the held-out
    part. The ``alpha`` with the best mean score is refitted on all the data by
    walking the same grid down to it. The estimator then predicts with that network
    and exposes its fitted attributes (``coefs_``, ``certificate_``, ``classes_``, ...).
    """
        + _CV_PARAMS_DOC
        + """    class_weight : dict, "balanced" or None, default=None
        As in :class:`~convexnn.ConvexMLPClassifier`.
"""
        + _CV_ATTRS_DOC
    )

    _plain = ConvexMLPClassifier
    _parameter_constraints: dict = {
        **{k: v for k, v in ConvexMLPClassifier._parameter_constraints.items() if k not in _NOT_CV_PARAMS},
        **_CV_CONSTRAINTS,
    }

    def __init__(
        self,
        activation: str = "relu",
        *,
        negative_slope: float = 0.01,
        alphas=None,
        n_alphas: int = 10,
        alpha_min_ratio: float = 1e-3,
        cv=5,
        scoring=None,
        n_patterns: int = 200,
        sampler="data",
        solver="auto",
        tol: float = 1e-3,
        max_iter: int = 5000,
        max_time: float | None = None,
        random_state=None,
        verbose: int = 0,
        device: str | None = None,
        dtype: str | None = None,
        class_weight=None,
    ):
        _cv_init_params(self, activation, negative_slope, alphas, n_alphas, alpha_min_ratio, cv,
                        scoring, n_patterns, sampler, solver, tol, max_iter, max_time,
                        random_state, verbose, device, dtype)
        self.class_weight = class_weight

    def fit(self, X, y, sample_weight=None):
        """Choose ``alpha`` by stratified cross-validation, then refit on all the data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Class labels of any type (at least two distinct).
        sample_weight : array-like of shape (n_samples,), optional
            Weights of the training objective (every fit); test folds are scored
            unweighted.

        Returns
        -------
        self
        """
        return self._fit_cv(X, y, sample_weight)
