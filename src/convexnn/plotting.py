"""Plots in scikit-learn's ``Display`` style (``from_estimator``, ``plot(ax=...)``).

matplotlib is an optional dependency (the ``plot`` extra): it is imported inside the
methods that draw, so ``import convexnn.plotting`` works without it.

- :class:`ConvergenceDisplay`: objective and duality gap of a fit against iteration or
  time.
- :class:`NetworkFunctionDisplay`: the fitted function of a one-input network with every
  neuron's kink marked, or the decision regions / response surface of a two-input
  network with every neuron's hyperplane drawn.
- :class:`RegularizationPathDisplay`: neurons, train/validation score and objective
  along a regularization path or a CV estimator's path, against ``alpha``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ConvergenceDisplay", "NetworkFunctionDisplay", "RegularizationPathDisplay"]


def _require_matplotlib():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "convexnn's plots need matplotlib: install it with `pip install matplotlib` "
            "or `pip install convexnn[plot]`."
        ) from exc
    return plt


def _final_step(estimator):
    """The last step of a Pipeline (or the estimator itself) and the steps before it."""
    if hasattr(estimator, "steps") and hasattr(estimator, "__getitem__"):
        return estimator[-1], estimator[:-1]
    return estimator, None


# =====================================================================================
# ConvergenceDisplay and NetworkFunctionDisplay
# =====================================================================================


class ConvergenceDisplay:
    r"""Objective and duality gap of a fit, against iteration or elapsed time.

    A fit records, at every duality-gap check, the primal objective of the current
    iterate and the best dual bound found so far (``history_``); the relative gap

    .. math::

        \mathrm{gap}_t = \frac{J_t - D_t}{J_t}

    bounds the relative suboptimality of the iterate *over the program's activation
    patterns* (see :class:`~convexnn.Certificate`). The fit stops when it falls to
    ``tol``. The per-iteration convex objective (``loss_curve_``) is drawn as well when
    the horizontal axis is the iteration count (it has no time stamps).

    Build it with :meth:`from_estimator`; the constructor only stores data.

    Parameters
    ----------
    iteration : array-like of shape (n_checks,)
        Iteration count at each gap check.
    time : array-like of shape (n_checks,)
        Seconds since the solver started at each check.
    primal : array-like of shape (n_checks,)
        Objective of the iterate at each check.
    dual : array-like of shape (n_checks,)
        Best dual bound at each check.
    objective_curve : array-like of shape (n_iter,), optional
        Convex objective after each iteration (``loss_curve_``).
    certificate : Certificate, optional
        The final certificate; its primal is marked and its ``tol`` drawn.
    name : str, optional
        Legend label prefix.

    Attributes
    ----------
    relative_gap : ndarray of shape (n_checks,)
        ``(primal - dual) / |primal|``.
    ax_ : ndarray of two Axes, or Axes
        ``[objective axes, gap axes]`` for ``kind="both"``, else the single axes.
    figure_ : matplotlib Figure
    lines_ : dict of str to Line2D
        ``"primal"``, ``"dual"``, ``"objective_curve"`` (iteration axis only),
        ``"certificate"`` (the final network's ``J``), ``"relative_gap"``, ``"tol"``;
        only those drawn are present.

    Examples
    --------
    >>> import numpy as np
    >>> from convexnn import ConvexMLPRegressor
    >>> from convexnn.plotting import ConvergenceDisplay
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 2)); y = np.abs(X[:, 0]) - X[:, 1]
    >>> est = ConvexMLPRegressor("gated_relu", n_patterns=20, random_state=0).fit(X, y)
    >>> disp = ConvergenceDisplay.from_estimator(est)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        iteration,
        time,
        primal,
        dual,
        objective_curve=None,
        certificate=None,
        name: str | None = None,
    ):
        self.iteration = np.asarray(iteration, dtype=float)
        self.time = np.asarray(time, dtype=float)
        self.primal = np.asarray(primal, dtype=float)
        self.dual = np.asarray(dual, dtype=float)
        n = self.primal.shape[0]
        for label, arr in (("iteration", self.iteration), ("time", self.time), ("dual", self.dual)):
            if arr.shape != (n,):
                raise ValueError(
                    f"ConvergenceDisplay: {label} has shape {arr.shape} but primal has shape "
                    f"({n},); pass one value per duality-gap check."
                )
        self.objective_curve = None if objective_curve is None else np.asarray(objective_curve, dtype=float)
        self.certificate = certificate
        self.name = name
        self.relative_gap = (self.primal - self.dual) / np.maximum(np.abs(self.primal), 1e-300)

    @classmethod
    def from_estimator(
        cls,
        estimator,
        *,
        x: str = "iteration",
        kind: str = "both",
        ax=None,
        name: str | None = None,
    ) -> ConvergenceDisplay:
        """Plot the convergence of a fitted convexnn estimator.

        Parameters
        ----------
        estimator : fitted ConvexMLP estimator or Pipeline ending in one
            Anything with ``history_`` (and optionally ``loss_curve_``,
            ``certificate_``).
        x : {"iteration", "time"}, default="iteration"
            Horizontal axis.
        kind : {"both", "objective", "gap"}, default="both"
            Draw the objective, the relative gap, or both side by side.
        ax : Axes, or sequence of two Axes for ``kind="both"``, optional
            Where to draw; a new figure when omitted.
        name : str, optional
            Legend label prefix (e.g. to compare several fits on the same axes).

        Returns
        -------
        display : ConvergenceDisplay
        """
        est, _ = _final_step(estimator)
        history = getattr(est, "history_", None)
        if history is None:
            raise ValueError(
                f"ConvergenceDisplay needs a fitted convexnn estimator with a history_ "
                f"attribute; {type(est).__name__} has none (call fit first)."
            )
        disp = cls(
            iteration=history["iteration"],
            time=history["time"],
            primal=history["primal"],
            dual=history["dual"],
            objective_curve=getattr(est, "loss_curve_", None),
            certificate=getattr(est, "certificate_", None),
            name=name,
        )
        return disp.plot(ax=ax, x=x, kind=kind)

    def plot(self, ax=None, *, x: str = "iteration", kind: str = "both") -> ConvergenceDisplay:
        """Draw the curves.

        Parameters
        ----------
        ax : Axes, or sequence of two Axes for ``kind="both"``, optional
            Where to draw; a new figure when omitted.
        x : {"iteration", "time"}, default="iteration"
        kind : {"both", "objective", "gap"}, default="both"

        Returns
        -------
        self : ConvergenceDisplay
        """
        if x not in ("iteration", "time"):
            raise ValueError(f"x must be 'iteration' or 'time'; got {x!r}.")
        if kind not in ("both", "objective", "gap"):
            raise ValueError(f"kind must be 'both', 'objective' or 'gap'; got {kind!r}.")
        plt = _require_matplotlib()
        if ax is None:
            if kind == "both":
                fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
            else:
                fig, ax1 = plt.subplots(figsize=(5, 4), layout="constrained")
                axes = [ax1]
        else:
            axes = list(np.ravel(np.asarray(ax, dtype=object)))
            need = 2 if kind == "both" else 1
            if len(axes) != need:
                raise ValueError(
                    f"kind={kind!r} draws on {need} Axes; got {len(axes)}. Pass "
                    + ("a pair (ax_objective, ax_gap)." if need == 2 else "a single Axes.")
                )
            fig = axes[0].figure
        xs = self.iteration if x == "iteration" else self.time
        xlabel = "iteration" if x == "iteration" else "time (s)"
        prefix = f"{self.name}: " if self.name else ""
        self.lines_ = {}

        if kind in ("both", "objective"):
            a = axes[0]
            if x == "iteration" and self.objective_curve is not None and self.objective_curve.size:
                it = np.arange(1, self.objective_curve.size + 1)
                (self.lines_["objective_curve"],) = a.plot(
                    it, self.objective_curve, color="0.6", lw=1, label=f"{prefix}objective (every iteration)"
                )
            (self.lines_["primal"],) = a.plot(xs, self.primal, "o-", ms=3, label=f"{prefix}primal J")
            (self.lines_["dual"],) = a.plot(xs, self.dual, "s-", ms=3, label=f"{prefix}dual bound")
            if self.certificate is not None and xs.size:
                (self.lines_["certificate"],) = a.plot(
                    [xs[-1]], [self.certificate.primal], "*", ms=12, color="k",
                    label=f"certified network, J = {self.certificate.primal:.4g}",
                )
            vals = np.concatenate([self.primal, self.dual])
            if vals.size and np.all(np.isfinite(vals)) and np.all(vals > 0):
                a.set_yscale("log")  # primal and dual approach each other from both sides
            a.set_xlabel(xlabel)
            a.set_ylabel("objective")
            a.set_title("Primal objective and dual bound")
            a.legend(loc="best", fontsize="small")

        if kind in ("both", "gap"):
            a = axes[-1]
            (self.lines_["relative_gap"],) = a.plot(xs, self.relative_gap, "o-", ms=3, label=f"{prefix}relative gap")
            drawn = [ln for ln in a.get_lines() if str(ln.get_label()).startswith("tol = ")]
            if self.certificate is not None and drawn and drawn[0].get_ydata()[0] == self.certificate.tol:
                self.lines_["tol"] = drawn[0]  # overlaying fits: one tol line
            elif self.certificate is not None:
                self.lines_["tol"] = a.axhline(self.certificate.tol, color="k", ls="--", lw=1,
                                               label=f"tol = {self.certificate.tol:.0e}")
            if np.all(self.relative_gap > 0):
                a.set_yscale("log")
            a.set_xlabel(xlabel)
            a.set_ylabel("(primal - dual) / primal")
            a.set_title("Relative duality gap")
            a.legend(loc="best", fontsize="small")

        self.ax_ = np.asarray(axes, dtype=object) if kind == "both" else axes[0]
        self.figure_ = fig
        return self


def _call_response(estimator, X: np.ndarray, method: str, columns) -> np.ndarray:
    if columns is not None:
        import pandas as pd

        X = pd.DataFrame(X, columns=columns)
    out = np.asarray(getattr(estimator, method)(X), dtype=float)
    return out.reshape(out.shape[0], -1)


def _input_space_neurons(estimator, X: np.ndarray, columns) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Each neuron's switching hyperplane ``x w_j + c_j = 0`` in the estimator's input space.

    For ReLU units this is the pre-activation ``x W1 + b1`` (the kink); for gated units
    it is the gate. Preprocessing steps of a Pipeline are followed when they are affine
    (``StandardScaler``, ``MinMaxScaler``, PCA, ...), checked numerically on ``X``.

    Returns ``(normals (n_features, n_neurons), offsets (n_neurons,), W2, activation)``.
    """
    final, pre = _final_step(estimator)
    if not hasattr(final, "to_network"):
        raise ValueError(
            f"NetworkFunctionDisplay needs a fitted convexnn two-layer estimator (or a "
            f"Pipeline ending in one); got {type(final).__name__}."
        )
    net = final.to_network()
    if len(net.coefs) != 2:
        raise ValueError(
            f"NetworkFunctionDisplay draws two-layer networks; this one has {len(net.coefs)} layers."
        )
    if net.gates is not None:
        W, c = net.gates[:-1], net.gates[-1]
    else:
        W, c = net.coefs[0], net.intercepts[0]
    W2 = np.asarray(net.coefs[1], dtype=float)
    if pre is None or len(pre) == 0:
        return np.asarray(W, float), np.asarray(c, float), W2, net.activation
    # affine preprocessing T(x) = x M + t: probe it, then check it on the data
    d = X.shape[1]
    probe = np.vstack([np.zeros((1, d)), np.eye(d)])
    if columns is not None:
        import pandas as pd

        T = np.asarray(pre.transform(pd.DataFrame(probe, columns=columns)), dtype=float)
        TX = np.asarray(pre.transform(pd.DataFrame(X, columns=columns)), dtype=float)
    else:
        T = np.asarray(pre.transform(probe), dtype=float)
        TX = np.asarray(pre.transform(X), dtype=float)
    t = T[0]
    M = T[1:] - t
    scale = max(np.abs(TX).max(), 1.0)
    if not np.allclose(X @ M + t, TX, rtol=0, atol=1e-8 * scale):
        raise ValueError(
            "NetworkFunctionDisplay maps neuron kinks through a Pipeline only when its "
            "preprocessing is affine (e.g. StandardScaler, MinMaxScaler, PCA); this one is "
            "not. Plot the final estimator on transformed data instead."
        )
    return M @ W, t @ W + c, W2, net.activation


class NetworkFunctionDisplay:
    r"""The function a fitted two-layer network computes, with its neurons marked.

    Every hidden unit of a two-layer network switches on one side of a hyperplane of
    the input space: :math:`x w_j + b_j = 0` for a ReLU unit
    :math:`\max(0, x w_j + b_j)`, and its gate :math:`x g_j + g_{0j} = 0` for a gated
    ReLU unit :math:`\mathbb 1[x g_j + g_{0j} > 0]\,(x w_j + b_j)`.

    - **One input feature**: the fitted function (regressors: ``predict``; classifiers:
      ``decision_function``, the network output) is piecewise linear, and the hyperplanes
      are points. ReLU unit ``j`` has its kink at :math:`x = -b_j / w_j`; a gated unit
      jumps at :math:`x = -g_{0j} / g_j`. The kinks inside the plotted range are marked on
      the curve(s) of the outputs the unit feeds.
    - **Two input features**: the decision regions (classifiers, ``predict``) or the
      response surface (regressors) on a grid, with each unit's hyperplane drawn as a
      line. Between the lines the network is affine.

    Pipelines whose preprocessing is affine (``StandardScaler`` and the like) are
    supported: the hyperplanes are mapped back to the original features.

    Build it with :meth:`from_estimator`; the constructor only stores data.

    Parameters
    ----------
    grid : ndarray of shape (n_grid,) or tuple of two ndarrays of shape (n1, n0)
        1-D: the x values; 2-D: ``(xx0, xx1)`` from ``np.meshgrid``.
    response : ndarray of shape (n_grid, n_outputs) or (n1, n0)
        The response on the grid.
    normals : ndarray of shape (n_features, n_neurons)
        Hyperplane normals :math:`w_j` (input space).
    offsets : ndarray of shape (n_neurons,)
        Hyperplane offsets :math:`b_j`.
    output_weights : ndarray of shape (n_neurons, n_outputs), optional
        Second-layer weights, to mark a 1-D kink only on the outputs the unit feeds.
    X, y : array-like, optional
        Data to scatter.
    response_label : str, default="network output"
    feature_names : list of str, optional
    classes : ndarray, optional
        Class labels (2-D ``predict`` regions are drawn as class indices).
    activation : {"relu", "gated_relu"}, default="relu"
        Only used in labels.

    Attributes
    ----------
    kinks : ndarray of shape (n_neurons,)
        1-D only: :math:`-b_j / w_j` for every unit (``nan`` for a unit with
        :math:`w_j = 0`, which has no kink).
    ax_ : Axes
    figure_ : Figure
    lines_ : list of Line2D
        1-D: one response curve per output.
    kink_markers_ : list of Line2D
        1-D: per output, the markers at the kinks inside the plotted range; their
        ``xdata`` are kink positions and ``ydata`` the response there.
    surface_ : QuadContourSet
        2-D: the filled contours of the response.
    neuron_lines_ : list of Line2D
        2-D: one line per unit whose hyperplane crosses the plotted box, in the order of
        ``neuron_indices_``.
    neuron_indices_ : ndarray of int
        2-D: the unit each line in ``neuron_lines_`` belongs to.
    scatter_ : PathCollection or None
        The data points, when ``X`` was given.
    """

    def __init__(
        self,
        *,
        grid,
        response,
        normals,
        offsets,
        output_weights=None,
        X=None,
        y=None,
        response_label: str = "network output",
        feature_names=None,
        classes=None,
        activation: str = "relu",
    ):
        self.activation = activation
        self.normals = np.asarray(normals, dtype=float)
        self.offsets = np.asarray(offsets, dtype=float)
        if self.normals.ndim != 2 or self.normals.shape[0] not in (1, 2):
            raise ValueError(
                "NetworkFunctionDisplay draws networks with one or two input features; "
                f"normals has shape {self.normals.shape}."
            )
        self.n_features = self.normals.shape[0]
        self.grid = grid
        self.response = np.asarray(response, dtype=float)
        self.output_weights = None if output_weights is None else np.asarray(output_weights, dtype=float)
        self.X = None if X is None else np.asarray(X, dtype=float)
        self.y = None if y is None else np.asarray(y)
        self.response_label = response_label
        self.feature_names = feature_names
        self.classes = classes
        if self.n_features == 1:
            w = self.normals[0]
            with np.errstate(divide="ignore", invalid="ignore"):
                self.kinks = np.where(w != 0, -self.offsets / np.where(w != 0, w, 1.0), np.nan)

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y=None,
        *,
        response_method: str = "auto",
        output: int | None = None,
        grid_resolution: int = 200,
        eps: float = 0.1,
        ax=None,
    ) -> NetworkFunctionDisplay:
        """Plot a fitted network with one or two input features.

        Parameters
        ----------
        estimator : fitted ConvexMLP estimator, or Pipeline ending in one
            Preprocessing steps, if any, must be affine.
        X : array-like of shape (n_samples, 1) or (n_samples, 2)
            Sets the plotted range (and is scattered).
        y : array-like of shape (n_samples,), optional
            Targets or labels to scatter with ``X``.
        response_method : {"auto", "predict", "decision_function", "predict_proba"}
            ``"auto"``: 1-D regressors ``predict``, 1-D classifiers
            ``decision_function`` (the network output, piecewise linear), 2-D
            ``predict`` (regions for classifiers).
        output : int, optional
            For a 2-D plot of a multi-column response, the column to draw (e.g. the
            class index for ``predict_proba``). Required then.
        grid_resolution : int, default=200
            Grid points per axis.
        eps : float, default=0.1
            Margin added around the data range, as a fraction of the range.
        ax : Axes, optional

        Returns
        -------
        display : NetworkFunctionDisplay
        """
        columns = getattr(X, "columns", None)
        Xa = np.asarray(X, dtype=float)
        if Xa.ndim != 2 or Xa.shape[1] not in (1, 2):
            raise ValueError(
                "NetworkFunctionDisplay plots networks with one or two input features; X has "
                f"shape {Xa.shape}. Select two columns, or fit on a projection of the data."
            )
        if grid_resolution < 2:
            raise ValueError(f"grid_resolution must be >= 2; got {grid_resolution}.")
        final, _ = _final_step(estimator)
        if not hasattr(final, "to_network"):
            raise ValueError(
                "NetworkFunctionDisplay needs a fitted convexnn two-layer estimator (or a "
                f"Pipeline ending in one); got {type(final).__name__}."
            )
        is_clf = hasattr(final, "classes_")
        methods = ("auto", "predict", "decision_function", "predict_proba")
        if response_method not in methods:
            raise ValueError(f"response_method must be one of {methods}; got {response_method!r}.")
        if response_method == "auto":
            response_method = "decision_function" if (is_clf and Xa.shape[1] == 1) else "predict"
        if not hasattr(estimator, response_method):
            raise ValueError(f"{type(estimator).__name__} has no {response_method} method.")
        normals, offsets, W2, activation = _input_space_neurons(estimator, Xa, columns)
        lo, hi = Xa.min(axis=0), Xa.max(axis=0)
        pad = eps * np.where(hi > lo, hi - lo, 1.0)
        lo, hi = lo - pad, hi + pad
        names = list(columns) if columns is not None else None

        if Xa.shape[1] == 1:
            w = normals[0]
            with np.errstate(divide="ignore", invalid="ignore"):
                k = -offsets[w != 0] / w[w != 0]
            k = k[(k > lo[0]) & (k < hi[0])]
            # the kinks are grid points, so the drawn polyline is the exact function
            grid = np.unique(np.concatenate([np.linspace(lo[0], hi[0], grid_resolution), k]))
            if response_method == "predict" and is_clf:
                response = np.searchsorted(final.classes_, np.asarray(
                    estimator.predict(grid[:, None] if columns is None else _frame(grid[:, None], columns))
                ))[:, None].astype(float)
            else:
                response = _call_response(estimator, grid[:, None], response_method, columns)
            label = _response_label(response_method, final)
            disp = cls(grid=grid, response=response, normals=normals, offsets=offsets,
                       output_weights=W2, X=Xa, y=y, response_label=label,
                       feature_names=names, classes=getattr(final, "classes_", None),
                       activation=activation)
            return disp.plot(ax=ax)

        xx0, xx1 = np.meshgrid(np.linspace(lo[0], hi[0], grid_resolution),
                               np.linspace(lo[1], hi[1], grid_resolution))
        flat = np.column_stack([xx0.ravel(), xx1.ravel()])
        if response_method == "predict" and is_clf:
            pred = estimator.predict(flat if columns is None else _frame(flat, columns))
            response = np.searchsorted(final.classes_, np.asarray(pred)).astype(float)[:, None]
        else:
            response = _call_response(estimator, flat, response_method, columns)
        if response.shape[1] > 1:
            if output is None:
                raise ValueError(
                    f"{response_method} returns {response.shape[1]} columns; pass output=INDEX "
                    "to choose the one to draw."
                )
            response = response[:, output : output + 1]
        label = _response_label(response_method, final)
        disp = cls(grid=(xx0, xx1), response=response[:, 0].reshape(xx0.shape),
                   normals=normals, offsets=offsets, output_weights=W2, X=Xa, y=y,
                   response_label=label, feature_names=names,
                   classes=getattr(final, "classes_", None) if response_method == "predict" else None,
                   activation=activation)
        return disp.plot(ax=ax)

    def plot(self, ax=None, *, neuron_kw: dict | None = None, contour_kw: dict | None = None) -> NetworkFunctionDisplay:
        """Draw the function (1-D) or the regions/surface (2-D) and the neurons.

        Parameters
        ----------
        ax : Axes, optional
            A new figure when omitted.
        neuron_kw : dict, optional
            Keyword arguments for the kink markers (1-D) or hyperplane lines (2-D).
        contour_kw : dict, optional
            Keyword arguments for ``contourf`` (2-D).

        Returns
        -------
        self : NetworkFunctionDisplay
        """
        plt = _require_matplotlib()
        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 4.5), layout="constrained")
        self.ax_ = ax
        self.figure_ = ax.figure
        self.scatter_ = None
        if self.n_features == 1:
            self._plot_1d(ax, dict(neuron_kw or {}))
        else:
            self._plot_2d(ax, dict(neuron_kw or {}), dict(contour_kw or {}))
        return self

    def _plot_1d(self, ax, neuron_kw):
        x = np.asarray(self.grid, dtype=float)
        R = self.response.reshape(x.size, -1)
        lo, hi = x.min(), x.max()
        inside = np.isfinite(self.kinks) & (self.kinks > lo) & (self.kinks < hi)
        self.lines_, self.kink_markers_ = [], []
        if self.X is not None:
            yv = None if self.y is None else np.asarray(self.y)
            if yv is not None and yv.ndim == 1 and (self.classes is None or R.shape[1] == 1) and np.issubdtype(yv.dtype, np.number):
                if self.classes is not None and len(self.classes) == 2:
                    yv = np.where(yv == self.classes[1], 1.0, -1.0)  # labels at +-1 on the logit axis
                self.scatter_ = ax.scatter(self.X[:, 0], yv, s=12, c="0.5", alpha=0.6, label="data")
        style = {"marker": "o", "ls": "none", "ms": 5, "mfc": "white", "mec": "C3", "zorder": 3}
        style.update(neuron_kw)
        for k in range(R.shape[1]):
            tag = "" if R.shape[1] == 1 else (f" {self.classes[k]}" if self.classes is not None and len(self.classes) == R.shape[1] else f" {k}")
            (line,) = ax.plot(x, R[:, k], lw=2, label=f"{self.response_label}{tag}", color=f"C{k % 10}")
            self.lines_.append(line)
            feeds = inside.copy()
            if self.output_weights is not None and self.output_weights.shape[1] == R.shape[1]:
                feeds &= self.output_weights[:, k] != 0
            xk = np.sort(np.unique(self.kinks[feeds]))
            yk = np.interp(xk, x, R[:, k])
            (m,) = ax.plot(xk, yk, label="neuron kinks" if k == 0 else None, **style)
            self.kink_markers_.append(m)
        ax.set_xlim(lo, hi)
        ax.set_xlabel(self.feature_names[0] if self.feature_names else "x")
        ax.set_ylabel(self.response_label)
        ax.set_title(f"Fitted network: {int(inside.sum())} kinks in range ({self.offsets.size} units)")
        ax.legend(loc="best", fontsize="small")

    def _plot_2d(self, ax, neuron_kw, contour_kw):
        xx0, xx1 = self.grid
        Z = self.response
        if self.classes is not None:
            levels = np.arange(len(self.classes) + 1) - 0.5
            contour_kw.setdefault("levels", levels)
            contour_kw.setdefault("cmap", "Pastel1" if len(self.classes) <= 9 else "tab20")
        else:
            contour_kw.setdefault("levels", 20)
            contour_kw.setdefault("cmap", "viridis")
        contour_kw.setdefault("alpha", 0.8)
        self.surface_ = ax.contourf(xx0, xx1, Z, **contour_kw)
        if self.classes is None:
            self.figure_.colorbar(self.surface_, ax=ax, label=self.response_label)
        x0min, x0max = float(xx0.min()), float(xx0.max())
        x1min, x1max = float(xx1.min()), float(xx1.max())
        style = {"color": "k", "lw": 0.8, "alpha": 0.6}
        style.update(neuron_kw)
        self.neuron_lines_, idx = [], []
        for j in range(self.offsets.size):
            seg = _clip_line(self.normals[:, j], self.offsets[j], x0min, x0max, x1min, x1max)
            if seg is None:
                continue
            (line,) = ax.plot(seg[:, 0], seg[:, 1], label="neuron hyperplanes" if not idx else None, **style)
            self.neuron_lines_.append(line)
            idx.append(j)
        self.neuron_indices_ = np.asarray(idx, dtype=int)
        if self.X is not None:
            kw = {"s": 14, "edgecolors": "k", "linewidths": 0.3}
            if self.y is not None and self.classes is not None:
                codes = np.searchsorted(self.classes, self.y)
                self.scatter_ = ax.scatter(self.X[:, 0], self.X[:, 1], c=codes, cmap=contour_kw["cmap"],
                                           vmin=-0.5, vmax=len(self.classes) - 0.5, **kw)
            elif self.y is not None and np.issubdtype(np.asarray(self.y).dtype, np.number):
                self.scatter_ = ax.scatter(self.X[:, 0], self.X[:, 1], c=self.y, cmap=contour_kw["cmap"],
                                           norm=self.surface_.norm, **kw)
            else:
                self.scatter_ = ax.scatter(self.X[:, 0], self.X[:, 1], c="w", **kw)
        ax.set_xlim(x0min, x0max)
        ax.set_ylim(x1min, x1max)
        names = self.feature_names or ["x0", "x1"]
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        ax.set_title(f"{self.response_label}: {len(idx)} neuron hyperplanes in view")


def _frame(X, columns):
    import pandas as pd

    return pd.DataFrame(X, columns=columns)


def _response_label(method: str, final) -> str:
    if method == "predict":
        return "predicted class" if hasattr(final, "classes_") else "prediction"
    if method == "decision_function":
        return "network output (logit)"
    return "class probability"


def _clip_line(w, b, x0min, x0max, x1min, x1max):
    """The segment of ``{x : x w + b = 0}`` inside the box, as a (2, 2) array, or None."""
    w0, w1 = float(w[0]), float(w[1])
    pts = []
    if w1 != 0:
        for x0 in (x0min, x0max):
            x1 = -(b + w0 * x0) / w1
            if x1min <= x1 <= x1max:
                pts.append((x0, x1))
    if w0 != 0:
        for x1 in (x1min, x1max):
            x0 = -(b + w1 * x1) / w0
            if x0min <= x0 <= x0max:
                pts.append((x0, x1))
    if len(pts) < 2:
        return None
    pts = np.unique(np.round(np.asarray(pts), 12), axis=0)
    if len(pts) < 2:
        return None  # touches a corner only
    # the two points farthest apart (a line through a corner can produce 3)
    d = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)
    i, k = np.unravel_index(np.argmax(d), d.shape)
    return pts[[i, k]]


# =====================================================================================
# end of ConvergenceDisplay and NetworkFunctionDisplay
# =====================================================================================


# =====================================================================================
# RegularizationPathDisplay
# =====================================================================================


class RegularizationPathDisplay:
    r"""Neurons, score and objective along a regularization path, against ``alpha``.

    Three panels share a logarithmic ``alpha`` axis:

    1. the number of hidden units with non-zero weights (0 at :math:`\alpha_{max}`,
       the smallest ``alpha`` whose solution is the constant model);
    2. the training score and, when available, the validation score (the mean
       cross-validation test score, with a ±1 standard deviation band, for a CV
       estimator);
    3. the certified objective :math:`J_\alpha` of each point (it decreases with
       ``alpha``: every network is feasible for every ``alpha``).

    Build it with :meth:`from_path` or :meth:`from_estimator`; the constructor only
    stores data.

    Parameters
    ----------
    alphas : array-like of shape (n_alphas,)
        ``alpha`` of the neuron and objective curves.
    n_neurons : array-like of shape (n_alphas,)
    objectives : array-like of shape (n_alphas,)
    train_scores : array-like of shape (n_score_alphas,), optional
    val_scores : array-like of shape (n_score_alphas,), optional
    score_alphas : array-like of shape (n_score_alphas,), optional
        ``alpha`` of the score curves (default: ``alphas``).
    val_scores_std : array-like of shape (n_score_alphas,), optional
        Drawn as a band around ``val_scores``.
    cv_n_neurons : array-like of shape (n_score_alphas,), optional
        Mean number of neurons over the cross-validation folds.
    alpha : float, optional
        A chosen ``alpha`` (e.g. ``alpha_`` of a CV estimator), marked on every panel.
    alpha_max : float, optional
    score_name : str, default="score"
        Label of the score panel.

    Attributes
    ----------
    axes_ : ndarray of matplotlib Axes, shape (3,)
    figure_ : matplotlib Figure
    lines_ : dict of str to matplotlib Line2D
        ``"n_neurons"``, ``"objective"``, ``"train_score"``, ``"val_score"``,
        ``"cv_n_neurons"`` (those drawn).
    """

    def __init__(
        self,
        alphas,
        n_neurons,
        objectives,
        *,
        train_scores=None,
        val_scores=None,
        score_alphas=None,
        val_scores_std=None,
        cv_n_neurons=None,
        alpha: float | None = None,
        alpha_max: float | None = None,
        score_name: str = "score",
    ):
        self.alphas = np.asarray(alphas, dtype=float)
        self.n_neurons = np.asarray(n_neurons)
        self.objectives = np.asarray(objectives, dtype=float)
        self.score_alphas = self.alphas if score_alphas is None else np.asarray(score_alphas, dtype=float)
        self.train_scores = None if train_scores is None else np.asarray(train_scores, dtype=float)
        self.val_scores = None if val_scores is None else np.asarray(val_scores, dtype=float)
        self.val_scores_std = None if val_scores_std is None else np.asarray(val_scores_std, dtype=float)
        self.cv_n_neurons = None if cv_n_neurons is None else np.asarray(cv_n_neurons, dtype=float)
        self.alpha = alpha
        self.alpha_max = alpha_max
        self.score_name = score_name

    @classmethod
    def from_path(cls, path, *, ax=None) -> RegularizationPathDisplay:
        """Plot a :class:`~convexnn.path.RegularizationPath`.

        Parameters
        ----------
        path : RegularizationPath
            From :func:`convexnn.regularization_path`.
        ax : sequence of 3 matplotlib Axes, optional
            Where to draw; a new figure with three panels by default.
        """
        if not hasattr(path, "alphas") or not hasattr(path, "n_neurons"):
            raise ValueError(
                "from_path needs a RegularizationPath (from convexnn.regularization_path); "
                f"got {type(path).__name__}."
            )
        display = cls(
            path.alphas, path.n_neurons, path.objectives, train_scores=path.train_scores,
            val_scores=path.val_scores, alpha_max=path.alpha_max, score_name=path.scoring,
        )
        return display.plot(ax=ax)

    @classmethod
    def from_estimator(cls, estimator, *, ax=None) -> RegularizationPathDisplay:
        """Plot the path of a fitted ``ConvexMLPRegressorCV`` / ``ConvexMLPClassifierCV``.

        Neurons and objective are those of the refit on all the data (``path_``, from
        the largest ``alpha`` down to ``alpha_``), with the mean number of neurons over
        the folds; the scores are the mean training and test scores of the
        cross-validation (``cv_results_``) over the whole grid. ``alpha_`` is marked.

        Parameters
        ----------
        estimator : fitted ConvexMLPRegressorCV or ConvexMLPClassifierCV
            Or a Pipeline ending in one.
        ax : sequence of 3 matplotlib Axes, optional
        """
        final, _ = _final_step(estimator)
        if not (hasattr(final, "cv_results_") and hasattr(final, "path_")):
            raise ValueError(
                "from_estimator needs a fitted ConvexMLPRegressorCV or ConvexMLPClassifierCV "
                f"(with cv_results_ and path_); got {type(final).__name__}. For a "
                "RegularizationPath use RegularizationPathDisplay.from_path."
            )
        res, path = final.cv_results_, final.path_
        name = "score" if final.scoring is None else str(getattr(final.scoring, "__name__", final.scoring))
        display = cls(
            path.alphas, path.n_neurons, path.objectives,
            train_scores=res["mean_train_score"], val_scores=res["mean_test_score"],
            val_scores_std=res["std_test_score"], score_alphas=final.alphas_,
            cv_n_neurons=res["mean_n_neurons"], alpha=final.alpha_,
            alpha_max=float(final.alphas_[0]), score_name=name,
        )
        return display.plot(ax=ax)

    def plot(self, ax=None) -> RegularizationPathDisplay:
        """Draw the three panels.

        Parameters
        ----------
        ax : sequence of 3 matplotlib Axes, optional
            Neurons, score, objective. A new figure by default.

        Returns
        -------
        self
        """
        plt = _require_matplotlib()
        if ax is None:
            fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
        else:
            axes = np.asarray(ax, dtype=object).ravel()
            if axes.size != 3:
                raise ValueError(
                    f"ax must hold 3 Axes (neurons, score, objective); got {axes.size}."
                )
            fig = axes[0].figure
        axes = np.asarray(axes, dtype=object).ravel()
        lines = {}
        ax_n, ax_s, ax_j = axes
        (lines["n_neurons"],) = ax_n.plot(self.alphas, self.n_neurons, "o-", label="all data")
        if self.cv_n_neurons is not None:
            (lines["cv_n_neurons"],) = ax_n.plot(
                self.score_alphas, self.cv_n_neurons, "s--", alpha=0.7, label="CV mean"
            )
            ax_n.legend()
        ax_n.set_ylabel("neurons")
        if self.train_scores is not None:
            (lines["train_score"],) = ax_s.plot(self.score_alphas, self.train_scores, "o-", label="train")
        if self.val_scores is not None:
            label = "validation" if self.val_scores_std is None else "CV test (mean ± std)"
            (lines["val_score"],) = ax_s.plot(self.score_alphas, self.val_scores, "s-", label=label)
            if self.val_scores_std is not None:
                ax_s.fill_between(
                    self.score_alphas, self.val_scores - self.val_scores_std,
                    self.val_scores + self.val_scores_std, color=lines["val_score"].get_color(),
                    alpha=0.2,
                )
        if self.train_scores is not None or self.val_scores is not None:
            ax_s.legend()
        ax_s.set_ylabel(self.score_name)
        (lines["objective"],) = ax_j.plot(self.alphas, self.objectives, "o-")
        ax_j.set_ylabel("objective J (certified)")
        for a in axes:
            a.set_xscale("log")
            a.set_xlabel("alpha")
            if self.alpha is not None:
                a.axvline(self.alpha, color="0.4", linestyle=":", linewidth=1)
        ax_s.set_title(
            "regularization path" + ("" if self.alpha is None else f" (alpha_ = {self.alpha:.3g})")
        )
        self.axes_, self.figure_, self.lines_ = axes, fig, lines
        return self
