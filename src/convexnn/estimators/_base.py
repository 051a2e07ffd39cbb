"""Shared fitting logic of the ConvexMLP estimators (the scikit-learn-aware layer)."""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ..certificates import certify
from ..data import as_streamable, is_memmap, temporary_npy
from ..devices import TorchGatedOperator, check_device
from ..losses import Loss
from ..network import Network
from ..operators import ConeOperator, GatedOperator
from ..patterns import Patterns, make_sampler, masks_from_gates
from ..penalties import ColumnGroupL2, NuclearNorm
from ..programs import ConvexProgram
from ..solvers import make_solver
from ..solvers.base import ProgressScope, Solution, TimeLimitReached

__all__ = ["BaseConvexMLP", "FitInterruptedWarning"]


class FitInterruptedWarning(UserWarning):
    """A fit was interrupted (Ctrl-C) and kept the network of its last gap check.

    The estimator is fitted and its ``certificate_`` is exact for the network it
    holds; only the optimisation stopped early.
    """


class BaseConvexMLP(BaseEstimator):
    """Two-layer network (ReLU, leaky ReLU, absolute value or gated ReLU) fitted by
    solving its convex reformulation.

    Subclasses supply the loss and the target encoding.
    """

    _parameter_constraints: dict = {
        "activation": [StrOptions({"relu", "gated_relu", "leaky_relu", "abs"})],
        "negative_slope": [Interval(Real, 0, 1, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "n_patterns": [Interval(Integral, 1, None, closed="left")],
        "sampler": [
            StrOptions({"data", "gaussian", "exhaustive"}),
            HasMethods(["sample"]),
            "array-like",
        ],
        "solver": [
            StrOptions({"auto", "fista", "admm", "barrier", "gram_barrier", "cvxpy"}),
            HasMethods(["solve"]),
        ],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "max_time": [Interval(Real, 0, None, closed="neither"), None],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "device": [None, str],
        "dtype": [None, StrOptions({"float32", "float64"})],
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
        warm_start: bool = False,
        random_state=None,
        verbose: int = 0,
        device: str | None = None,
        dtype: str | None = None,
    ):
        self.activation = activation
        self.negative_slope = negative_slope
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
        self.device = device
        self.dtype = dtype

    # -- subclass hooks --------------------------------------------------------------
    def _loss(self, n_outputs: int) -> Loss:  # pragma: no cover - abstract
        raise NotImplementedError

    def _encode_targets(self, y) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _weight_samples(self, y, sample_weight: np.ndarray) -> np.ndarray:
        """Per-sample weights entering the objective (classifiers add ``class_weight``)."""
        return sample_weight

    # -- fitting -----------------------------------------------------------------------
    def _fit(self, X, y, sample_weight, multi_output: bool, y_numeric: bool):
        self._validate_params()
        check_device(self.device)  # before any work: a clear error for a missing GPU
        # a memory map is streamed, never copied into RAM: one that validation would
        # convert (another dtype, not C-contiguous) becomes a float64 temporary file first
        X = as_streamable(X)
        streamed = is_memmap(X)
        # a float64 C-contiguous map passes validation as a view of the map (no copy)
        X, y = validate_data(
            self, X, y, dtype=np.float64, multi_output=multi_output, y_numeric=y_numeric
        )
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        total = sample_weight.sum()
        if not total > 0:
            raise ValueError("sample_weight sums to zero; at least one sample needs a positive weight.")
        Y = self._encode_targets(y)  # (n, c) floats; sets classes_ for classifiers
        sample_weight = self._weight_samples(y, sample_weight)
        total = sample_weight.sum()
        if not total > 0:
            raise ValueError(
                "class_weight times sample_weight sums to zero; at least one sample needs a "
                "positive weight."
            )
        # zero-weight samples do not enter the objective: drop them (same optimum)
        keep = sample_weight > 0
        if not keep.all():
            # X[keep] of a memory map would be an in-memory copy: write a temporary one
            X = temporary_npy(X, keep) if streamed else X[keep]
        Y, w = Y[keep], sample_weight[keep] / total

        program, solution = self._solve(X, Y, w)

        # solvers return cone-feasible points; rounding-level leftovers are projected
        coef = program.make_feasible(solution.coef)
        network = self._network(program, coef, solution.intercept)
        primal = network.objective(X, Y, w, program.loss, self.alpha)
        # ReLU: exact dual norms by cone projections (the best multipliers there are)
        cert = certify(
            program, coef, solution.intercept, solution.dual_points,
            activation=self.activation, tol=self.tol, primal=primal, refine=True,
        )
        self._set_fitted(program, coef, solution, network, cert)
        if solution.interrupted:
            warnings.warn(
                f"{type(self).__name__}: fit interrupted (KeyboardInterrupt); kept the network "
                f"of the last duality-gap check (iteration {solution.n_iter}) with its "
                f"certificate: relative gap {cert.relative_gap:.2e} (tol={self.tol:.1e}), "
                f"{network.n_neurons} neurons. Call fit again (warm_start=True continues "
                "from here) to finish.",
                FitInterruptedWarning,
                stacklevel=3,
            )
        elif solution.time_limit_reached and not cert.converged:
            warnings.warn(
                f"{type(self).__name__}: time limit reached (max_time={self.max_time:g} s); "
                f"kept the network of the last duality-gap check (iteration {solution.n_iter}, "
                f"max_iter={self.max_iter}) with its certificate: relative gap "
                f"{cert.relative_gap:.2e}, above tol={self.tol:.1e}, {network.n_neurons} "
                "neurons. The network is usable and its certificate honest, but not "
                "certified to tol: increase max_time (warm_start=True continues from here) "
                "or tol, or standardize the features.",
                ConvergenceWarning,
                stacklevel=3,
            )
        elif not solution.time_limit_reached and not cert.converged:
            warnings.warn(
                f"{type(self).__name__}: the relative duality gap reached {cert.relative_gap:.2e}, "
                f"above tol={self.tol:.1e}, after {solution.n_iter} iterations (max_iter="
                f"{self.max_iter}). The network is usable and its certificate honest, but "
                "not certified to tol: increase max_iter or tol, or standardize the features.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return self

    def _solve(self, X, Y, w):
        """Sample patterns, build the program and solve it: ``(program, solution)``.

        A hook: subclasses may replace it (e.g. by a closed-form solution).
        """
        patterns = self._patterns(X)
        program = self._program(X, Y, w, patterns)
        solver = make_solver(self.solver, program=program, tol=self.tol)
        solver.check(program)
        init = self._warm_init(program)
        # Ctrl-C during the solve, or the time limit (max_time, checked by the solver's
        # progress printer at its gap checks), keeps the last gap check's state
        with ProgressScope(max_time=getattr(self, "max_time", None)) as scope:
            try:
                solution = solver.solve(
                    program, tol=self.tol, max_iter=self.max_iter, init=init, verbose=self.verbose
                )
            except (KeyboardInterrupt, TimeLimitReached) as stop:
                snap = scope.last_snapshot
                if snap is None:  # nothing to keep yet
                    raise
                timed_out = isinstance(stop, TimeLimitReached)
                solution = Solution(
                    snap.coef, snap.intercept, snap.dual_points, snap.iteration, [],
                    scope.history, interrupted=not timed_out, time_limit_reached=timed_out,
                )
        return program, solution

    def _warm_init(self, program) -> tuple[np.ndarray, np.ndarray] | None:
        """The previous fit's ``(convex_coef_, output intercept)`` as the solver's start,
        when ``warm_start`` is set and it has ``program``'s shape; else None."""
        if self.warm_start and hasattr(self, "convex_coef_") and self.convex_coef_.shape == program.coef_shape:
            return self.convex_coef_, self.intercepts_[1]
        return None

    def _network(self, program, coef, intercept) -> Network:
        """The network read off a (feasible) convex solution. A hook for subclasses."""
        return Network.from_convex(program, coef, intercept)

    def _patterns(self, X: np.ndarray) -> Patterns:
        if self.warm_start and hasattr(self, "gates_") and self.gates_.shape[0] == X.shape[1] + 1:
            return Patterns(self.gates_, complete=self.certificate_.scope == "global")
        sampler = make_sampler(self.sampler, self.n_patterns)
        patterns = sampler.sample(X, self.random_state)
        if patterns.n_patterns == 0:
            # every sampled mask was empty (e.g. identical rows): keep the linear unit
            gates = np.zeros((X.shape[1] + 1, 1))
            gates[-1] = 1.0
            patterns = Patterns(gates, complete=patterns.complete)
        return patterns

    def _program(self, X, Y, w, patterns: Patterns) -> ConvexProgram:
        if self.device is None:
            gated = GatedOperator(X, patterns.gates)
        else:  # the same program, its products in torch on the device
            gated = TorchGatedOperator(X, patterns.gates, self.device, self.dtype)
        # ReLU, leaky ReLU and abs: the same cones, the activation's diagonal S_k
        cone = self.activation != "gated_relu"
        operator = ConeOperator(gated, self.activation, self.negative_slope) if cone else gated
        # several outputs: gated neurons may feed all outputs (nuclear norm, exact for
        # rank-one neurons); cone-program neurons feed one output each (exact and tractable)
        penalty = NuclearNorm() if (not cone and Y.shape[1] > 1) else ColumnGroupL2()
        return ConvexProgram(
            self._loss(Y.shape[1]), penalty, operator, Y, w, float(self.alpha), patterns.complete
        )

    def _set_fitted(self, program, coef, solution, network, cert) -> None:
        P = program.gates.shape[1]
        U, A, block = program.penalty.neurons(coef)
        self.gates_ = np.asarray(program.gates, dtype=float)
        self.neuron_patterns_ = (block % P).astype(np.int64)
        self.coefs_ = [network.coefs[0], network.coefs[1]]
        self.intercepts_ = [network.intercepts[0], network.intercepts[1]]
        self.convex_coef_ = coef
        self.n_neurons_ = int(network.n_neurons)
        self.n_outputs_ = int(program.n_outputs)
        self.n_iter_ = int(solution.n_iter)
        self.stop_reason_ = _stop_reason(solution, cert, self.max_iter)
        self.certificate_ = cert
        self.dual_gap_ = float(cert.gap)
        self.loss_curve_ = [float(v) for v in solution.objective_curve]
        h = solution.history
        self.history_ = {
            "iteration": list(h.iteration),
            "time": list(h.time),
            "primal": list(h.primal),
            "dual": list(h.dual),
        }

    # -- using the fitted network ------------------------------------------------------
    def to_network(self) -> Network:
        """The fitted network as a :class:`~convexnn.network.Network` value object."""
        check_is_fitted(self, "coefs_")
        gates = None
        if self.activation == "gated_relu":
            gates = self.gates_[:, self.neuron_patterns_]
        slope = float(self.negative_slope) if self.activation == "leaky_relu" else None
        return Network(list(self.coefs_), list(self.intercepts_), self.activation, gates,
                       negative_slope=slope)

    def _forward(self, X) -> np.ndarray:
        check_is_fitted(self, "coefs_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.to_network().forward(X)

    def activation_patterns(self, X) -> np.ndarray:
        """Boolean activation masks of the sampled gates on ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        masks : ndarray of bool, shape (n_samples, n_patterns)
            ``masks[i, k]`` is :math:`\\mathbb 1[[x_i, 1] \\cdot g_k > 0]` for column ``k``
            of ``gates_``.
        """
        check_is_fitted(self, "gates_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return masks_from_gates(X, self.gates_)

    def to_torch(self, dtype=None):
        """The fitted network as a ``torch.nn.Module`` (needs the ``torch`` extra).

        Its output equals :meth:`decision_function` (classifiers) or :meth:`predict`
        (regressors): 1-D for a single output. Gated-ReLU gates are buffers.
        """
        check_is_fitted(self, "coefs_")
        return self.to_network().to_torch(squeeze_output=self.n_outputs_ == 1, dtype=dtype)

    def to_onnx(self, path, *, dtype: str = "float64", opset_version: int | None = None,
                dynamo: bool = True):
        """Write the fitted network to an ONNX file through ``torch.onnx.export``.

        Needs the ``torch`` and ``onnx`` extras. The graph's input ``X`` has shape
        ``(n_samples, n_features)``; its outputs are ``predictions`` (regressors,
        equal to :meth:`predict`) or ``decision_function`` and ``probabilities``
        (classifiers, equal to :meth:`decision_function` and :meth:`predict_proba`).
        See :func:`convexnn.export.onnx.to_onnx` for the parameters.

        Returns
        -------
        path : pathlib.Path
        """
        from ..export.onnx import to_onnx

        check_is_fitted(self, "coefs_")
        return to_onnx(self, path, dtype=dtype, opset_version=opset_version, dynamo=dynamo)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags


def _stop_reason(solution: Solution, cert, max_iter: int) -> str:
    """Why the solve ended: ``"interrupted"`` (Ctrl-C), ``"max_time"`` (the time
    limit), ``"converged"`` (certified to ``tol``), ``"max_iter"``, or ``"stalled"``
    (the solver stopped short of both, e.g. an interior-point method at rounding)."""
    if solution.interrupted:
        return "interrupted"
    if solution.time_limit_reached:
        return "max_time"
    if cert.converged:
        return "converged"
    if solution.n_iter >= max_iter:
        return "max_iter"
    return "stalled"
