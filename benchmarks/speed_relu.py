"""Goal 2 of issue 3: ReLU (cone-constrained), convexnn vs pyscnn's augmented Lagrangian.

Same problems, data, gates and ``alpha`` as ``speed_gated.py``; the cone-constrained
program (two blocks per pattern, ``(2 D_k - I) Xa v >= 0``):

- **convexnn**: its default ReLU solver (``"auto"``: the primal-dual interior-point
  :class:`~convexnn.solvers.ConeBarrier` up to 1500 samples, in coefficient space beyond
  while ``P (d+1)`` is at most 3000, or 6000 with at least as many samples, else FISTA
  with the exact cone prox; ``make_solver``) to a certified relative gap ``<= 1e-3``;
  every iterate of both is an exactly feasible network. Time, primal, gap, whether certified, solver.
- **pyscnn**: ``ConvexReLU(G)`` + ``AL(max_primal_iters=1000)`` (1000 iterations in all),
  ``NeuronGL1(alpha)``, ``unitize_data=False``, float32. Reported: time, convexnn's
  objective at its (infeasible) solution, its cone violation (largest
  ``-min E_k Xa u`` relative to ``max |Xa u|``), and the objective of that solution
  after projecting every block onto its cone (an honest feasible value).

Ratio: ``pyscnn time / convexnn time`` (goal: >= 10, with convexnn certified to 1e-3).

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/speed_relu.py [--quick] [--force] [--problems ...]
"""

from __future__ import annotations

import traceback

import _bench as B

TOL = 1e-3
PYSCNN_ITERS = 1000


def bench_problem(p: B.Problem, quick: bool) -> dict:
    from convexnn.patterns import augment

    X, Y = B.load(p)
    G = B.gates(X, p.n_patterns)
    n, d = X.shape
    alpha = B.convexnn_alpha(p.alpha, Y.shape[1])  # pyscnn's lam = p.alpha (see _bench.py)
    B.log(f"relu {p.name}: n={n} d={d} c={Y.shape[1]} P={G.shape[1]}: convexnn ...")
    max_iter = 2_000 if quick else 20_000
    cx, times = B.repeat(lambda: B.solve_convexnn(X, Y, G, alpha, tol=TOL, max_iter=max_iter, relu=True),
                         cheap_seconds=10.0, max_repeats=1 if quick else 3)
    B.log(f"  convexnn {cx['seconds']:.2f} s, J={cx['primal']:.8g}, rel gap {cx['relative_gap']:.2e}, "
          f"{cx['n_iter']} it, certified={cx['certified']}")
    record = {
        "shape": {"n_samples": n, "n_features": d, "n_outputs": Y.shape[1], "n_patterns": G.shape[1]},
        "alpha": alpha, "pyscnn_lam": p.alpha, "tol": TOL,
        "convexnn": {**B.public(cx), "times": times, "max_iter": max_iter},
        "J_best": cx["primal"], "J_lower": cx["dual"],
    }
    if B.pyscnn_available():
        iters = 200 if quick else PYSCNN_ITERS
        B.log(f"  pyscnn AL ({iters} iterations) ...")
        try:
            ps = B.run_pyscnn(augment(X), Y, G, p.alpha, relu=True, max_iter=iters)
            check = B.pyscnn_objective_check(X, Y, alpha, ps, relu=True)
            record["pyscnn"] = {**B.public(ps), **check, "max_primal_iters": iters,
                                "rel_to_convexnn_lower": (check["J_after_projection"] - cx["dual"]) / abs(cx["dual"])}
            record["ratio_pyscnn_over_convexnn"] = ps["seconds"] / cx["seconds"]
            B.log(f"  pyscnn {ps['seconds']:.2f} s, J={check['J_convexnn_objective']:.6g}, violation "
                  f"{check['cone_violation']:.2e}, projected J={check['J_after_projection']:.6g}")
        except Exception:
            record["pyscnn"] = {"error": traceback.format_exc()[-3000:]}
    else:
        record["pyscnn"] = {"skipped": "pyscnn not installed (make bench installs it)"}
    return record


def main() -> None:
    args = B.cli(__doc__.splitlines()[0])
    probs = B.problems(args.quick)
    for name in args.problems or list(probs):
        if not args.force and B.load_result("relu", name, args.quick) is not None:
            B.log(f"relu {name}: stored result kept (use --force to recompute)")
            continue
        try:
            record = bench_problem(probs[name], args.quick)
        except Exception:
            record = {"error": traceback.format_exc()[-3000:]}
            B.log(f"relu {name}: FAILED\n{record['error']}")
        B.save_result("relu", name, args.quick, record)


if __name__ == "__main__":
    main()
