"""Worker of tests/test_distributed.py, launched by torchrun (one process per rank).

``python -m torch.distributed.run --nproc_per_node=2 --master_addr=127.0.0.1
--master_port=PORT tests/_distributed_worker.py OUT_DIR`` fits every scenario of
:data:`SCENARIOS` on this rank's shard of the rows with :func:`convexnn.distributed.fit`
and writes what the test compares to ``OUT_DIR/rank{r}.npz``. The data and the
estimators come from functions the test imports too, so both sides see the same problem.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
from sklearn.base import clone

from convexnn import ConvexMLPClassifier, ConvexMLPRegressor

TOL = 1e-7
MAX_ITER = 50_000


def _regression(n, d, n_outputs, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((d, n_outputs))
    Y = np.maximum(X @ W, 0) + 0.3 * np.sin(3 * X[:, :1]) + 0.1 * rng.standard_normal((n, n_outputs))
    return X, (Y[:, 0] if n_outputs == 1 else Y)


def problem(name: str):
    """``(estimator, X, y, sample_weight, shards)`` of a scenario; ``shards[r]`` are the
    row indices of rank ``r`` (pooled in rank order they are ``range(n)``)."""
    if name == "reg_even":
        X, y = _regression(120, 3, 1, 0)
        est = ConvexMLPRegressor(activation="gated_relu", alpha=3e-2, n_patterns=20,
                                 tol=TOL, max_iter=MAX_ITER, random_state=0)
        return est, X, y, None, [np.arange(60), np.arange(60, 120)]
    if name == "reg_uneven_weighted_2out":
        X, y = _regression(101, 3, 2, 1)
        sw = np.random.default_rng(2).uniform(0.2, 2.0, size=101)
        sw[[3, 50, 90]] = 0.0  # zero weights are dropped, as in a plain fit
        est = ConvexMLPRegressor(activation="gated_relu", alpha=2e-2, n_patterns=15,
                                 tol=TOL, max_iter=MAX_ITER, random_state=1)
        return est, X, y, sw, [np.arange(70), np.arange(70, 101)]
    if name == "binary_uneven_balanced":
        # rank 1 holds one class only: classes_ must be the union over ranks
        rng = np.random.default_rng(3)
        X = rng.standard_normal((110, 2))
        s = X[:, 0] * X[:, 1] + 0.3 * X[:, 0] + 0.2 * rng.standard_normal(110)
        y = np.where(s > 0.2, "yes", "no")
        order = np.argsort(y == "yes", kind="stable")  # "no" rows first, then "yes"
        X, y = X[order], y[order]
        est = ConvexMLPClassifier(activation="gated_relu", alpha=1e-2, n_patterns=20,
                                  tol=TOL, max_iter=MAX_ITER, random_state=2,
                                  class_weight="balanced")
        return est, X, y, None, [np.arange(85), np.arange(85, 110)]
    if name == "multiclass_uneven":
        rng = np.random.default_rng(4)
        X = rng.standard_normal((90, 2))
        y = np.digitize(X[:, 0] + 0.5 * X[:, 1] ** 2, [-0.3, 0.6])
        est = ConvexMLPClassifier(activation="gated_relu", alpha=2e-2, n_patterns=12,
                                  tol=TOL, max_iter=MAX_ITER, random_state=3)
        return est, X, y, None, [np.arange(40), np.arange(40, 90)]
    if name == "exhaustive_1d":
        rng = np.random.default_rng(5)
        X = np.sort(rng.uniform(-2, 2, size=(30, 1)), axis=0)
        y = np.abs(X[:, 0]) + 0.1 * rng.standard_normal(30)
        est = ConvexMLPRegressor(activation="gated_relu", alpha=3e-2, sampler="exhaustive",
                                 tol=TOL, max_iter=MAX_ITER)
        # interleaved shards: neither rank alone has every pattern's breakpoints
        return est, X, y, None, [np.arange(0, 30, 2), np.arange(1, 30, 2)]
    raise KeyError(name)


SCENARIOS = ["reg_even", "reg_uneven_weighted_2out", "binary_uneven_balanced",
             "multiclass_uneven", "exhaustive_1d"]
#: (name, estimator parameters) that must be refused on every rank with a ValueError
REFUSED = {"relu": {"activation": "relu"}, "barrier": {"solver": "barrier"}}


def pooled(name: str):
    """The scenario's rows in rank order (what a single process fits)."""
    est, X, y, sw, shards = problem(name)
    idx = np.concatenate(shards)
    return est, X[idx], y[idx], None if sw is None else sw[idx]


def main(out_dir: str) -> None:
    import torch.distributed as dist

    import convexnn.distributed as cd

    cd.init_process_group("gloo", timeout=120)
    rank, size = dist.get_rank(), dist.get_world_size()
    assert size == 2, size
    arrays: dict[str, np.ndarray] = {}
    meta: dict = {}
    for name in SCENARIOS:
        est, X, y, sw, shards = problem(name)
        rows = shards[rank]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a ConvergenceWarning fails the test
            cd.fit(est, X[rows], y[rows], None if sw is None else sw[rows])
        arrays[f"{name}/W1"], arrays[f"{name}/W2"] = est.coefs_
        arrays[f"{name}/b1"], arrays[f"{name}/b2"] = est.intercepts_
        arrays[f"{name}/gates"] = est.gates_
        arrays[f"{name}/convex_coef"] = est.convex_coef_
        arrays[f"{name}/loss_curve"] = np.asarray(est.loss_curve_)
        arrays[f"{name}/history"] = np.asarray([est.history_[k] for k in ("iteration", "time", "primal", "dual")])
        # every rank predicts on all rows: the fitted networks must agree
        out = est.decision_function(X) if hasattr(est, "classes_") else est.predict(X)
        arrays[f"{name}/outputs"] = np.asarray(out)
        meta[name] = {
            "certificate": est.certificate_.to_dict(),
            "n_iter": est.n_iter_,
            "classes": None if not hasattr(est, "classes_") else [str(c) for c in est.classes_],
        }
        if name == "reg_even":  # a warm start from the fitted state is certified at once
            first = est.certificate_.primal
            cd.fit(est.set_params(warm_start=True), X[rows], y[rows])
            meta["warm/reg_even"] = {"n_iter": est.n_iter_, "first": first,
                                     "primal": est.certificate_.primal,
                                     "relative_gap": est.certificate_.relative_gap}
    est0, X, y, _, shards = problem("reg_even")
    for name, params in REFUSED.items():
        est = clone(est0).set_params(**params)
        try:
            cd.fit(est, X[shards[rank]], y[shards[rank]])
            meta[f"refused/{name}"] = None
        except ValueError as exc:
            meta[f"refused/{name}"] = str(exc)
    out = Path(out_dir)
    np.savez(out / f"rank{rank}.npz", **arrays)
    (out / f"rank{rank}.json").write_text(json.dumps(meta))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
