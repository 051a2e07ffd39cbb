"""Real workload (issue 6, requirement 3): sentence-embedding classification head on
rt-polarity (10662 MiniLM embeddings, 384-d, 2 classes), 5-fold stratified CV.

Compared on the same folds (``StratifiedKFold(5, shuffle=True, random_state=0)``), every
model behind a ``StandardScaler`` fitted on the training fold only:

(a) ``ConvexMLPClassifier("gated_relu")``; with ``--convex-alphas a,b,c`` alpha is chosen on
    an inner stratified 80/20 validation split of each training fold, then refitted on
    the whole training fold (default: one alpha, no inner selection);
(b) ``LogisticRegression`` at the default ``C=1`` and with ``C`` chosen by an inner 3-fold
    ``GridSearchCV`` over ``--lr-Cs`` (nested CV);
(c) a one-hidden-layer ReLU MLP in PyTorch trained with Adam (mini-batch ``--batch-size``,
    ``--epochs`` fixed, no weight decay, cross-entropy), width = the convex head's neuron
    count on that fold (capped by ``--torch-max-width``), learning rate chosen over
    ``--torch-lrs`` on the same inner 80/20 split, then retrained on the training fold.

Usage::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/workload_rt_polarity.py
    .venv/bin/python benchmarks/workload_rt_polarity.py --subset 2000 --folds 2

Writes ``benchmarks/results/workload_rt_polarity.{json,md}`` (subset runs:
``..._subset{N}`` unless ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workload_fashion_mnist import environment  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "text_rt_polarity_minilm.npz"
RESULTS = REPO / "benchmarks" / "results"


def convex_fit(X, y, alpha, args):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from convexnn import ConvexMLPClassifier

    clf = ConvexMLPClassifier("gated_relu", alpha=alpha, n_patterns=args.n_patterns,
                              solver=args.convex_solver, tol=args.tol, max_iter=args.max_iter,
                              random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe = make_pipeline(StandardScaler(), clf).fit(X, y)
    return pipe, [str(w.message)[:160] for w in caught]


def torch_fit(X, y, width, lr, args, seed):
    import torch

    torch.manual_seed(seed)
    Xt = torch.as_tensor(X, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    model = torch.nn.Sequential(torch.nn.Linear(X.shape[1], width), torch.nn.ReLU(),
                                torch.nn.Linear(width, 2))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    n = len(Xt)
    for _ in range(args.epochs):
        perm = torch.randperm(n, generator=g)
        for s in range(0, n, args.batch_size):
            b = perm[s : s + args.batch_size]
            opt.zero_grad()
            loss_fn(model(Xt[b]), yt[b]).backward()
            opt.step()
    return model


def torch_score(model, X, y) -> float:
    import torch

    with torch.no_grad():
        pred = model(torch.as_tensor(X, dtype=torch.float32)).argmax(1).numpy()
    return float((pred == y).mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subset", type=int, default=None)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--convex-alphas", default="3e-3", help="comma list; >1 value: inner selection")
    ap.add_argument("--n-patterns", type=int, default=200)
    ap.add_argument("--convex-solver", default="fista")
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--max-iter", type=int, default=2000)
    ap.add_argument("--lr-Cs", default="0.01,0.03,0.1,0.3,1,3")
    ap.add_argument("--torch-lrs", default="1e-4,3e-4,1e-3,3e-3,1e-2")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--torch-max-width", type=int, default=1000)
    ap.add_argument("--skip", default="", help="comma list of models to skip: convex,logreg,torch")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    d = np.load(DATA)
    X, y = d["X"].astype(np.float64), d["y"].astype(np.int64)
    if args.subset:
        idx = np.random.default_rng(0).permutation(len(X))[: args.subset]
        X, y = X[idx], y[idx]
    skip = set(filter(None, args.skip.split(",")))
    alphas = [float(a) for a in args.convex_alphas.split(",")]
    Cs = [float(c) for c in args.lr_Cs.split(",")]
    lrs = [float(v) for v in args.torch_lrs.split(",")]
    folds = list(StratifiedKFold(args.folds, shuffle=True, random_state=0).split(X, y))

    rows: dict[str, list] = {k: [] for k in ("convex", "logreg_default", "logreg_nested", "torch_adam")}
    times = {k: 0.0 for k in rows}
    load0 = os.getloadavg()
    for k, (tr, te) in enumerate(folds):
        Xtr, ytr, Xte, yte = X[tr], y[tr], X[te], y[te]
        inner = train_test_split(np.arange(len(tr)), test_size=0.2, stratify=ytr, random_state=0)
        width = 100
        if "convex" not in skip:
            t = time.perf_counter()
            alpha, val = alphas[0], {}
            if len(alphas) > 1:
                for a in alphas:
                    p, _ = convex_fit(Xtr[inner[0]], ytr[inner[0]], a, args)
                    val[a] = float(p.score(Xtr[inner[1]], ytr[inner[1]]))
                alpha = max(val, key=lambda a: (val[a], a))
            pipe, warns = convex_fit(Xtr, ytr, alpha, args)
            times["convex"] += time.perf_counter() - t
            clf = pipe[-1]
            width = int(min(max(clf.n_neurons_, 1), args.torch_max_width))
            rows["convex"].append({
                "fold": k, "accuracy": float(pipe.score(Xte, yte)), "alpha": alpha, "val": val,
                "n_neurons": int(clf.n_neurons_), "n_iter": int(clf.n_iter_),
                "relative_gap": float(clf.certificate_.relative_gap),
                "time_s": time.perf_counter() - t, "warnings": warns})
            print("convex", rows["convex"][-1], flush=True)
        if "logreg" not in skip:
            t = time.perf_counter()
            p = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(Xtr, ytr)
            times["logreg_default"] += time.perf_counter() - t
            rows["logreg_default"].append({"fold": k, "accuracy": float(p.score(Xte, yte)), "C": 1.0})
            t = time.perf_counter()
            gs = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
                              {"logisticregression__C": Cs}, cv=3).fit(Xtr, ytr)
            times["logreg_nested"] += time.perf_counter() - t
            rows["logreg_nested"].append({"fold": k, "accuracy": float(gs.score(Xte, yte)),
                                          "C": gs.best_params_["logisticregression__C"]})
            print("logreg", rows["logreg_default"][-1], rows["logreg_nested"][-1], flush=True)
        if "torch" not in skip:
            t = time.perf_counter()
            sc = StandardScaler().fit(Xtr[inner[0]])
            val = {}
            for lr in lrs:
                m = torch_fit(sc.transform(Xtr[inner[0]]), ytr[inner[0]], width, lr, args, seed=k)
                val[lr] = torch_score(m, sc.transform(Xtr[inner[1]]), ytr[inner[1]])
            lr = max(val, key=lambda v: (val[v], -v))
            sc = StandardScaler().fit(Xtr)
            m = torch_fit(sc.transform(Xtr), ytr, width, lr, args, seed=k)
            times["torch_adam"] += time.perf_counter() - t
            rows["torch_adam"].append({"fold": k, "accuracy": torch_score(m, sc.transform(Xte), yte),
                                       "lr": lr, "val": val, "width": width,
                                       "time_s": time.perf_counter() - t})
            print("torch", rows["torch_adam"][-1], flush=True)

    summary = {}
    for name, r in rows.items():
        if r:
            acc = np.array([x["accuracy"] for x in r])
            summary[name] = {"mean": float(acc.mean()), "std": float(acc.std()),
                             "total_time_s": times[name]}
    res = {"environment": environment(), "n_samples": len(X), "n_folds": args.folds,
           "args": vars(args), "folds": rows, "summary": summary,
           "load_before": load0, "load_after": os.getloadavg()}
    stem = args.out or ("workload_rt_polarity" + (f"_subset{args.subset}" if args.subset else ""))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(res, indent=1))
    desc = {
        "convex": f"ConvexMLPClassifier gated ReLU, n_patterns={args.n_patterns}, alpha "
                  + (f"chosen from {alphas} on an inner 80/20 split" if len(alphas) > 1 else f"={alphas[0]:g}")
                  + f", tol={args.tol:g}, solver={args.convex_solver}",
        "logreg_default": "LogisticRegression C=1",
        "logreg_nested": f"LogisticRegression, C from {Cs} by inner 3-fold GridSearchCV",
        "torch_adam": f"PyTorch MLP (1 hidden ReLU layer, width = convex neurons, cap "
                      f"{args.torch_max_width}), Adam, lr from {lrs} on inner 80/20 split, "
                      f"{args.epochs} epochs, batch {args.batch_size}",
    }
    md = ["# rt-polarity (MiniLM sentence embeddings): classification heads, "
          f"{args.folds}-fold stratified CV", "",
          f"{len(X)} samples x 384, {res['environment']['date']}, convexnn at "
          f"{res['environment']['git_rev']}, {res['environment']['cpu_count']} cores, threads "
          f"{res['environment']['threads_env']}, load avg before {load0} after {res['load_after']}.", "",
          "| model | accuracy (mean ± std) | total wall time (s, all folds, incl. tuning) | details |",
          "|---|---|---|---|"]
    for name, s in summary.items():
        r = rows[name]
        extra = ""
        if name == "convex":
            extra = (f"neurons {[x['n_neurons'] for x in r]}, rel. gaps "
                     f"{[round(x['relative_gap'], 5) for x in r]}, alphas {[x['alpha'] for x in r]}")
        elif name == "logreg_nested":
            extra = f"C chosen {[x['C'] for x in r]}"
        elif name == "torch_adam":
            extra = f"lr chosen {[x['lr'] for x in r]}, widths {[x['width'] for x in r]}"
        md.append(f"| {desc[name]} | {s['mean']:.4f} ± {s['std']:.4f} | {s['total_time_s']:.1f} | {extra} |")
    (RESULTS / f"{stem}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
