"""Goal 1 of issue 3: gated ReLU, convexnn vs pyscnn (R-FISTA) vs adelie, same program.

For every problem (``_bench.FULL_PROBLEMS``, or the small ``--quick`` ones):

1. Standardised data, targets for the squared loss, ``P`` gates from convexnn's
   ``DataSampler`` (seed 0) -- the same gates go to every method.
2. **convexnn**: the gated program solved by its default solver (``solver="auto"``: the
   sample-space interior-point method ``DualBarrier`` up to 2000 samples, FISTA above) to a *certified*
   relative duality gap ``<= 1e-4`` (median time of up to 3 runs while a run takes
   < 10 s). Its certified primal is ``J*`` (known to within the gap).
3. **pyscnn** 0.0.10: ``ConvexGatedReLU(G)`` on ``Xa = [X, 1]``, ``RFISTA`` with its
   default stop (gradient norm 1e-6, 10000 iterations; a per-problem cap where that
   would take hours, flagged in the tables), ``NeuronGL1(alpha)``, ``unitize_data=False``,
   its default float32. Its solution is evaluated with *convexnn's* objective (the
   mapping ``alpha = c * lam`` for ``c`` outputs is explained in ``_bench.py`` and checked
   here: ``c`` times pyscnn's own last objective must equal ours at its weights), giving ``(J - J*) / J*`` and the
   relative gap certifiable for pyscnn's own (intercept-free) program.
4. **adelie** (own virtualenv, ``adelie_runner.py``): ``grpnet`` over the convex-ReLU
   matrix, ``penalty = ones(P)``, free intercept, a 30-point lambda path ending at
   ``alpha``, tolerances 1e-7 (its default) down to 1e-13; reported: the time of the
   first tolerance whose final ``J`` is within 1e-3 of ``J*``. Single-output only.

Ratio reported: ``pyscnn time / convexnn time`` (goal: >= 20).

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/speed_gated.py [--quick] [--force] [--problems ...]
"""

from __future__ import annotations

import subprocess
import tempfile
import traceback
from pathlib import Path

import numpy as np

import _bench as B

TOL = 1e-4
ADELIE_TOLS = (1e-7, 1e-9, 1e-11, 1e-13)
ADELIE_TARGET = 1e-3
#: wall-clock cap of one adelie subprocess (its tolerance sweep), seconds
ADELIE_TIMEOUT = 600


def run_adelie(prog, X, Y, alpha, J_star) -> dict:
    """adelie on the same program in its own virtualenv; see ``adelie_runner.py``."""
    from convexnn.patterns import augment

    if not B.ADELIE_PYTHON.exists():
        return {"skipped": f"{B.ADELIE_PYTHON} missing (run `make bench`, it creates it)"}
    if Y.shape[1] != 1:
        return {"skipped": "several outputs: adelie's multi-response group lasso is a different program"}
    path = np.geomspace(prog.alpha_max(), alpha, 30)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "problem.npz", Path(tmp) / "result.npz"
        np.savez(src, Xa=augment(X), masks=prog.operator.masks, y=Y[:, 0], alpha=alpha,
                 lmda_path=path, tols=np.array(ADELIE_TOLS),
                 J_target=J_star * (1 + ADELIE_TARGET))
        try:
            proc = subprocess.run([str(B.ADELIE_PYTHON), str(B.BENCH / "adelie_runner.py"), str(src), str(dst)],
                                  capture_output=True, text=True, timeout=ADELIE_TIMEOUT)
        except subprocess.TimeoutExpired:
            return {"timed_out": ADELIE_TIMEOUT, "seconds_to_target": None,
                    "note": f"no result within {ADELIE_TIMEOUT} s (its path of 30 lambdas, first tolerance)"}
        if proc.returncode != 0:
            return {"error": proc.stderr[-2000:]}
        f = np.load(dst)
        runs = []
        for i, tol in enumerate(ADELIE_TOLS):
            if f"coef_{i}" not in f:
                break
            J = prog.objective(f[f"coef_{i}"][:, :, None], np.atleast_1d(f[f"intercept_{i}"]).astype(float))
            runs.append({"tol": tol, "seconds": float(f[f"seconds_{i}"]), "J": float(J),
                         "rel_subopt": float((J - J_star) / abs(J_star))})
        version = str(f["version"])
    hit = next((r for r in runs if r["rel_subopt"] <= ADELIE_TARGET), None)
    return {"version": version, "runs": runs, "target": ADELIE_TARGET,
            "seconds_to_target": hit["seconds"] if hit else None, "tol_at_target": hit["tol"] if hit else None}


def bench_problem(p: B.Problem, quick: bool) -> dict:
    from convexnn.patterns import augment

    X, Y = B.load(p)
    G = B.gates(X, p.n_patterns)
    n, d = X.shape
    alpha = B.convexnn_alpha(p.alpha, Y.shape[1])  # pyscnn's lam = p.alpha (see _bench.py)
    B.log(f"gated {p.name}: n={n} d={d} c={Y.shape[1]} P={G.shape[1]} alpha={alpha:g}: convexnn ...")
    max_iter = 50_000 if quick else 200_000
    cx, times = B.repeat(lambda: B.solve_convexnn(X, Y, G, alpha, tol=TOL, max_iter=max_iter),
                         cheap_seconds=10.0, max_repeats=1 if quick else 3)
    J_star, J_lower = cx["primal"], cx["dual"]
    B.log(f"  convexnn {cx['seconds']:.2f} s, J={J_star:.8g}, rel gap {cx['relative_gap']:.2e}, {cx['n_iter']} it")
    record = {
        "shape": {"n_samples": n, "n_features": d, "n_outputs": Y.shape[1], "n_patterns": G.shape[1]},
        "alpha": alpha, "pyscnn_lam": p.alpha, "tol": TOL,
        "convexnn": {**B.public(cx), "times": times},
        "J_star": J_star, "J_lower": J_lower,
    }
    # --- pyscnn
    if B.pyscnn_available():
        B.log(f"  pyscnn (max_iter={p.pyscnn_max_iter or 'default 10000'}) ...")
        try:
            runs = [B.run_pyscnn(augment(X), Y, G, p.alpha, max_iter=p.pyscnn_max_iter)]
            while not quick and len(runs) < 3 and runs[0]["seconds"] < 5.0:
                runs.append(B.run_pyscnn(augment(X), Y, G, p.alpha, max_iter=p.pyscnn_max_iter))
            ts = [r["seconds"] for r in runs]
            ps = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
            check = B.pyscnn_objective_check(X, Y, alpha, ps)
            J = check["J_convexnn_objective"]
            hist = ps["history"]
            # pyscnn logs its own objective, ours divided by the number of outputs (_bench.py)
            c = Y.shape[1]
            t_hit = next((t for t, v in zip(hist["time"], hist["objective"]) if v * c <= J_star * (1 + TOL)), None)
            record["pyscnn"] = {
                **B.public(ps), "times": ts, **check,
                "rel_subopt": (J - J_star) / abs(J_star),
                "capped_max_iter": p.pyscnn_max_iter,
                "seconds_to_J_star_1e-4": t_hit,
                "objective_mapping_error": (abs(check["own_objective_in_convexnn_units"] - J) / abs(J)
                                            if check.get("own_objective_last") is not None else None),
            }
            err = record["pyscnn"]["objective_mapping_error"]
            # pyscnn evaluates its own objective in float32: agreement to ~1e-4 is exact
            record["pyscnn"]["objective_mapping_ok"] = err is None or err < 1e-3
            if not record["pyscnn"]["objective_mapping_ok"]:
                B.log(f"  WARNING: pyscnn's own objective differs from convexnn's at its weights by {err:.1e}")
            record["ratio_pyscnn_over_convexnn"] = ps["seconds"] / cx["seconds"]
            B.log(f"  pyscnn {ps['seconds']:.2f} s, J={J:.8g} ({record['pyscnn']['rel_subopt']:.2e} above J*), "
                  f"ratio {record['ratio_pyscnn_over_convexnn']:.2f}")
        except Exception:
            record["pyscnn"] = {"error": traceback.format_exc()[-3000:]}
    else:
        record["pyscnn"] = {"skipped": "pyscnn not installed (make bench installs it)"}
    # --- adelie
    B.log("  adelie ...")
    try:
        record["adelie"] = run_adelie(cx["_program"], X, Y, alpha, J_star)
        if record["adelie"].get("seconds_to_target"):
            record["ratio_adelie_over_convexnn"] = record["adelie"]["seconds_to_target"] / cx["seconds"]
    except Exception:
        record["adelie"] = {"error": traceback.format_exc()[-3000:]}
    return record


def main() -> None:
    args = B.cli(__doc__.splitlines()[0])
    probs = B.problems(args.quick)
    for name in args.problems or list(probs):
        if not args.force and B.load_result("gated", name, args.quick) is not None:
            B.log(f"gated {name}: stored result kept (use --force to recompute)")
            continue
        try:
            record = bench_problem(probs[name], args.quick)
        except Exception:
            record = {"error": traceback.format_exc()[-3000:]}
            B.log(f"gated {name}: FAILED\n{record['error']}")
        B.save_result("gated", name, args.quick, record)


if __name__ == "__main__":
    main()
