"""Data-parallel training on ``torch.distributed``: every rank holds a shard of the rows.

The gated-ReLU program of DESIGN.md §1 is a sum over samples,

.. math::

    \\min_{V, b}\\; \\sum_{r=1}^{R} \\sum_{i \\in \\mathcal I_r} w_i\\,
    \\ell\\Big(\\sum_k (D_k X_a V_k)_i + b,\\; y_i\\Big) + \\alpha \\sum_k \\lVert V_k\\rVert,
    \\qquad \\sum_{r}\\sum_{i\\in\\mathcal I_r} w_i = 1,

where rank ``r`` holds the rows :math:`\\mathcal I_r`. The coefficients ``(V, b)`` are
small (``n_patterns x (n_features + 1) x n_outputs``) and *replicated*: every rank keeps
the same copy. Everything per row (the forward image :math:`\\mathcal A V + b`, the
gradient :math:`\\Theta = \\nabla L`, a dual point) stays on its rank. The only
quantities that involve rows of several ranks are sums over samples, and each is
all-reduced:

* the adjoint :math:`\\mathcal A^*(\\Theta)_k = \\sum_r X_{a,r}^\\top D_{k,r} \\Theta_r`
  (:class:`ShardedOperator`), hence the power iteration for the step size;
* the intercept's gradient :math:`\\mathbf 1^\\top\\Theta = \\sum_r \\mathbf 1^\\top\\Theta_r`
  (:meth:`ShardedProgram.adjoint`, fused with the adjoint in FISTA's gradient);
* the loss value :math:`L = \\sum_r L_r`, the conjugate
  :math:`L^* = \\sum_r L_r^*`, and the column sums (and, for the logistic and softmax
  losses, the maximum of the mixing weights) inside the dual projection and the
  constant model's intercept (:class:`ShardedLoss`).

With these three wrappers, :class:`~convexnn.solvers.FISTA`,
:func:`~convexnn.certificates.certify`, :func:`~convexnn.certificates.dual_value` and
:meth:`~convexnn.programs.ConvexProgram.alpha_max` run unchanged on every rank. Every
rank takes the same branches (line search, restarts, stopping) because every number
they depend on is either computed from replicated arrays or the result of an
all-reduce, whose result every rank receives identically (gloo's ring all-reduce
finishes by handing one reduced copy of each chunk to every rank; the test suite
checks that the ranks' objective curves agree bit for bit). :func:`fit` is the entry
point.

Reductions use ``torch.distributed.all_reduce`` on float64 tensors (gloo on CPU;
with the NCCL backend the buffers are copied to the rank's current CUDA device). No
networking of convexnn's own: the process group is torch's, usually created by
``torchrun`` (:func:`init_process_group`).

Not supported: the cone-constrained programs (ReLU, leaky ReLU, absolute value),
whose proximal step projects each block onto :math:`\\{u : E_k X_a u \\ge 0\\}`, a
quadratic program whose constraints are all the rows of all ranks (it does not split
into per-shard sums); and the sample-space interior-point solver (``"barrier"``), whose
Newton systems are dense ``n_samples x n_samples`` matrices coupling all rows.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import _check_sample_weight, validate_data

from .certificates import certify
from .estimators.mlp import ConvexMLPClassifier, ConvexMLPRegressor
from .estimators._base import BaseConvexMLP
from .losses import Loss, SquaredLoss, _ExponentialFamilyLoss
from .operators import GatedOperator
from .patterns import ExhaustiveSampler, Patterns
from .programs import ConvexProgram
from .solvers import FISTA
from .solvers.base import ProgressScope

__all__ = [
    "Communicator",
    "ShardedLoss",
    "ShardedOperator",
    "ShardedProgram",
    "fit",
    "init_process_group",
]

#: environment variables ``torchrun`` sets for every worker (``env://`` initialisation)
_TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _torch_distributed():
    try:
        import torch
        import torch.distributed as dist
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ImportError(
            "convexnn.distributed needs PyTorch: pip install 'convexnn[torch]'"
        ) from exc
    if not dist.is_available():  # pragma: no cover - torch built without distributed
        raise ImportError("this PyTorch build has no torch.distributed support.")
    return torch, dist


def init_process_group(backend: str = "gloo", timeout: float = 1800.0) -> None:
    """Initialise torch's default process group from ``torchrun``'s environment.

    Does nothing if the default group already exists. Otherwise reads ``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` (``init_method="env://"``),
    which ``torchrun`` (``python -m torch.distributed.run``) sets for every worker.

    Parameters
    ----------
    backend : {"gloo", "nccl"}, default="gloo"
        ``"gloo"`` for CPU processes. With ``"nccl"`` the current CUDA device is set
        to ``LOCAL_RANK`` (NCCL is not tested by convexnn's suite: its machines have no
        GPU).
    timeout : float, default=1800
        Seconds a collective may wait for the other ranks before it fails.

    Raises
    ------
    RuntimeError
        When the group does not exist and the environment is not a torchrun worker's.
    """
    torch, dist = _torch_distributed()
    if dist.is_initialized():
        return
    missing = [k for k in _TORCHRUN_ENV if k not in os.environ]
    if missing:
        raise RuntimeError(
            "torch.distributed is not initialised and the environment lacks "
            f"{', '.join(missing)}: launch the script with torchrun (python -m "
            "torch.distributed.run --nproc_per_node=N script.py) or call "
            "torch.distributed.init_process_group first."
        )
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, init_method="env://", timeout=timedelta(seconds=timeout))


class Communicator:
    """Sums, maxima, broadcasts and gathers over the ranks of a torch process group.

    Arrays travel as float64 tensors through ``torch.distributed.all_reduce`` (on the
    CPU for gloo, on the current CUDA device for NCCL). Every rank receives the same
    result, bit for bit, which keeps the replicated solver state identical.

    Parameters
    ----------
    group : ProcessGroup, optional
        Defaults to the default group, which must be initialised
        (:func:`init_process_group`).
    """

    def __init__(self, group=None):
        torch, dist = _torch_distributed()
        if not dist.is_initialized():
            raise RuntimeError(
                "torch.distributed is not initialised: call "
                "convexnn.distributed.init_process_group() (under torchrun) first."
            )
        self._torch, self._dist, self.group = torch, dist, group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        self.backend = str(dist.get_backend(group))
        self.device = (
            torch.device("cuda", torch.cuda.current_device())
            if self.backend == "nccl"
            else torch.device("cpu")
        )

    def _global_rank(self, rank: int) -> int:
        return rank if self.group is None else self._dist.get_global_rank(self.group, rank)

    def _all_reduce(self, a, op) -> np.ndarray:
        arr = np.array(a, dtype=np.float64)  # a copy: the input is never modified
        shape = arr.shape
        t = self._torch.from_numpy(arr.reshape(-1))
        if self.device.type != "cpu":
            t = t.to(self.device)
        self._dist.all_reduce(t, op=op, group=self.group)
        return t.cpu().numpy().reshape(shape)

    def sum(self, a) -> np.ndarray:
        """:math:`\\sum_r a_r` over the ranks (same shape as ``a``; float64)."""
        return self._all_reduce(a, self._dist.ReduceOp.SUM)

    def max(self, a) -> np.ndarray:
        """Entrywise :math:`\\max_r a_r` over the ranks."""
        return self._all_reduce(a, self._dist.ReduceOp.MAX)

    def broadcast_object(self, obj, src: int = 0):
        """``obj`` of rank ``src`` (group rank), on every rank (pickled by torch)."""
        box = [obj]
        self._dist.broadcast_object_list(box, src=self._global_rank(src), group=self.group)
        return box[0]

    def all_gather_object(self, obj) -> list:
        """``[obj of rank 0, obj of rank 1, ...]`` on every rank (pickled by torch)."""
        out = [None] * self.world_size
        self._dist.all_gather_object(out, obj, group=self.group)
        return out


class ShardedOperator:
    """The gated operator over rows split across ranks.

    Rank ``r`` holds :math:`X_{a,r}` and the masks :math:`D_{k,r}` of its rows; the
    blocks ``V`` are replicated.

    .. math::

        \\mathcal A(V)_r = \\sum_k D_{k,r} X_{a,r} V_k \\quad\\text{(local rows)},
        \\qquad
        \\mathcal A^*(\\Theta)_k = \\sum_r X_{a,r}^\\top D_{k,r} \\Theta_r
        \\quad\\text{(all-reduced)}.

    Parameters
    ----------
    local : GatedOperator
        The operator of this rank's rows.
    comm : Communicator
        Anything with ``sum(array) -> array`` over the ranks.
    """

    def __init__(self, local: GatedOperator, comm):
        self.local = local
        self.comm = comm

    @property
    def n_samples(self) -> int:
        """Rows on this rank (the length of :meth:`matvec`'s output)."""
        return self.local.n_samples

    @property
    def n_inputs(self) -> int:
        """``n_features + 1``."""
        return self.local.n_inputs

    @property
    def n_patterns(self) -> int:
        """Number of masks ``P`` (the same on every rank)."""
        return self.local.n_patterns

    @property
    def n_blocks(self) -> int:
        """``P``: one block per pattern."""
        return self.local.n_patterns

    @property
    def gates(self) -> np.ndarray:
        """Gates, shape ``(n_features + 1, n_patterns)`` (replicated)."""
        return self.local.gates

    @property
    def masks(self) -> np.ndarray:
        """Boolean masks of this rank's rows, shape ``(n_samples, n_patterns)``."""
        return self.local.masks

    @property
    def eps(self) -> float:
        """Rounding unit of the local products."""
        return self.local.eps

    def exact_products(self):
        """Float64 products inside the block (the local operator's; a no-op for numpy)."""
        return self.local.exact_products()

    def promote(self) -> bool:
        """Float64 iteration products from now on (the local operator's)."""
        return self.local.promote()

    def matvec(self, V: np.ndarray) -> np.ndarray:
        """:math:`\\sum_k D_k X_a V_k` on this rank's rows, shape ``(n_samples, n_outputs)``."""
        return self.local.matvec(V)

    def rmatvec(self, Theta: np.ndarray) -> np.ndarray:
        """:math:`(\\sum_r X_{a,r}^\\top D_{k,r} \\Theta_r)_k`, all-reduced, shape
        ``(n_patterns, n_inputs, n_outputs)``; ``Theta`` holds this rank's rows."""
        return self.comm.sum(self.local.rmatvec(Theta))

    def block_images(self, G: np.ndarray) -> np.ndarray:
        """:math:`D_k X_a g_k` on this rank's rows, shape ``(n_samples, n_patterns)``."""
        return self.local.block_images(G)

    def norm_squared(self, w: np.ndarray, n_iter: int = 30, random_state=0) -> float:
        """Power-iteration estimate of :math:`\\lambda_{max}(\\mathcal A^* W \\mathcal A)`
        over all rows, inflated by 2 % (power iteration approaches it from below).

        The iterate ``V`` starts from the same seed on every rank and each step
        :math:`V \\leftarrow \\mathcal A^*(W \\mathcal A V)` is all-reduced, so it stays
        replicated.
        """
        rng = np.random.default_rng(random_state)
        V = rng.standard_normal((self.n_patterns, self.n_inputs, 1))
        lam = 0.0
        for _ in range(n_iter):
            V /= np.linalg.norm(V)
            V = self.rmatvec(w[:, None] * self.matvec(V))
            lam = float(np.linalg.norm(V))
        return 1.02 * lam


class ShardedLoss(Loss):
    """A loss whose samples are split across ranks; ``w`` sums to one over *all* ranks.

    With :math:`L(Z) = \\sum_r L_r(Z_r)` and :math:`L^*(\\Theta) = \\sum_r
    L_r^*(\\Theta_r)` (both separable over samples), :meth:`value` and
    :meth:`conjugate` all-reduce the per-rank sums; :meth:`gradient` and :meth:`link`
    are per row and stay local. The dual projection onto
    :math:`\\{\\mathbf 1^\\top\\Theta = 0\\}\\cap\\operatorname{dom}L^*` needs the global
    column sums :math:`\\sum_r \\mathbf 1^\\top\\Theta_r` (squared loss) or
    :math:`\\sum_r w_r^\\top Q_r` and the global largest mixing weight (logistic and
    softmax losses), and the constant model's intercept the global weighted mean
    :math:`\\bar y = \\sum_r w_r^\\top Y_r`; these are all-reduced.

    Parameters
    ----------
    inner : SquaredLoss, LogisticLoss or SoftmaxCrossEntropy
        The per-sample loss.
    comm : Communicator
        Anything with ``sum`` and ``max`` over the ranks.

    Raises
    ------
    ValueError
        For another loss: its dual projection is not known to decompose over rows.
    """

    def __init__(self, inner: Loss, comm):
        if not isinstance(inner, (SquaredLoss, _ExponentialFamilyLoss)):
            raise ValueError(
                "distributed training supports the squared, logistic and softmax losses; "
                f"got {type(inner).__name__}."
            )
        self.inner = inner
        self.comm = comm
        self.smoothness = inner.smoothness

    def _sum(self, x: float) -> float:
        return float(self.comm.sum(x))

    def value(self, Z, Y, w):
        """:math:`\\sum_r \\sum_{i \\in \\mathcal I_r} w_i \\ell(z_i, y_i)` (all-reduced)."""
        return self._sum(self.inner.value(Z, Y, w))

    def gradient(self, Z, Y, w):
        """Gradient on this rank's rows (rows are independent: nothing is reduced)."""
        return self.inner.gradient(Z, Y, w)

    def value_and_gradient(self, Z, Y, w):
        """The all-reduced value and this rank's rows of the gradient."""
        val, grad = self.inner.value_and_gradient(Z, Y, w)
        return self._sum(val), grad

    def conjugate(self, Theta, Y, w):
        """:math:`\\sum_r L_r^*(\\Theta_r)` (all-reduced; ``inf`` if any rank's rows leave
        the domain)."""
        return self._sum(self.inner.conjugate(Theta, Y, w))

    def project_dual(self, Theta, Y, w):
        """:meth:`Loss.project_dual` with the sums over samples taken over all ranks.

        Squared loss: :math:`\\Theta - w\\,(\\mathbf 1^\\top\\Theta)` with the global
        column sums. Logistic and softmax: with :math:`q_i = \\Theta_i / w_i + y_i` and
        the global class frequencies :math:`\\pi = \\sum_r w_r^\\top Y_r`, shift every
        row by :math:`\\sum_r w_r^\\top Q_r - \\pi`, then mix with :math:`\\pi` by the
        largest weight ``t`` any row of any rank needs to re-enter the simplex.
        """
        return self.inner.project_dual(Theta, Y, w, self.comm.sum, self.comm.max)

    def link(self, Z):
        """Inverse link, per row."""
        return self.inner.link(Z)

    def intercept_init(self, Y, w):
        """The constant model's optimal intercept from the global weighted mean
        :math:`\\bar y = \\sum_r w_r^\\top Y_r` (for these three losses it depends on
        ``(Y, w)`` through :math:`\\bar y` only)."""
        ybar = self.comm.sum(w @ Y)
        return self.inner.intercept_init(ybar[None, :], np.ones(1))


@dataclass
class ShardedProgram(ConvexProgram):
    """A :class:`~convexnn.programs.ConvexProgram` whose rows are split across ranks.

    ``operator`` is a :class:`ShardedOperator`, ``loss`` a :class:`ShardedLoss`, and
    ``Y``, ``sample_weight`` hold this rank's rows (weights sum to one over all
    ranks). Besides what the wrappers reduce, the intercept's gradient
    :math:`\\mathbf 1^\\top\\Theta` is all-reduced, together with the adjoint (:meth:`adjoint`).

    Attributes
    ----------
    comm : Communicator
        Anything with ``sum`` over the ranks.
    """

    comm: object = None

    def adjoint(self, Theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:math:`\\big(\\sum_r \\mathcal A_r^*(\\Theta_r),\\; \\sum_r \\Theta_r^\\top
        \\mathbf 1\\big)`: both sums in one all-reduce (one per FISTA gradient)."""
        G = self.operator.local.rmatvec(Theta)
        both = self.comm.sum(np.concatenate([G.ravel(), Theta.sum(axis=0)]))
        return both[: G.size].reshape(G.shape), both[G.size :]


# -- the entry point ----------------------------------------------------------------------


def _agree(comm, step):
    """Run ``step()`` on every rank; if it raised on any rank, raise on all of them.

    A rank that fails alone would leave the others waiting in the next collective;
    instead every rank learns of the failure here. The failing rank re-raises its own
    exception; the others raise the same type (ValueError or TypeError, else
    RuntimeError) naming the rank and its message.
    """
    try:
        result, error = step(), None
    except Exception as exc:  # noqa: BLE001 - re-raised below, on every rank
        result, error = None, exc
    report = None if error is None else (type(error).__name__, str(error))
    reports = comm.all_gather_object(report)
    failed = [(r, rep) for r, rep in enumerate(reports) if rep is not None]
    if not failed:
        return result
    if error is not None:
        raise error
    rank, (kind, message) = failed[0]
    cls = {"ValueError": ValueError, "TypeError": TypeError}.get(kind, RuntimeError)
    raise cls(f"convexnn.distributed.fit failed on rank {rank}: {message}")


def _check_estimator(estimator) -> FISTA:
    """The solver to use (FISTA), or an error for what cannot be sharded."""
    plain = isinstance(estimator, (ConvexMLPRegressor, ConvexMLPClassifier)) and (
        type(estimator)._solve is BaseConvexMLP._solve
        and type(estimator).fit in (ConvexMLPRegressor.fit, ConvexMLPClassifier.fit)
    )
    if not plain:
        raise TypeError(
            "convexnn.distributed.fit trains ConvexMLPRegressor and ConvexMLPClassifier; "
            f"got {type(estimator).__name__}."
        )
    estimator._validate_params()
    if getattr(estimator, "max_time", None) is not None:
        raise ValueError(
            f"convexnn.distributed.fit does not support max_time (got {estimator.max_time!r}): "
            "every rank would have to stop at the same gap check; set max_time=None and "
            "bound the solve with max_iter."
        )
    if estimator.activation != "gated_relu":
        raise ValueError(
            f"convexnn.distributed.fit supports activation='gated_relu' only, got "
            f"{estimator.activation!r}: the ReLU (cone-constrained) program's proximal "
            "step projects every block onto {u : E_k Xa u >= 0}, a quadratic program "
            "whose constraints are all the rows of all ranks; it does not split into "
            "per-shard sums."
        )
    solver = estimator.solver
    if isinstance(solver, FISTA):
        return solver
    if isinstance(solver, str) and solver in ("auto", "fista"):
        return FISTA()
    name = solver if isinstance(solver, str) else type(solver).__name__
    raise ValueError(
        f"convexnn.distributed.fit solves with FISTA (solver='auto' or 'fista'); got "
        f"solver={name!r}. The interior-point solvers ('barrier', 'cvxpy') work on "
        "dense systems that couple all samples and cannot be sharded."
    )


def _validate_local(estimator, X, y, sample_weight):
    classifier = isinstance(estimator, ConvexMLPClassifier)
    X, y = validate_data(
        estimator, X, y, dtype=np.float64, multi_output=not classifier, y_numeric=not classifier
    )
    sample_weight = _check_sample_weight(
        sample_weight, X, dtype=np.float64, ensure_non_negative=True
    )
    if classifier:
        from sklearn.utils.multiclass import check_classification_targets

        check_classification_targets(y)
        outputs = np.unique(y)
    else:
        outputs = 1 if y.ndim == 1 else y.shape[1]
    names = getattr(estimator, "feature_names_in_", None)
    meta = (X.shape[1], None if names is None else list(names), outputs)
    return X, y, sample_weight, meta


def _encode(estimator, y, sample_weight, metas):
    """Targets of this rank's rows and their weights before normalisation; for
    ``class_weight="balanced"`` the class codes instead of the weights (the counts
    need a reduction, done by the caller). No collectives: runs inside :func:`_agree`."""
    n_features = {m[0] for m in metas}
    if len(n_features) > 1:
        raise ValueError(f"the ranks' X have different numbers of features: {sorted(n_features)}.")
    if len({repr(m[1]) for m in metas}) > 1:
        raise ValueError("the ranks' X have different feature names.")
    if not isinstance(estimator, ConvexMLPClassifier):
        if len({m[2] for m in metas}) > 1:
            raise ValueError("the ranks' y have different numbers of outputs.")
        return estimator._encode_targets(y), estimator._weight_samples(y, sample_weight), None
    # classes: the union over ranks, sorted. The estimator's own encoding runs on the
    # labels prefixed by every class once, so classes_ and the codes are the global ones.
    classes = np.unique(np.concatenate([np.asarray(m[2]) for m in metas]))
    K = len(classes)
    Y = estimator._encode_targets(np.concatenate([classes, y]))[K:]
    if getattr(estimator, "class_weight", None) == "balanced":
        return Y, None, np.searchsorted(estimator.classes_, y)
    # a dict (or None): per-class weights do not depend on counts; the prefix makes a
    # dict that misses a class of another rank fail as it would on the pooled labels
    weights = estimator._weight_samples(
        np.concatenate([classes, y]), np.concatenate([np.ones(K), sample_weight])
    )
    return Y, weights[K:], None


def _sample_patterns(estimator, comm, X, src: int) -> Patterns:
    """Gates drawn on rank ``src``'s rows from ``random_state``, broadcast to all ranks.

    ``sampler="exhaustive"`` enumerates the patterns of the union of all ranks'
    (one-dimensional) data, so its completeness holds globally; any other sampler's
    claim of completeness concerns one shard only and is dropped (a warm start keeps
    the previous fit's gates and scope).
    """
    sampler = estimator.sampler
    reuse = (
        estimator.warm_start
        and hasattr(estimator, "gates_")
        and estimator.gates_.shape[0] == X.shape[1] + 1
    )
    exhaustive = not reuse and (
        (isinstance(sampler, str) and sampler == "exhaustive")
        or isinstance(sampler, ExhaustiveSampler)
    )
    data = X
    if exhaustive and X.shape[1] == 1:
        data = np.unique(np.concatenate(comm.all_gather_object(np.unique(X[:, 0]))))[:, None]

    def draw():
        if comm.rank != src:
            return None
        p = estimator._patterns(data)
        return (np.asarray(p.gates, dtype=float), bool(p.complete and (reuse or exhaustive)))

    mine = _agree(comm, draw)
    gates, complete = comm.broadcast_object(mine, src=src)
    return Patterns(gates, complete=complete)


def fit(estimator, X_local, y_local, sample_weight=None, *, group=None):
    """Fit a gated-ReLU ``ConvexMLPRegressor`` or ``ConvexMLPClassifier`` on rows
    sharded across the ranks of a ``torch.distributed`` process group.

    Every rank calls ``fit`` with the same estimator parameters and its own rows; all
    ranks return the same fitted estimator. It solves the program of
    :meth:`ConvexMLPRegressor.fit` on the union of the shards,

    .. math::

        \\min_{V, b}\\; \\sum_{r}\\sum_{i \\in \\mathcal I_r} w_i\\,
        \\ell\\Big(\\sum_k (D_k X_a V_k)_i + b,\\, y_i\\Big)
        + \\alpha \\sum_k \\lVert V_k \\rVert,
        \\qquad w_i = \\frac{s_i c_{y_i}}{\\sum_{r}\\sum_{j\\in\\mathcal I_r} s_j c_{y_j}},

    (``s``: sample weights, ``c``: class weights), with FISTA on replicated
    coefficients and all-reduced sums over samples (see :mod:`convexnn.distributed`),
    and certifies it with the duality gap computed over all rows.

    Parameters
    ----------
    estimator : ConvexMLPRegressor or ConvexMLPClassifier
        With ``activation="gated_relu"`` and ``solver="auto"`` or ``"fista"`` (or a
        :class:`~convexnn.solvers.FISTA` instance). Fitted in place.
    X_local : array-like of shape (n_local_samples, n_features)
        This rank's rows (at least one; the same features on every rank).
    y_local : array-like of shape (n_local_samples,) or (n_local_samples, n_outputs)
        This rank's targets.
    sample_weight : array-like of shape (n_local_samples,), optional
        Non-negative weights of this rank's rows; normalised to sum to one over all
        ranks (times ``class_weight`` for classifiers).
    group : ProcessGroup, optional
        The torch process group; by default the default group, initialised from
        torchrun's environment variables if it does not exist yet
        (:func:`init_process_group` with gloo).

    Returns
    -------
    estimator
        The fitted estimator, identical on every rank: ``coefs_``, ``intercepts_``,
        ``gates_``, ``convex_coef_``, ``certificate_`` (primal, dual and gap summed
        over all rows), ``n_iter_``, ``loss_curve_`` and ``history_`` (rank 0's clock).

    Raises
    ------
    ValueError
        On every rank, when any rank's input is invalid, for the ReLU, leaky ReLU and
        absolute-value programs (their cone projection couples all rows), and for the
        interior-point solvers: ``solver="barrier"`` works on the dense
        ``n_samples x n_samples`` dual Newton system and ``"cvxpy"`` on the whole
        program, neither of which can be sharded.
    TypeError
        For other estimators.

    Notes
    -----
    *Gates.* The sampler runs with the estimator's ``random_state`` on the rows of
    rank 0 (the lowest rank that holds a sample with positive weight), exactly as
    ``estimator.fit`` would run it on those rows alone, and the gates are broadcast;
    so they are reproducible for a given sharding. Explicit gates
    (``sampler=array``) are used as given. ``sampler="exhaustive"`` (one feature)
    enumerates the patterns of all ranks' data, and the certificate is then global.

    *Classes* are the sorted union of all ranks' labels (a rank may hold one class);
    ``class_weight="balanced"`` counts classes over all ranks.

    *Determinism.* Every rank runs the same iterations: the decisions of FISTA (line
    search, restarts, stopping) depend only on replicated values and on all-reduced
    sums, which every rank receives bit for bit (checked for gloo by the test suite;
    NCCL is untested here). As a safeguard the final coefficients are broadcast from
    rank 0 before the network and certificate are formed. The result equals a
    single-process fit on the pooled rows with the same gates up to rounding (sums
    are added in another order) and the solver tolerance.

    *Failures.* Input errors are detected collectively and raised on every rank. An
    exception inside the solve (e.g. out of memory) stops only its rank; the others
    wait in their next collective until torchrun ends the job or the group's
    ``timeout`` passes. Ctrl-C is not caught (torchrun stops every worker).

    Examples
    --------
    Launched with ``torchrun --nproc_per_node=2 train.py``, where ``train.py`` does::

        import convexnn.distributed as cd
        import torch.distributed as dist
        cd.init_process_group("gloo")
        rank, size = dist.get_rank(), dist.get_world_size()
        X_local, y_local = X[rank::size], y[rank::size]
        est = ConvexMLPRegressor(activation="gated_relu", random_state=0)
        cd.fit(est, X_local, y_local)
        print(est.certificate_)
    """
    if group is None:
        init_process_group("gloo")
    comm = Communicator(group)
    solver = _agree(comm, lambda: _check_estimator(estimator))

    X, y, sw, meta = _agree(comm, lambda: _validate_local(estimator, X_local, y_local, sample_weight))
    metas = comm.all_gather_object(meta)
    if not float(comm.sum(sw.sum())) > 0:
        raise ValueError("sample_weight sums to zero over all ranks; at least one sample needs a positive weight.")
    Y, w, codes = _agree(comm, lambda: _encode(estimator, y, sw, metas))
    if codes is not None:  # class_weight="balanced": n_samples / (n_classes * count)
        K = len(estimator.classes_)
        counts = comm.sum(np.bincount(codes, minlength=K))  # over all ranks
        w = sw * (counts.sum() / (K * counts))[codes]
    total = float(comm.sum(w.sum()))
    if not total > 0:
        raise ValueError(
            "class_weight times sample_weight sums to zero over all ranks; at least one "
            "sample needs a positive weight."
        )
    # zero-weight samples do not enter the objective: drop them (same optimum)
    keep = w > 0
    X, Y, w = X[keep], Y[keep], w[keep] / total
    holding = [r for r, n in enumerate(comm.all_gather_object(int(keep.sum()))) if n > 0]

    patterns = _sample_patterns(estimator, comm, X, src=holding[0])
    base = estimator._program(X, Y, w, patterns)
    program = ShardedProgram(
        ShardedLoss(base.loss, comm), base.penalty, ShardedOperator(base.operator, comm),
        base.Y, base.sample_weight, base.alpha, base.complete, comm=comm,
    )
    init = estimator._warm_init(program)
    with ProgressScope():
        solution = solver.solve(
            program, tol=estimator.tol, max_iter=estimator.max_iter, init=init,
            verbose=estimator.verbose if comm.rank == 0 else 0,
        )
    # rank 0's solution is the fitted one (identical on every rank when the
    # reductions are, as with gloo and NCCL; the broadcast makes it so regardless)
    coef, intercept, times = comm.broadcast_object(
        (solution.coef, solution.intercept, list(solution.history.time))
    )
    solution.coef, solution.intercept = coef, intercept
    solution.history.time[:] = times

    network = estimator._network(program, coef, intercept)
    primal = network.objective(X, Y, w, program.loss, estimator.alpha)  # all-reduced
    cert = certify(
        program, coef, intercept, solution.dual_points,
        activation=estimator.activation, tol=estimator.tol, primal=primal, refine=True,
    )
    estimator._set_fitted(program, coef, solution, network, cert)
    if not cert.converged:
        warnings.warn(
            f"{type(estimator).__name__} (distributed over {comm.world_size} ranks): the "
            f"relative duality gap reached {cert.relative_gap:.2e}, above tol="
            f"{estimator.tol:.1e}, after {solution.n_iter} iterations (max_iter="
            f"{estimator.max_iter}). The network is usable and its certificate honest, but "
            "not certified to tol: increase max_iter or tol, or standardize the features.",
            ConvergenceWarning,
            stacklevel=2,
        )
    return estimator
