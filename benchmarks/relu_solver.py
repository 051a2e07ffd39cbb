"""The ReLU solvers side by side: FISTA (exact cone prox), ADMM and the interior point.

1. The classifier defaults (``alpha=3e-3``, 200 patterns, ``tol=1e-3``; logistic loss,
   so FISTA) on the 426-row breast-cancer training split of the quick start: wall time,
   iterations, certified gap, accuracy.
2. The regressor defaults (squared loss), FISTA against the primal-dual interior-point
   :class:`~convexnn.solvers.ConeBarrier`, on diabetes (442 x 10) and a synthetic
   1500 x 20 regression (standardised): the measurements behind ``"auto"``'s choice
   (``AUTO_CONE_BARRIER_MAX_SAMPLES``).
3. The program of issue 3's goal 2 (569 rows, 500 patterns, ``alpha=1e-3``, squared loss
   on ±1 targets, the gates of ``_bench.gates``): FISTA for a fixed 300 iterations (it
   certifies nothing in that time), ConeBarrier to a certified ``1e-3``.

Writes ``benchmarks/results/relu_solver.{json,md}``.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/relu_solver.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import _bench as B
from convexnn import ConvexMLPClassifier, ConvexMLPRegressor
from convexnn.certificates import certify
from convexnn.solvers import FISTA, ConeBarrier

RESULTS = Path(__file__).parent / "results"


def defaults_fit() -> dict:
    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_tr)
    t = time.perf_counter()
    est = ConvexMLPClassifier(random_state=0).fit(scaler.transform(X_tr), y_tr)
    seconds = time.perf_counter() - t
    return {
        "setting": "breast_cancer defaults (426 rows, P=200, alpha=3e-3, tol=1e-3)",
        "seconds": seconds, "n_iter": est.n_iter_,
        "relative_gap": est.certificate_.relative_gap,
        "cone_violation": est.certificate_.cone_violation,
        "test_accuracy": est.score(scaler.transform(X_te), y_te), "n_neurons": est.n_neurons_,
    }


def regressor_defaults() -> list[dict]:
    from sklearn.datasets import load_diabetes

    rng = np.random.default_rng(0)
    Xs = rng.standard_normal((1500, 20))
    ys = np.sin(Xs[:, :3].sum(axis=1)) + 0.1 * rng.standard_normal(1500)
    rows = []
    for name, (X, y) in {"diabetes (442 x 10)": load_diabetes(return_X_y=True),
                         "synthetic (1500 x 20)": (Xs, ys)}.items():
        X = StandardScaler().fit_transform(X)
        y = (y - y.mean()) / y.std()
        for solver in ("fista", ConeBarrier()):
            label = solver if isinstance(solver, str) else solver.name
            t = time.perf_counter()
            est = ConvexMLPRegressor(activation="relu", solver=solver, random_state=0).fit(X, y)
            seconds = time.perf_counter() - t
            rows.append({
                "setting": f"regressor defaults, relu, {name}, {label}",
                "seconds": seconds, "n_iter": est.n_iter_, "primal": est.certificate_.primal,
                "relative_gap": est.certificate_.relative_gap,
                "cone_violation": est.certificate_.cone_violation, "n_neurons": est.n_neurons_,
            })
    return rows


def goal2_cone_barrier() -> dict:
    p = B.FULL_PROBLEMS["breast_cancer"]
    X, Y = B.load(p)
    t = time.perf_counter()
    program = B.program(X, Y, B.gates(X, p.n_patterns), p.alpha, relu=True)
    sol = ConeBarrier().solve(program, tol=1e-3, max_iter=500)
    cert = certify(program, sol.coef, sol.intercept, sol.dual_points, activation="relu",
                   tol=1e-3, refine=True)
    seconds = time.perf_counter() - t
    return {
        "setting": f"issue-3 goal-2 program (569 rows, P={p.n_patterns}, alpha={p.alpha}), "
                   "cone_barrier to tol 1e-3",
        "seconds": seconds, "n_iter": sol.n_iter, "primal": cert.primal,
        "relative_gap": cert.relative_gap, "cone_violation": cert.cone_violation,
    }


def goal2_fixed_iterations(n_iter: int = 300) -> dict:
    p = B.FULL_PROBLEMS["breast_cancer"]
    X, Y = B.load(p)
    program = B.program(X, Y, B.gates(X, p.n_patterns), p.alpha, relu=True)
    t = time.perf_counter()
    sol = FISTA().solve(program, tol=1e-3, max_iter=n_iter)
    seconds = time.perf_counter() - t
    cert = certify(program, sol.coef, sol.intercept, sol.dual_points, activation="relu",
                   tol=1e-3, refine=True)
    return {
        "setting": f"issue-3 goal-2 program (569 rows, P={p.n_patterns}, alpha={p.alpha}), "
                   f"fista, {n_iter} iterations",
        "seconds": seconds, "n_iter": sol.n_iter, "primal": cert.primal,
        "relative_gap": cert.relative_gap, "cone_violation": cert.cone_violation,
    }


def main() -> None:
    rows = [defaults_fit(), *regressor_defaults(), goal2_cone_barrier(), goal2_fixed_iterations()]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "relu_solver.json").write_text(json.dumps(rows, indent=2, default=float))
    md = ["Generated by `benchmarks/relu_solver.py` (shared 2-core machine, one BLAS thread).", "",
          "| setting | seconds | iterations | relative gap | cone violation | extra |",
          "|---|---|---|---|---|---|"]
    for r in rows:
        extra = (f"test accuracy {r['test_accuracy']:.3f}, {r['n_neurons']} neurons"
                 if "test_accuracy" in r else f"J = {r['primal']:.6g}")
        if "n_neurons" in r and "test_accuracy" not in r:
            extra += f", {r['n_neurons']} neurons"
        md.append(f"| {r['setting']} | {r['seconds']:.1f} | {r['n_iter']} | "
                  f"{r['relative_gap']:.2e} | {r['cone_violation']:.1e} | {extra} |")
    (RESULTS / "relu_solver.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
