"""Where ``solver="auto"`` switches between the interior-point methods and FISTA (gated ReLU).

Three solvers fit the same gated-ReLU estimator (same gates, same program) side by side
in one process, on seeded random subsets of real data sets of growing size, at the
estimator defaults (``tol=1e-3``) and at a tight ``tol=1e-5``: FISTA, the sample-space
``DualBarrier`` (``solver="barrier"``, up to ``--barrier-max`` samples: its steps cost
``O(n^3)``) and ``GramBarrier`` (where it applies: the squared loss, i.e. the regression
set) twice: with its Newton systems in coefficient space (``space="coefficients"``,
``P (d+1) <= 8000``) and in sample space (``space="samples"``, Woodbury, ``n <= 5000``).
Reported per fit: wall time (median of ``--repeats`` runs), certified relative gap,
iterations (proximal steps for FISTA, Newton steps for the barriers), neurons, and the
time ratios. ``convexnn.solvers.AUTO_BARRIER_MAX_SAMPLES`` and
``AUTO_GRAM_MAX_VARIABLES`` and ``AUTO_GRAM_MAX_SAMPLES`` are chosen from this table.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/solver_choice.py [--sizes 500 1000 2000]

Writes ``benchmarks/results/solver_choice.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

import _bench as B

SETS = {"pmlb_magic": "classification", "pmlb_spambase": "classification", "uci_protein": "regression",
        "uci_pol": "regression"}


def load(name: str, n: int):
    with np.load(B.DATA_DIR / f"{name}.npz", allow_pickle=False) as f:
        X, y = f["X"].astype(float), f["y"]
    rng = np.random.default_rng(B.SEED)
    idx = rng.choice(len(X), min(n, len(X)), replace=False)
    X, y = StandardScaler().fit_transform(X[idx]), y[idx]
    if SETS[name] == "regression":
        y = (y - y.mean()) / y.std()
    return X, y


#: the columns: estimator ``solver`` values (GramBarrier's two spaces made explicit)
COLUMNS = ("fista", "barrier", "gram_barrier", "gram_samples")


def solver_for(column: str):
    from convexnn.solvers import GramBarrier

    if column == "gram_barrier":
        return GramBarrier(space="coefficients")
    if column == "gram_samples":
        return GramBarrier(space="samples")
    return column


def fit(name, X, y, solver, tol, repeats):
    from convexnn import ConvexMLPClassifier, ConvexMLPRegressor

    Est = ConvexMLPClassifier if SETS[name] == "classification" else ConvexMLPRegressor
    times, est = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est = Est("gated_relu", solver=solver_for(solver), tol=tol, max_iter=20_000, random_state=0).fit(X, y)
        times.append(time.perf_counter() - t)
    c = est.certificate_
    return {"seconds": statistics.median(times), "times": times, "relative_gap": c.relative_gap,
            "certified": c.converged, "n_iter": int(est.n_iter_), "n_neurons": int(est.n_neurons_),
            "primal": c.primal}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000])
    ap.add_argument("--tols", type=float, nargs="+", default=[1e-3, 1e-5])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    ap.add_argument("--large", type=int, nargs="*", default=[3000, 4000, 5000, 20000],
                    help="further sizes for the regression set only (where gram_barrier applies)")
    ap.add_argument("--barrier-max", type=int, default=2000, help="largest n given to the DualBarrier")
    args = ap.parse_args()
    rows = []
    for name in args.sets:
        sizes = args.sizes + (args.large if SETS[name] == "regression" else [])
        for n in sizes:
            X, y = load(name, n)
            for tol in args.tols:
                row = {"data": name, "n_samples": X.shape[0], "n_features": X.shape[1], "tol": tol}
                for solver in COLUMNS:
                    if (solver == "barrier" and X.shape[0] > args.barrier_max
                            or solver == "gram_samples" and X.shape[0] > 5000):
                        row[solver] = None
                        continue
                    try:
                        row[solver] = fit(name, X, y, solver, tol, args.repeats)
                    except ValueError as err:  # the program is outside the solver's scope
                        row[solver] = {"refused": str(err)}
                for solver in COLUMNS[1:]:
                    other = row[solver]
                    row[f"ratio_fista_over_{solver}"] = (
                        row["fista"]["seconds"] / other["seconds"] if other and "seconds" in other else None)
                B.log(f"{name} n={X.shape[0]} tol={tol:g}: " + ", ".join(
                    f"{k} {v['seconds']:.2f} s ({v['n_iter']} it)" for k, v in
                    ((k, row[k]) for k in COLUMNS) if v and "seconds" in v))
                rows.append(row)
    out = {"environment": B.environment(), "rows": rows}
    (B.RESULTS / "solver_choice.json").write_text(json.dumps(out, indent=1))
    md = ["# Solver choice: FISTA vs the interior-point methods (gated ReLU)", "",
          "Generated by `benchmarks/solver_choice.py`: the same estimator (defaults: `alpha=3e-3`, "
          "`n_patterns=200`, `sampler='data'`, `random_state=0`) fitted with `solver='fista'`, "
          "`solver='barrier'` (sample-space `DualBarrier`, up to 2000 samples) and "
          "`GramBarrier` (squared loss only, so the regression set) with its Newton systems in "
          "coefficient space (`space='coefficients'`, `P (d+1) <= 8000`; column gram_barrier) and "
          "in sample space (`space='samples'`, Woodbury, `n <= 5000`; column gram_samples) "
          "side by side, on seeded subsets of standardized "
          "real data; one BLAS thread on a shared 2-core machine (read the ratios). "
          "`–`: not run (size) or refused (scope).", "",
          "| data | n × d | tol | FISTA s (it, gap) | barrier s (steps, gap) | gram_barrier s (steps, gap) "
          "| gram_samples s (steps, gap) | neurons F / B / G / S | **FISTA / barrier** "
          "| **FISTA / gram_barrier** | **FISTA / gram_samples** |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]

    def cell(v):
        if not v or "seconds" not in v:
            return "–"
        return f"{v['seconds']:.2f} ({v['n_iter']}, {v['relative_gap']:.1e}{'' if v['certified'] else ' ✗'})"

    def neurons(v):
        return str(v["n_neurons"]) if v and "n_neurons" in v else "–"

    def ratio(x):
        return "–" if x is None else f"{x:.2f}"

    for r in rows:
        f, b, g, s = (r[k] for k in COLUMNS)
        md.append(f"| {r['data']} | {r['n_samples']} × {r['n_features']} | {r['tol']:g} | {cell(f)} | "
                  f"{cell(b)} | {cell(g)} | {cell(s)} | {neurons(f)} / {neurons(b)} / {neurons(g)} / "
                  f"{neurons(s)} | " + " | ".join(ratio(r[f"ratio_fista_over_{k}"]) for k in COLUMNS[1:]) + " |")
    (B.RESULTS / "solver_choice.md").write_text("\n".join(md) + "\n")
    B.log(f"wrote {B.RESULTS / 'solver_choice.md'}")


if __name__ == "__main__":
    main()
