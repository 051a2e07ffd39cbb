"""Shared fitting logic of the ConvexMLP estimators (the scikit-learn-aware layer)."""

from __future__ import annotations

import dataclasses
import sys
import time
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
from ..patterns import Patterns, make_sampler, masks_from_gates, unique_patterns
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
        "pattern_search": [Interval(Integral, 0, None, closed="left")],
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
        pattern_search: int = 0,
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
        self.pattern_search = pattern_search
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

        With ``pattern_search`` rounds (cone activations), continues with
        :meth:`_search_patterns`. A hook: subclasses may replace it (e.g. by a
        closed-form solution).
        """
        # estimators built on this class without the parameter (threshold) never search
        rounds = getattr(self, "pattern_search", 0)
        if rounds and self.activation == "gated_relu":
            raise ValueError(
                "pattern_search needs activation='relu', 'leaky_relu' or 'abs': a gated ReLU "
                "network's gates are fixed, so its program is already exact for its patterns. "
                "Set pattern_search=0, or raise n_patterns to sample more gates."
            )
        patterns = self._patterns(X)
        program = self._program(X, Y, w, patterns)
        start = time.perf_counter()  # max_time counts from the first solve's start
        solution = self._run_solver(program, self._warm_init(program), getattr(self, "max_time", None))
        self.search_history_ = []
        if (rounds and not patterns.complete and not solution.interrupted
                and not solution.time_limit_reached):
            program, solution = self._search_patterns(X, Y, w, program, solution, start)
        return program, solution

    def _run_solver(self, program, init, max_time: float | None) -> Solution:
        """One solve of ``program`` from ``init`` within ``max_time`` seconds (None: no limit)."""
        solver = make_solver(self.solver, program=program, tol=self.tol)
        solver.check(program)
        # Ctrl-C during the solve, or the time limit (max_time, checked by the solver's
        # progress printer at its gap checks), keeps the last gap check's state
        with ProgressScope(max_time=max_time) as scope:
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
        return solution

    def _search_patterns(self, X, Y, w, program, solution, start: float):
        """Rounds of pattern search (:mod:`convexnn.descent`): ``(program, solution)``.

        Each round descends the current network on the non-convex ``J``
        (:func:`~convexnn.descent.descend`) and solves a new program from the descended
        network: its patterns are the descended units' own (which make that network a
        feasible point, so the new certified ``J`` is at most the descended network's),
        then the patterns the current solution uses, largest blocks first, as many as
        keep the program within the first program's number of patterns (unused sampled
        patterns are dropped: the rounds' programs stay as cheap as the first).

        Stops after ``pattern_search`` rounds, when a descent lowers ``J`` by less than
        ``tol / 10`` (relative), when ``max_time`` runs out, or on Ctrl-C (the fit then
        warns as after any interrupted solve). A round whose certified ``J`` ends above
        the previous one's (cut short by the time limit) is discarded.
        """
        from ..descent import DESCENT_MAX_ITER, coef_from_network, descend, network_gates

        def objective(program, solution):
            """``(feasible coef, its network, the network's J)`` of a round's solution."""
            coef = program.make_feasible(solution.coef)
            net = self._network(program, coef, solution.intercept)
            return coef, net, net.objective(X, Y, w, program.loss, self.alpha)

        coef, network, J = objective(program, solution)
        budget = program.gates.shape[1]  # rounds' programs have at most this many patterns
        for round_ in range(1, self.pattern_search + 1):
            t0 = time.perf_counter()
            try:
                moved, J_moved = descend(network, X, Y, w, program.loss, self.alpha,
                                         max_iter=DESCENT_MAX_ITER)
            except KeyboardInterrupt:  # keep the last certified round
                self.search_history_.append({"round": round_, "objective_before": J, "stopped": "interrupted"})
                return program, dataclasses.replace(solution, interrupted=True)
            descent_seconds = time.perf_counter() - t0
            record = {"round": round_, "objective_before": J, "descent_objective": J_moved,
                      "descent_seconds": descent_seconds}
            if not J_moved < J * (1 - 0.1 * self.tol):
                record["stopped"] = "descent lowered J by less than tol / 10"
                self.search_history_.append(record)
                break
            left = None if self.max_time is None else self.max_time - (time.perf_counter() - start)
            if left is not None and left <= 0:
                record["stopped"] = "max_time"
                self.search_history_.append(record)
                break
            # the moved units' own patterns (they make the moved network feasible), then
            # as many of the patterns the solution uses as fit in the first program's
            # size, largest blocks first. One pass over the masks: a duplicate mask keeps
            # its first column, so the kept columns below n_new are the distinct new
            # patterns and the cut at n_new + room keeps exactly used[:room]'s new ones
            new_gates = network_gates(moved)
            n_new = new_gates.shape[1]
            # ReLU units negative on every sample are zero: dropped; leaky ReLU and abs
            # units are linear there, and the empty pattern is theirs
            keep_empty = self.activation != "relu"
            candidates = np.hstack([new_gates, program.gates[:, self._used_patterns(coef)]])
            keep, representative = unique_patterns(X, candidates, keep_empty)
            room = max(budget - int(np.count_nonzero(keep < n_new)), 0)
            keep = keep[keep < n_new + room]
            gates = candidates[:, keep]
            new_program = self._program(X, Y, w, Patterns(gates, complete=False))
            init_coef = coef_from_network(new_program, moved, representative[:n_new])
            t0 = time.perf_counter()
            try:
                new_solution = self._run_solver(new_program, (init_coef, moved.intercepts[1]), left)
            except KeyboardInterrupt:  # before the round's first gap check: keep the last round
                record["stopped"] = "interrupted"
                self.search_history_.append(record)
                return program, dataclasses.replace(solution, interrupted=True)
            new_coef, new_network, J_new = objective(new_program, new_solution)
            record.update(n_patterns=int(gates.shape[1]), objective=J_new,
                          solve_seconds=time.perf_counter() - t0, n_iter=int(new_solution.n_iter))
            self.search_history_.append(record)
            if self.verbose:
                print(f"pattern search round {round_}: descent J {J:.6g} -> {J_moved:.6g} "
                      f"({descent_seconds:.1f} s); {gates.shape[1]} patterns, J {J_new:.6g} "
                      f"({record['solve_seconds']:.1f} s)", file=sys.stderr)
            if J_new > J:  # cut short (time limit, Ctrl-C) above the previous round
                record["stopped"] = "discarded: J above the previous round's"
                break
            program, solution, coef, network, J = new_program, new_solution, new_coef, new_network, J_new
            if solution.interrupted or solution.time_limit_reached:
                break
        return program, solution

    @staticmethod
    def _used_patterns(coef: np.ndarray) -> np.ndarray:
        """Patterns with a non-zero block in a cone program's ``coef`` (shape
        ``(2P, n_features + 1, n_outputs)``), largest block norm first."""
        P = coef.shape[0] // 2
        blocks = coef.reshape(2, P, -1)  # v blocks, w blocks
        size = np.sqrt((blocks**2).sum(axis=2)).max(axis=0)
        order = np.argsort(-size, kind="stable")
        return order[size[order] > 0]

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
