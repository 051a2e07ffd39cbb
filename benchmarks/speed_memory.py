"""Goal 5 of issue 3: peak memory of a fit at n = 100000, d = 100, P = 2000.

Each measurement runs in a fresh child process (``python speed_memory.py --child MODE
n d P``) that reports its peak resident set size from ``resource.getrusage``
(``ru_maxrss``, the high-water mark of the whole process, imports included):

- ``baseline``: imports and the data only (``X`` float64, ``y``);
- ``sampler``: data and ``DataSampler(P).sample`` only (where the gates come from);
- ``operator``: data, Gaussian gates and ``GatedOperator`` (the masks it stores) only;
- ``program``: data, ``DataSampler`` gates, the gated program (masks) and 3 FISTA
  iterations with a duality-gap check (``check_every=1``);
- ``estimator``: ``ConvexMLPRegressor(activation="gated_relu", n_patterns=P, max_iter=3)``
  ``.fit`` (sampling, program, solver, certificate, export) -- what a user runs.

An ``n x P x d`` float64 array alone would take ``8 n P (d + 1)`` bytes (161 GB here), so a
peak far below that shows none is built. Goal: peak <= 4 GB. ``--quick`` uses
``n = 20000, d = 50, P = 400``.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/speed_memory.py [--quick] [--force]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
import warnings

import numpy as np

import _bench as B

GOAL_BYTES = 4 * 1024**3
MODES = ("baseline", "sampler", "operator", "program", "estimator")


def child(mode: str, n: int, d: int, P: int) -> None:
    import resource

    t0 = time.perf_counter()
    rng = np.random.default_rng(B.SEED)
    X = rng.standard_normal((n, d))
    y = np.maximum(X @ rng.standard_normal((d, 10)), 0) @ rng.standard_normal(10)
    y = (y - y.mean()) / y.std()
    info = {}
    if mode == "sampler":
        info = {"n_patterns": int(B.gates(X, P).shape[1])}
    elif mode == "operator":
        from convexnn.operators import GatedOperator

        op = GatedOperator(X, rng.standard_normal((d + 1, P)))
        info = {"n_patterns": int(op.n_patterns)}
    elif mode == "program":
        from convexnn.solvers import FISTA

        G = B.gates(X, P)
        prog = B.program(X, y[:, None], G, 1e-3)
        sol = FISTA(check_every=1).solve(prog, tol=1e-15, max_iter=3)
        info = {"n_patterns": int(prog.operator.n_patterns), "n_iter": int(sol.n_iter)}
    elif mode == "estimator":
        from convexnn import ConvexMLPRegressor

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = ConvexMLPRegressor(activation="gated_relu", alpha=1e-3, n_patterns=P, max_iter=3,
                                     random_state=0).fit(X, y)
        info = {"n_patterns": int(est.gates_.shape[1]), "n_iter": int(est.n_iter_)}
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"mode": mode, "peak_bytes": int(peak_kb) * 1024, "seconds": time.perf_counter() - t0, **info}))


def bench(quick: bool, stored: dict | None = None) -> dict:
    """Run the modes missing from ``stored`` (all when ``None``)."""
    n, d, P = (20000, 50, 400) if quick else (100000, 100, 2000)
    record = {"shape": {"n_samples": n, "n_features": d, "n_patterns": P}, "goal_bytes": GOAL_BYTES,
              "nPd_float64_bytes": 8 * n * P * (d + 1), "runs": {}}
    if stored and "runs" in stored:
        record["runs"] = {m: r for m, r in stored["runs"].items() if "error" not in r}
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    for mode in MODES:
        if mode in record["runs"]:
            continue
        B.log(f"memory {mode}: n={n} d={d} P={P} ...")
        proc = subprocess.run([sys.executable, __file__, "--child", mode, str(n), str(d), str(P)],
                              capture_output=True, text=True, env=env, cwd=B.BENCH)
        if proc.returncode != 0:
            record["runs"][mode] = {"error": proc.stderr[-3000:], "returncode": proc.returncode}
            B.log(f"  FAILED ({proc.returncode})")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["peak_GiB"] = r["peak_bytes"] / 1024**3
        r["fits_4GB"] = r["peak_bytes"] <= GOAL_BYTES
        record["runs"][mode] = r
        B.save_result("memory", "n100000_d100_P2000", quick, record)  # resumable per mode
        B.log(f"  peak {r['peak_GiB']:.2f} GiB in {r['seconds']:.1f} s")
    return record


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        mode, n, d, P = sys.argv[2], *map(int, sys.argv[3:6])
        child(mode, n, d, P)
        return
    args = B.cli(__doc__.splitlines()[0])
    stored = None if args.force else B.load_result("memory", "n100000_d100_P2000", args.quick)
    if stored is not None and set(MODES) <= set(stored.get("runs", {})):
        B.log("memory: stored result kept (use --force to recompute)")
        return
    try:
        record = bench(args.quick, stored)
    except Exception:
        record = {"error": traceback.format_exc()[-3000:]}
    B.save_result("memory", "n100000_d100_P2000", args.quick, record)


if __name__ == "__main__":
    main()
