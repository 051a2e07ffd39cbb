"""Goal 3 of issue 3: convexnn against ordinary training (PyTorch Adam) on the same J.

For each problem and activation:

1. **convexnn**: ``ConvexMLPClassifier`` / ``ConvexMLPRegressor`` (logistic loss for two
   classes, squared loss for regression) with explicit gates from convexnn's
   ``DataSampler`` (seed 0), ``alpha``, ``tol`` 1e-4 (gated ReLU) or 1e-3 (ReLU). Its
   certified primal is ``J*``; its wall time to ``J*(1 + 1e-3)`` is read off
   ``history_`` (setup and final certificate charged in full).
2. **Adam** (PyTorch, float64, default ``nn.Linear`` initialisation, seed 0) on the *same*
   network -- same width ``m = n_neurons_``, same activation (for gated ReLU: the same
   gates as convexnn's units), same objective
   ``J = mean loss + alpha/2 (|W1|^2 + |b1|^2 + |W2|^2)`` with a free ``b2`` (DESIGN.md §1)
   -- for every learning rate in ``1e-4, 1e-3, 1e-2, 1e-1``, full batch and mini-batch
   (64 rows), until a step or time budget runs out. Full-batch ``J`` is evaluated every
   few steps (evaluation time excluded from Adam's clock); reported: best ``J`` per run
   and the training time to reach it, and to reach ``J*(1 + 1e-3)``.

``relu_search`` is the ReLU fit with ``pattern_search=2`` (two rounds of local descent
on the non-convex ``J`` and re-solves over the descended units' patterns; the time to
``J*(1 + 1e-3)`` is then read off the rounds), with Adam at its width.

The torch ``J`` is checked against convexnn's certificate on convexnn's own network
(they must agree to 1e-9 relative). Reported ratios: ``best Adam J / J*`` (goal: never
below 1) and ``Adam time to its best J / convexnn time to J*(1 + 1e-3)``.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/speed_adam.py [--quick] [--force] [--problems ...]
"""

from __future__ import annotations

import time
import traceback
import warnings
from dataclasses import replace

import numpy as np

import _bench as B

LRS = (1e-4, 1e-3, 1e-2, 1e-1)
TARGET = 1e-3
# "relu_search": ReLU with PATTERN_SEARCH rounds of pattern search (``pattern_search``)
ACTIVATIONS = ("gated_relu", "relu", "relu_search")
PATTERN_SEARCH = 2
TOLS = {"gated_relu": 1e-4, "relu": 1e-3, "relu_search": 1e-3}
# the ReLU solver may not certify at all (then J* is its best feasible point): cap it
MAX_ITER = {"gated_relu": 200_000, "relu": 20_000, "relu_search": 20_000}


def _problems(quick: bool) -> dict:
    base = B.problems(quick)
    if quick:
        return {"breast_cancer": replace(base["breast_cancer"]), "protein": replace(base["protein"], max_rows=500)}
    return {"breast_cancer": base["breast_cancer"], "protein": replace(base["protein"], max_rows=5000, n_patterns=200)}


def _budget(quick: bool) -> dict:
    if quick:
        return {"full_steps": 3000, "epochs": 60, "seconds": 3.0, "eval_every": 25, "batch": 64}
    return {"full_steps": 30000, "epochs": 1000, "seconds": 60.0, "eval_every": 50, "batch": 64}


def torch_objective(params, X, Y, gates, loss: str, alpha: float, activation: str):
    """``J`` of ``relu(X W1 + b1) W2 + b2`` (or gated) in torch; ``Y`` as encoded below."""
    import torch

    W1, b1, W2, b2 = params
    pre = X @ W1 + b1
    if activation == "relu":
        H = torch.relu(pre)
    else:
        H = pre * gates
    F = H @ W2 + b2
    if loss == "squared":
        data = 0.5 * ((F - Y) ** 2).sum(dim=1).mean()
    elif loss == "logistic":
        data = torch.nn.functional.binary_cross_entropy_with_logits(F, Y, reduction="mean")
    else:
        data = torch.nn.functional.cross_entropy(F, Y.argmax(dim=1), reduction="mean")
    return data + 0.5 * alpha * ((W1 ** 2).sum() + (b1 ** 2).sum() + (W2 ** 2).sum())


def run_adam(X, Y, gates, loss, alpha, activation, width, lr, batch, budget, target=-np.inf) -> dict:
    """One Adam run; returns best ``J``, training seconds to reach it and to reach
    ``target`` (``None`` if never), and a short curve."""
    import torch

    torch.manual_seed(B.SEED)
    d, c = X.shape[1], Y.shape[1]
    l1, l2 = torch.nn.Linear(d, width, dtype=torch.float64), torch.nn.Linear(width, c, dtype=torch.float64)
    params = [l1.weight.detach().T.clone(), l1.bias.detach().clone(), l2.weight.detach().T.clone(),
              l2.bias.detach().clone()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    n = X.shape[0]
    gen = torch.Generator().manual_seed(B.SEED)
    best, best_t, train_t, steps, target_t = np.inf, 0.0, 0.0, 0, None
    best_gates = None  # the best network's first layer, as gates (d + 1, width)
    curve = []
    max_steps = budget["full_steps"] if batch is None else budget["epochs"] * int(np.ceil(n / batch))
    diverged = False
    while steps < max_steps and train_t < budget["seconds"]:
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen) if batch is not None else None
        chunks = [slice(None)] if batch is None else [perm[i:i + batch] for i in range(0, n, batch)]
        for _ in range(budget["eval_every"] if batch is None else 1):
            for idx in chunks:
                opt.zero_grad()
                g = gates[idx] if gates is not None else None
                J = torch_objective(params, X[idx], Y[idx], g, loss, alpha, activation)
                J.backward()
                opt.step()
                steps += 1
        train_t += time.perf_counter() - t0
        with torch.no_grad():
            Jf = float(torch_objective(params, X, Y, gates, loss, alpha, activation))
        if not np.isfinite(Jf):
            diverged = True
            break
        curve.append((train_t, Jf))
        if Jf < best:
            best, best_t = Jf, train_t
            best_gates = np.vstack([params[0].detach().numpy(), params[1].detach().numpy()[None, :]])
        if target_t is None and Jf <= target:
            target_t = train_t
    return {"lr": lr, "batch": batch, "best_J": best, "seconds_to_best": best_t, "seconds": train_t,
            "seconds_to_target": target_t, "steps": steps, "diverged": diverged, "curve": B.thin({"t": [t for t, _ in curve],
                                                                  "J": [j for _, j in curve]}, keep=60),
            "_gates": best_gates}


def _search_time_to(est, target: float, total_seconds: float) -> float | None:
    """Wall time of a pattern-search fit until its certified ``J`` first reaches ``target``:
    the whole fit less the rounds after the one that reached it (setup, the first solve
    and the final certificate charged in full); ``None`` if never reached."""
    rounds = est.search_history_
    spent = [r.get("descent_seconds", 0.0) + r.get("solve_seconds", 0.0) for r in rounds]
    if rounds and rounds[0]["objective_before"] <= target:  # the first solve sufficed
        return total_seconds - sum(spent)  # (its own history is not kept: charged in full)
    for i, r in enumerate(rounds):
        if r.get("objective", np.inf) <= target and "stopped" not in r:
            return total_seconds - sum(spent[i + 1:])
    return None


def bench_problem(p: B.Problem, activation: str, quick: bool) -> dict:
    import torch

    from convexnn import ConvexMLPClassifier, ConvexMLPRegressor

    search = activation == "relu_search"
    variant, activation = activation, ("relu" if search else activation)
    torch.set_num_threads(1)
    X, Ypm = B.load(p)
    G = B.gates(X, p.n_patterns)
    regression = p.task == "regression"
    y = Ypm[:, 0] if regression else (Ypm[:, 0] > 0).astype(int)
    Est = ConvexMLPRegressor if regression else ConvexMLPClassifier
    loss = "squared" if regression else "logistic"
    tol = TOLS[variant]
    est = Est(activation=activation, alpha=p.alpha, sampler=G, tol=tol, max_iter=MAX_ITER[variant],
              random_state=0, pattern_search=PATTERN_SEARCH if search else 0)
    B.log(f"adam {p.name} {activation}: n={X.shape[0]} d={X.shape[1]} P={G.shape[1]}: convexnn ...")
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(X, y)
    cx_seconds = time.perf_counter() - t0
    cert = est.certificate_
    J_star = cert.primal
    hist = {"time": est.history_["time"], "primal": est.history_["primal"]}
    if search:
        t_target = _search_time_to(est, J_star * (1 + TARGET), cx_seconds)
    else:
        t_target = B.time_to(hist, J_star * (1 + TARGET), cx_seconds)
    width = int(est.n_neurons_)
    B.log(f"  convexnn {cx_seconds:.2f} s, J*={J_star:.8g}, gap {cert.relative_gap:.2e}, width {width}, "
          f"t(J*(1+1e-3))={t_target}")
    Xt = torch.tensor(X)
    Yt = torch.tensor(Ypm if regression else y[:, None].astype(float))
    gates = None
    if activation == "gated_relu":
        ng = est.gates_[:, est.neuron_patterns_]
        gates = torch.tensor(((X @ ng[:-1] + ng[-1]) > 0).astype(float))
    with torch.no_grad():
        own = [torch.tensor(a) for a in (est.coefs_[0], est.intercepts_[0], est.coefs_[1], est.intercepts_[1])]
        J_check = float(torch_objective(own, Xt, Yt, gates, loss, p.alpha, activation))
    record = {
        "activation": activation, "variant": variant, "loss": loss,
        "shape": {"n_samples": X.shape[0], "n_features": X.shape[1], "n_patterns": G.shape[1], "width": width},
        "alpha": p.alpha,
        "convexnn": {"seconds": cx_seconds, "J_star": J_star, "dual": cert.dual, "relative_gap": cert.relative_gap,
                     "certified": cert.converged, "tol": tol, "seconds_to_target": t_target,
                     "warnings": [str(w.message)[:300] for w in caught],
                     "pattern_search": PATTERN_SEARCH if search else 0, "search_history": est.search_history_,
                     "n_patterns_final": int(est.gates_.shape[1])},
        "torch_J_of_convexnn_network": J_check,
        "torch_J_mismatch": abs(J_check - J_star) / abs(J_star),
        "adam": [],
    }
    budget = _budget(quick)
    record["adam_budget"] = budget
    if width == 0:
        record["adam_skipped"] = "convexnn's solution has no hidden unit"
        return record
    for batch in (None, budget["batch"]):
        for lr in LRS:
            r = run_adam(Xt, Yt, gates, loss, p.alpha, activation, width, lr, batch, budget,
                         target=J_star * (1 + TARGET))
            r["ratio_best_J_over_J_star"] = r["best_J"] / J_star
            record["adam"].append(r)
            B.log(f"  adam lr={lr:g} batch={batch}: best J {r['best_J']:.8g} ({r['ratio_best_J_over_J_star']:.5f} J*) "
                  f"at {r['seconds_to_best']:.2f} s of {r['seconds']:.2f} s")
    best = min(record["adam"], key=lambda r: r["best_J"])
    record["adam_best"] = {"lr": best["lr"], "batch": best["batch"], "best_J": best["best_J"],
                           "seconds_to_best": best["seconds_to_best"]}
    hits = [r["seconds_to_target"] for r in record["adam"] if r.get("seconds_to_target") is not None]
    record["adam_fastest_to_target"] = min(hits) if hits else None
    record["adam_below_J_star"] = bool(best["best_J"] < J_star)
    if t_target:
        record["ratio_adam_time_to_best_over_convexnn_time_to_target"] = best["seconds_to_best"] / t_target
    if variant == "relu" and best.get("_gates") is not None:
        # The sampled cones need not contain Adam's units; adding the best Adam network's
        # own patterns (its first layer as gates) makes that network feasible for the
        # convex program, whose certified optimum is then at most Adam's J (up to tol)
        B.log("  convexnn with the best Adam network's patterns added ...")
        G2 = np.c_[G, best["_gates"]]
        est2 = Est(activation=activation, alpha=p.alpha, sampler=G2, tol=tol, max_iter=MAX_ITER[activation],
                   random_state=0)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est2.fit(X, y)
        c2 = est2.certificate_
        record["convexnn_with_adam_patterns"] = {
            "seconds": time.perf_counter() - t0, "n_patterns": G2.shape[1], "J_star": c2.primal, "dual": c2.dual,
            "relative_gap": c2.relative_gap, "certified": c2.converged, "width": int(est2.n_neurons_),
            "ratio_J_star_over_adam_best": c2.primal / best["best_J"],
        }
        B.log(f"  ... J*={c2.primal:.8g} ({c2.primal / best['best_J']:.5f} x Adam's best), gap {c2.relative_gap:.2e}, "
              f"{record['convexnn_with_adam_patterns']['seconds']:.1f} s")
    for r in record["adam"]:
        r.pop("_gates", None)
    return record


def main() -> None:
    args = B.cli(__doc__.splitlines()[0])
    probs = _problems(args.quick)
    for name in args.problems or list(probs):
        for activation in ACTIVATIONS:
            key = f"{name}__{activation}"
            if not args.force and B.load_result("adam", key, args.quick) is not None:
                B.log(f"adam {key}: stored result kept (use --force to recompute)")
                continue
            try:
                record = bench_problem(probs[name], activation, args.quick)
            except Exception:
                record = {"error": traceback.format_exc()[-3000:]}
                B.log(f"adam {key}: FAILED\n{record['error']}")
            B.save_result("adam", key, args.quick, record)


if __name__ == "__main__":
    main()
