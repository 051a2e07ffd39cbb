"""Goal 4 of issue 3: cost of one solver iteration against the dense matmuls it needs.

At ``n = 20000, d = 100, P = 1000`` (``--quick``: 4000, 50, 200), Gaussian data and
convexnn ``DataSampler`` gates, one gated-ReLU FISTA iteration needs one forward
``sum_k D_k Xa v_k`` and one adjoint ``(Xa^T D_k theta)_k``. Their floor is two dense
products of the same shapes: ``Xa @ W`` with ``W`` of shape ``(d + 1, P)`` and
``Xa^T @ T`` with ``T`` of shape ``(n, P)``. Timed in the same run, interleaved, median
of several repetitions:

- ``matvec`` and ``rmatvec`` of ``program.operator`` (convexnn's operator);
- the two dense products;
- a whole FISTA iteration as the solver runs it (line search, restarts, gap checks every
  ``check_every`` iterations), from ``FISTA.solve`` with two iteration counts
  (difference / iteration difference, so setup cancels).

Ratios: ``(matvec + rmatvec) / (two matmuls)`` and ``FISTA iteration / (two matmuls)``
(goal: <= 1.5).

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/speed_iteration.py [--quick] [--force]
"""

from __future__ import annotations

import statistics
import time
import traceback

import numpy as np

import _bench as B


def _median_time(fn, reps: int) -> tuple[float, list[float]]:
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), ts


def bench(quick: bool) -> dict:
    from convexnn.solvers import FISTA

    n, d, P = (4000, 50, 200) if quick else (20000, 100, 1000)
    reps = 7
    rng = np.random.default_rng(B.SEED)
    X = rng.standard_normal((n, d))
    y = np.maximum(X @ rng.standard_normal((d, 10)), 0) @ rng.standard_normal(10)
    Y = ((y - y.mean()) / y.std())[:, None]
    G = B.gates(X, P)
    prog = B.program(X, Y, G, 1e-3)
    op = prog.operator
    P = op.n_patterns
    Xa = op.Xa
    V = rng.standard_normal((P, d + 1, 1))
    Theta = rng.standard_normal((n, 1))
    W = V[:, :, 0].T.copy()  # (d+1, P)
    T = rng.standard_normal((n, P))
    B.log(f"iteration: n={n} d={d} P={P}")
    fwd, bwd, mm1, mm2 = [], [], [], []
    for _ in range(reps):  # interleaved so that machine load hits all alike
        fwd.append(_median_time(lambda: op.matvec(V), 1)[0])
        bwd.append(_median_time(lambda: op.rmatvec(Theta), 1)[0])
        mm1.append(_median_time(lambda: Xa @ W, 1)[0])
        mm2.append(_median_time(lambda: Xa.T @ T, 1)[0])
    med = {k: statistics.median(v) for k, v in (("matvec", fwd), ("rmatvec", bwd), ("Xa@W", mm1), ("Xa.T@T", mm2))}
    floor = med["Xa@W"] + med["Xa.T@T"]
    # a whole solver iteration: FISTA.solve with k1 and k2 iterations (tol unreachable)
    k1, k2 = (5, 25) if quick else (5, 25)
    per_iter = []
    for _ in range(3):
        t1 = _median_time(lambda: FISTA().solve(prog, tol=1e-15, max_iter=k1), 1)[0]
        t2 = _median_time(lambda: FISTA().solve(prog, tol=1e-15, max_iter=k2), 1)[0]
        per_iter.append((t2 - t1) / (k2 - k1))
    fista_iter = statistics.median(per_iter)
    record = {
        "shape": {"n_samples": n, "n_features": d, "n_patterns": P},
        "seconds": {**med, "two_matmuls": floor, "matvec+rmatvec": med["matvec"] + med["rmatvec"],
                    "fista_iteration": fista_iter},
        "raw": {"matvec": fwd, "rmatvec": bwd, "Xa@W": mm1, "Xa.T@T": mm2, "fista_iteration": per_iter},
        "ratio_operator_over_matmuls": (med["matvec"] + med["rmatvec"]) / floor,
        "ratio_fista_iteration_over_matmuls": fista_iter / floor,
        "goal": 1.5,
    }
    B.log(f"  matvec {med['matvec']*1e3:.1f} ms, rmatvec {med['rmatvec']*1e3:.1f} ms, matmuls "
          f"{med['Xa@W']*1e3:.1f} + {med['Xa.T@T']*1e3:.1f} ms, FISTA iteration {fista_iter*1e3:.1f} ms; ratios "
          f"{record['ratio_operator_over_matmuls']:.2f} / {record['ratio_fista_iteration_over_matmuls']:.2f}")
    return record


def main() -> None:
    args = B.cli(__doc__.splitlines()[0])
    if not args.force and B.load_result("iteration", "n20000_d100_P1000", args.quick) is not None:
        B.log("iteration: stored result kept (use --force to recompute)")
        return
    try:
        record = bench(args.quick)
    except Exception:
        record = {"error": traceback.format_exc()[-3000:]}
        B.log(f"iteration: FAILED\n{record['error']}")
    B.save_result("iteration", "n20000_d100_P1000", args.quick, record)


if __name__ == "__main__":
    main()
