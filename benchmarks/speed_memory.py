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
  ``.fit`` (sampling, program, solver, certificate, export) -- what a user runs;
- ``memmap``: the same fit on ``np.load("X.npy", mmap_mode="r")`` (issue 6, req. 2): ``X``
  is written to a temporary ``.npy`` chunk by chunk first and streamed by the fit.

Data larger than memory (issue 6, req. 2) is measured separately, on a tall problem where
``X`` dominates (``n = 1000000, d = 100, P = 50``: ``X`` is 0.75 GiB; ``--quick``:
``n = 200000, d = 50, P = 20``), record ``memory_stream``: mode ``inram`` fits
``X`` held in RAM, ``memmap`` the same ``X`` streamed from a ``.npy``. Besides
``ru_maxrss`` (which counts the map's resident file pages: page cache, reclaimable),
these children report the peak of traced (numpy) allocations (``tracemalloc``) and
the peak anonymous RSS (``RssAnon`` of ``/proc/self/status``, sampled every 2 ms):
memory that a streamed fit must keep far below the size of ``X``.

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
MODES = ("baseline", "sampler", "operator", "program", "estimator", "memmap")
STREAM_MODES = ("inram", "memmap")
STREAM_SHAPE = {False: (1_000_000, 100, 50), True: (200_000, 50, 20)}


def _write_data(path, n: int, d: int) -> None:
    """``X`` (standard normal, seeded) and ``y`` written to ``path`` and ``path.y.npy``
    chunk by chunk: the file may be larger than what a child should hold in RAM."""
    rng = np.random.default_rng(B.SEED)
    W = rng.standard_normal((d, 10))
    a = rng.standard_normal(10)
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(n, d))
    y = np.empty(n)
    for start in range(0, n, 50_000):
        block = rng.standard_normal((min(50_000, n - start), d))
        X[start:start + len(block)] = block
        y[start:start + len(block)] = np.maximum(block @ W, 0) @ a
    X.flush()
    del X
    np.save(str(path) + ".y.npy", (y - y.mean()) / y.std())


class _AnonPeak:
    """Peak anonymous resident memory (``RssAnon``), sampled every 2 ms by a thread."""

    def __init__(self):
        import threading

        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def current() -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            self._stop.wait(0.002)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.current())


def stream_child(mode: str, n: int, d: int, P: int, path: str) -> None:
    """One fit of ``memory_stream``: ``X`` from ``path`` in RAM (``inram``) or streamed."""
    import resource
    import tracemalloc

    from convexnn import ConvexMLPRegressor

    t0 = time.perf_counter()
    y = np.load(path + ".y.npy")
    X = np.load(path, mmap_mode="r")
    if mode == "inram":
        X = np.array(X)  # read into anonymous memory (counted below, as a user's array is)
    est = ConvexMLPRegressor(activation="gated_relu", solver="fista", alpha=1e-3, n_patterns=P,
                             max_iter=3, random_state=0)
    tracemalloc.start()
    with _AnonPeak() as anon, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 3 iterations: not converged
        est.fit(X, y)
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"mode": mode, "peak_bytes": int(peak_kb) * 1024, "anon_peak_bytes": anon.peak,
                      "fit_traced_peak_bytes": traced, "X_bytes": 8 * n * d,
                      "seconds": time.perf_counter() - t0, "n_patterns": int(est.gates_.shape[1]),
                      "n_iter": int(est.n_iter_)}))


def bench_stream(quick: bool, stored: dict | None = None) -> dict:
    """``memory_stream``: a fit with ``X`` in RAM vs streamed from a ``.npy``."""
    import tempfile

    n, d, P = STREAM_SHAPE[quick]
    record = {"shape": {"n_samples": n, "n_features": d, "n_patterns": P}, "X_bytes": 8 * n * d,
              "runs": {}}
    if stored and "runs" in stored:
        record["runs"] = {m: r for m, r in stored["runs"].items() if "error" not in r}
    missing = [m for m in STREAM_MODES if m not in record["runs"]]
    if not missing:
        return record
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory(dir=B.BENCH) as tmp:  # on disk, not a RAM disk
        path = os.path.join(tmp, "X.npy")
        B.log(f"memory_stream: writing X ({8 * n * d / 2**30:.2f} GiB) ...")
        _write_data(path, n, d)
        for mode in missing:
            B.log(f"memory_stream {mode}: n={n} d={d} P={P} ...")
            proc = subprocess.run([sys.executable, __file__, "--stream-child", mode, str(n), str(d),
                                   str(P), path], capture_output=True, text=True, env=env, cwd=B.BENCH)
            if proc.returncode != 0:
                record["runs"][mode] = {"error": proc.stderr[-3000:], "returncode": proc.returncode}
                B.log(f"  FAILED ({proc.returncode})")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            for key in ("peak_bytes", "anon_peak_bytes", "fit_traced_peak_bytes"):
                r[key.replace("bytes", "GiB")] = r[key] / 1024**3
            record["runs"][mode] = r
            B.save_result("memory_stream", f"n{n}_d{d}_P{P}", quick, record)
            B.log(f"  peak RSS {r['peak_GiB']:.2f} GiB, anonymous {r['anon_peak_GiB']:.2f} GiB, "
                  f"traced {r['fit_traced_peak_GiB']:.3f} GiB in {r['seconds']:.1f} s")
    return record


def child(mode: str, n: int, d: int, P: int) -> None:
    import resource
    import tempfile

    t0 = time.perf_counter()
    rng = np.random.default_rng(B.SEED)
    X = rng.standard_normal((n, d))
    y = np.maximum(X @ rng.standard_normal((d, 10)), 0) @ rng.standard_normal(10)
    y = (y - y.mean()) / y.std()
    info = {}
    if mode == "memmap":  # the same X, written out, dropped from RAM, then streamed
        tmp = tempfile.TemporaryDirectory(dir=B.BENCH)
        np.save(os.path.join(tmp.name, "X.npy"), X)
        del X
        X = np.load(os.path.join(tmp.name, "X.npy"), mmap_mode="r")
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
    elif mode in ("estimator", "memmap"):
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
    if len(sys.argv) > 1 and sys.argv[1] == "--stream-child":
        mode, (n, d, P), path = sys.argv[2], map(int, sys.argv[3:6]), sys.argv[6]
        stream_child(mode, n, d, P, path)
        return
    args = B.cli(__doc__.splitlines()[0])
    stored = None if args.force else B.load_result("memory", "n100000_d100_P2000", args.quick)
    if stored is not None and set(MODES) <= set(stored.get("runs", {})):
        B.log("memory: stored result kept (use --force to recompute)")
    else:
        try:
            record = bench(args.quick, stored)
        except Exception:
            record = {"error": traceback.format_exc()[-3000:]}
        B.save_result("memory", "n100000_d100_P2000", args.quick, record)
    n, d, P = STREAM_SHAPE[args.quick]
    name = f"n{n}_d{d}_P{P}"
    stored = None if args.force else B.load_result("memory_stream", name, args.quick)
    try:
        record = bench_stream(args.quick, stored)
    except Exception:
        record = {"error": traceback.format_exc()[-3000:]}
    B.save_result("memory_stream", name, args.quick, record)


if __name__ == "__main__":
    main()
