"""Data-parallel training (convexnn.distributed) against single-process fits.

One ``torchrun`` job (``python -m torch.distributed.run``, 2 processes, gloo on
127.0.0.1 and a free port) runs ``tests/_distributed_worker.py``: every scenario is
fitted with :func:`convexnn.distributed.fit`, each rank holding part of the rows (even
and uneven shards, zero and non-uniform sample weights, a rank with one class only).
Here every scenario is fitted again in this process on the pooled rows with the same
gates and FISTA, and

* the certificate's primal agrees within 1e-6 relative (the two runs differ only in
  the order of floating-point sums and stop at a relative gap of 1e-7), its dual too;
* ``coefs_``, ``intercepts_`` and the outputs agree;
* both ranks return the same estimator, bit for bit (coefficients, certificate,
  iteration count and objective curve: the ranks' reductions are identical);
* the distributed certificate brackets the optimum of the pooled program
  (cvxpy/Clarabel; a tight single-process fit where cvxpy is missing);
* the ReLU program and the barrier solver are refused on every rank.

The wrappers are also checked in-process against the plain objects with a one-rank
stand-in for the communicator (no torch needed).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone

from convexnn.certificates import DualPoint, dual_value
from convexnn.losses import LogisticLoss, SoftmaxCrossEntropy, SquaredLoss

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_distributed_worker.py"
LAUNCH_TIMEOUT = 240  # seconds for the whole torchrun job; a hang fails, never blocks
PRIMAL_RTOL = 1e-6


def _load_worker():
    spec = importlib.util.spec_from_file_location("_distributed_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


worker = _load_worker()


def _gloo_available() -> bool:
    try:
        import torch.distributed as dist
    except ImportError:
        return False
    return dist.is_available() and dist.is_gloo_available()


needs_gloo = pytest.mark.skipif(not _gloo_available(), reason="needs torch.distributed with gloo")


def _free_port() -> int:
    # the OS picks a free port; torchrun's rendezvous binds it right after
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Launch the 2-process job once; ``{rank: (arrays, meta)}``."""
    out = tmp_path_factory.mktemp("distributed")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
        "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(WORKER), str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    # its own session, so that a timeout can end torchrun and both workers together
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=LAUNCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log, _ = proc.communicate()
        pytest.fail(f"torchrun job did not finish in {LAUNCH_TIMEOUT} s:\n{log[-4000:]}")
    assert proc.returncode == 0, f"torchrun job failed ({proc.returncode}):\n{log[-4000:]}"
    result = {}
    for rank in (0, 1):
        with np.load(out / f"rank{rank}.npz") as f:
            arrays = dict(f)
        result[rank] = (arrays, json.loads((out / f"rank{rank}.json").read_text()))
    return result


def _single(name: str, gates: np.ndarray, tol: float | None = None):
    """The scenario fitted in this process on the pooled rows, same gates, FISTA."""
    est, X, y, sw = worker.pooled(name)
    # "exhaustive" enumerates the pooled data's patterns: the same gates, global scope
    exhaustive = isinstance(est.sampler, str) and est.sampler == "exhaustive"
    params = {"sampler": "exhaustive" if exhaustive else gates, "solver": "fista"}
    if tol is not None:
        params.update(tol=tol, max_iter=200_000)
    return clone(est).set_params(**params).fit(X, y, sample_weight=sw), X, y, sw


@needs_gloo
@pytest.mark.parametrize("name", worker.SCENARIOS)
def test_matches_single_process(runs, name):
    arrays, meta = runs[0]
    cert = meta[name]["certificate"]
    gates = arrays[f"{name}/gates"]
    ref = _single(name, gates)[0]
    rc = ref.certificate_
    np.testing.assert_array_equal(ref.gates_, gates)
    assert cert["relative_gap"] <= worker.TOL and rc.relative_gap <= worker.TOL
    assert cert["scope"] == rc.scope == ("global" if name == "exhaustive_1d" else "sampled")
    assert cert["n_patterns"] == rc.n_patterns == gates.shape[1]
    # the requirement: the same objective within 1e-6 relative
    assert abs(cert["primal"] - rc.primal) <= PRIMAL_RTOL * abs(rc.primal)
    assert abs(cert["dual"] - rc.dual) <= PRIMAL_RTOL * abs(rc.primal)
    # the same network (weights to the accuracy the gap allows; same neuron count)
    W1, W2 = ref.coefs_
    assert arrays[f"{name}/W1"].shape == W1.shape and arrays[f"{name}/W2"].shape == W2.shape
    scale = max(np.abs(ref.convex_coef_).max(), 1.0)
    np.testing.assert_allclose(arrays[f"{name}/convex_coef"], ref.convex_coef_, atol=1e-3 * scale)
    np.testing.assert_allclose(arrays[f"{name}/W1"], W1, atol=1e-3 * scale)
    np.testing.assert_allclose(arrays[f"{name}/W2"], W2, atol=1e-3 * scale)
    np.testing.assert_allclose(arrays[f"{name}/b2"], ref.intercepts_[1], atol=1e-3 * scale)
    X = worker.problem(name)[1]  # the worker predicted on the rows in their original order
    out = ref.decision_function(X) if hasattr(ref, "classes_") else ref.predict(X)
    np.testing.assert_allclose(arrays[f"{name}/outputs"], out, atol=1e-3 * max(np.abs(out).max(), 1))
    if hasattr(ref, "classes_"):
        assert meta[name]["classes"] == [str(c) for c in ref.classes_]


@needs_gloo
@pytest.mark.parametrize("name", worker.SCENARIOS)
def test_ranks_return_the_same_estimator(runs, name):
    (a0, m0), (a1, m1) = runs[0], runs[1]
    assert m0[name] == m1[name]  # certificate, n_iter, classes
    for key in ("W1", "W2", "b1", "b2", "gates", "convex_coef", "loss_curve", "history", "outputs"):
        np.testing.assert_array_equal(a0[f"{name}/{key}"], a1[f"{name}/{key}"], err_msg=key)


@needs_gloo
@pytest.mark.parametrize("name", worker.SCENARIOS)
def test_certificate_brackets_the_optimum(runs, name):
    """The distributed ``[dual, primal]`` contains the pooled program's optimum ``p*``.

    ``p*`` is bracketed independently by cvxpy/Clarabel: the objective of its solution
    is an upper bound, the feasible dual value of its gradient a lower bound (both
    rigorous, so no slack is needed); without cvxpy, by a tight single-process fit.
    """
    arrays, meta = runs[0]
    cert = meta[name]["certificate"]
    gates = arrays[f"{name}/gates"]
    try:
        import cvxpy  # noqa: F401
    except ImportError:
        tight = _single(name, gates, tol=1e-10)[0].certificate_
        lower, upper = tight.dual, tight.primal
    else:
        from convexnn.path import _build_program
        from convexnn.solvers import CvxpySolver

        est, X, y, sw = worker.pooled(name)
        program = _build_program(clone(est).set_params(sampler=gates), X, y, sw)
        sol = CvxpySolver().solve(program)
        upper = program.objective(sol.coef, sol.intercept)
        lower = dual_value(program, sol.dual_points[0])
    assert lower <= upper
    assert cert["dual"] <= upper  # dual <= p* <= upper
    assert cert["primal"] >= lower  # primal >= p* >= lower
    assert cert["primal"] - cert["dual"] == pytest.approx(cert["gap"])


@needs_gloo
def test_warm_start_continues_from_the_fitted_state(runs):
    warm = runs[0][1]["warm/reg_even"]
    assert warm == runs[1][1]["warm/reg_even"]
    assert warm["n_iter"] <= 10 and warm["relative_gap"] <= worker.TOL
    assert abs(warm["primal"] - warm["first"]) <= worker.TOL * warm["first"]


@needs_gloo
def test_refused_on_every_rank(runs):
    for rank in (0, 1):
        meta = runs[rank][1]
        assert meta["refused/relu"] is not None and "gated_relu" in meta["refused/relu"]
        assert meta["refused/barrier"] is not None and "barrier" in meta["refused/barrier"]


# -- the wrappers in one process ------------------------------------------------------------


class _OneRank:
    """Stand-in communicator of a single rank: reductions are the identity."""

    rank, world_size = 0, 1

    def sum(self, a):
        return np.array(a, dtype=float)

    def max(self, a):
        return np.array(a, dtype=float)


@pytest.mark.parametrize("loss", [SquaredLoss(), LogisticLoss(), SoftmaxCrossEntropy()])
def test_sharded_loss_equals_loss_on_one_rank(loss):
    from convexnn.distributed import ShardedLoss

    rng = np.random.default_rng(0)
    n = 30
    if isinstance(loss, SquaredLoss):
        Y = rng.standard_normal((n, 2))
    elif isinstance(loss, LogisticLoss):
        Y = (rng.uniform(size=(n, 1)) > 0.5).astype(float)
    else:
        Y = np.eye(3)[rng.integers(0, 3, n)]
    w = rng.uniform(size=n)
    w[3] = 0.0
    w /= w.sum()
    Z = rng.standard_normal(Y.shape)
    sharded = ShardedLoss(loss, _OneRank())
    assert sharded.value(Z, Y, w) == loss.value(Z, Y, w)
    Theta = loss.gradient(Z, Y, w)
    np.testing.assert_array_equal(sharded.project_dual(Theta, Y, w), loss.project_dual(Theta, Y, w))
    np.testing.assert_array_equal(sharded.intercept_init(Y, w), loss.intercept_init(Y, w))
    T = loss.project_dual(Theta, Y, w)
    assert sharded.conjugate(T, Y, w) == loss.conjugate(T, Y, w)


def test_sharded_program_equals_program_on_one_rank():
    from convexnn import ConvexMLPRegressor
    from convexnn.distributed import ShardedLoss, ShardedOperator, ShardedProgram
    from convexnn.path import _build_program

    X, y = worker._regression(50, 3, 1, 7)
    base = _build_program(ConvexMLPRegressor(activation="gated_relu", n_patterns=10, random_state=0), X, y)
    comm = _OneRank()
    sharded = ShardedProgram(
        ShardedLoss(base.loss, comm), base.penalty, ShardedOperator(base.operator, comm),
        base.Y, base.sample_weight, base.alpha, base.complete, comm=comm,
    )
    assert not sharded.has_cone and sharded.coef_shape == base.coef_shape
    assert sharded.alpha_max() == base.alpha_max()
    V = np.random.default_rng(1).standard_normal(base.coef_shape)
    b = base.constant_intercept()
    assert sharded.objective(V, b) == base.objective(V, b)
    Theta = base.data_fit(base.predict(V, b))[1]
    for got, want in zip(sharded.adjoint(Theta), base.adjoint(Theta)):
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)
    assert dual_value(sharded, DualPoint(Theta)) == dual_value(base, DualPoint(Theta))
    assert sharded.operator.norm_squared(base.sample_weight) == pytest.approx(
        base.operator.norm_squared(base.sample_weight), rel=1e-12
    )


def test_fit_refuses_other_estimators_before_any_communication():
    from convexnn import ConvexThresholdRegressor
    from convexnn.distributed import _check_estimator

    with pytest.raises(TypeError, match="ConvexMLPRegressor"):
        _check_estimator(ConvexThresholdRegressor())
