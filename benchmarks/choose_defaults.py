"""Choose the default ``alpha``, ``n_patterns`` and ``sampler`` of the ConvexMLP estimators.

Usage::

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/choose_defaults.py [--quick]
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/choose_defaults.py --activation relu
    python benchmarks/choose_defaults.py [--activation relu] --report-only   # .md from the .json

Procedure
---------
1. **Data.** Real data sets from ``shared/data`` (a sibling of the repository; one that
   is missing is skipped with a message). Each is split once with a fixed seed into at
   most ``Plan.max_train`` (2000) training and ``Plan.max_test`` (1000) test rows (30 %
   of the rows go to the test side of the small sets; stratified for classification).
   ``X`` is standardised with a ``StandardScaler`` fitted on the training rows; for
   regression ``y`` is standardised with the training mean and standard deviation
   (``R^2`` is unchanged by that). Scores: test accuracy (classification), test ``R^2``
   (regression).
2. **Grid.** For each activation of the plan (``--activation``: ``"gated_relu"``, the
   default, or ``"relu"``) every ``(alpha, n_patterns)`` of ``Plan.alphas x
   Plan.n_patterns`` is fitted with ``sampler="data"`` on that activation's *grid* data
   sets, with ``tol=1e-3``, ``random_state=0`` and ``MAX_ITER[activation]`` (the
   estimators' default ``max_iter``). Each fit records the test score, the
   fit time, ``n_neurons_``, ``certificate_.relative_gap``, ``n_iter_`` and whether a
   ``ConvergenceWarning`` was raised (a failed fit is recorded with its error and ranked
   last).
3. **Choice of (alpha, n_patterns).** On each grid data set the grid points are ranked by
   test score (1 = best, ties share the mean rank); the chosen point has the best mean
   rank over the grid data sets, ties going to the larger ``alpha`` and then to fewer
   patterns (both fit faster).
4. **Choice of sampler.** ``"data"`` and ``"gaussian"`` are compared only at the middle
   grid point (middle ``alpha``, middle ``n_patterns``). ``"gaussian"`` is chosen only if
   it scores strictly higher on a strict majority of the grid data sets; otherwise
   ``"data"`` (scale-aware, the incumbent). A plan whose ``samplers`` is ``("data",)``
   (the ReLU plan, for time) skips the comparison and keeps ``"data"``.
5. **Check.** The chosen setting is fitted on every data set of the activation, including
   *check* data sets that took no part in the choice (those too slow for a full grid),
   and compared with the peer: scikit-learn's ``MLPClassifier`` / ``MLPRegressor`` with
   default settings (``random_state=0``, ``max_iter=1000``) on the same split.
6. **Output.** ``benchmarks/results/defaults.json`` (settings and every row) and
   ``benchmarks/results/defaults.md`` (tables and the computed choice) for gated ReLU;
   ``defaults_relu.*`` for ``--activation relu``; ``--quick`` writes ``defaults_quick.*``
   instead, from one tiny data set and a 2 x 2 grid. The JSON is rewritten after every
   fit, and a rerun of the same plan resumes from it (fits already in it are not
   redone; ``--fresh`` starts over). The choice is recomputed from the rows when the
   report is written, so ``--report-only`` reproduces the report (and the rules) from
   the JSON alone.

Budget: each plan is sized to finish in about 25-35 minutes on a shared 2-core machine;
``Plan.note`` says what was left out for time and is copied into the report.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sklearn
from scipy.stats import rankdata
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import StandardScaler

import convexnn
from convexnn import ConvexMLPClassifier, ConvexMLPRegressor

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO.parent / "shared" / "data"
RESULTS_DIR = REPO / "benchmarks" / "results"

CLASSIFICATION = ("pmlb_spambase", "pmlb_magic", "pmlb_satimage", "pmlb_letter")
REGRESSION = ("uci_concrete", "uci_energy", "uci_airfoil", "uci_kin40k")

SEED = 0
TOL = 1e-3
MAX_ITER = {"gated_relu": 5000, "relu": 5000}
SAMPLERS = ("data", "gaussian")


@dataclass(frozen=True)
class Plan:
    """What one run fits.

    Attributes
    ----------
    name : str
        ``"full"`` or ``"quick"``; names the output files.
    grid : dict of str to tuple of str
        Activation -> data sets on which the grid is run and the choice is made.
    check : dict of str to tuple of str
        Activation -> further data sets on which only the chosen setting is fitted.
    alphas, n_patterns : tuple
        The grid (increasing); the sampler comparison is at the middle entries.
    samplers : tuple of str
        ``SAMPLERS`` to compare ``"data"`` with ``"gaussian"``; ``("data",)`` to skip it.
    max_train, max_test : int
        Caps on the training and test rows.
    note : str
        Why the plan is what it is (copied into the markdown report).
    """

    name: str
    grid: dict
    check: dict
    alphas: tuple = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
    n_patterns: tuple = (50, 100, 200)
    samplers: tuple = SAMPLERS
    max_train: int = 2000
    max_test: int = 1000
    note: str = ""

    @property
    def activations(self) -> tuple:
        return tuple(self.grid)

    @property
    def datasets(self) -> tuple:
        """Every data set the plan touches, in a stable order."""
        names = [d for a in self.activations for d in self.grid[a] + self.check[a]]
        return tuple(dict.fromkeys(names))

    @property
    def middle(self) -> tuple:
        return self.alphas[len(self.alphas) // 2], self.n_patterns[len(self.n_patterns) // 2]


FULL = Plan(
    name="full",
    grid={
        "gated_relu": (
            "pmlb_spambase", "pmlb_magic", "uci_concrete", "uci_energy", "uci_airfoil", "uci_kin40k",
        ),
    },
    check={"gated_relu": ("pmlb_satimage", "pmlb_letter")},
    note=(
        "Shrunk to fit the ~25 min budget, from first timings at the middle grid point "
        "(alpha=1e-3, 100 patterns, 2000 training rows, shared 2-core machine): gated ReLU "
        "takes ~3 s a fit on the binary and regression sets but ~120 s on satimage (6 "
        "classes) and 60-180 s on letter (26 classes), so the multi-class sets are check "
        "sets, not grid sets. The ReLU rows of `defaults.json` (augmented Lagrangian, "
        "max_iter=2000, none converged) are superseded by `defaults_relu.*` "
        "(`--activation relu`, FISTA with the exact cone prox)."
    ),
)

RELU = Plan(
    name="relu",
    grid={"relu": ("uci_energy", "uci_concrete", "pmlb_magic", "uci_kin40k")},
    check={"relu": ("uci_airfoil",)},
    alphas=(1e-3, 3e-3, 1e-2),
    n_patterns=(100, 200, 400),
    samplers=("data",),
    note=(
        "Sized to the ~35 min budget of a shared 2-core machine (two other jobs running) "
        "from first ReLU timings (FISTA with the exact cone prox, tol=1e-3): 13-26 s a fit "
        "at alpha=3e-3 with 200 patterns and 125-235 s at alpha=1e-3 with 400 patterns on "
        "the regression sets and magic. The grid is 3 x 3 around the gated defaults. A "
        "full grid took ~7 min on energy, ~7.5 min on concrete and ~7 min on magic, so "
        "airfoil (started on the grid, then moved) is a check set only; the grid keeps magic "
        "(the only classification grid set) and kin40k (where gated ReLU is furthest behind "
        "the MLP; its grid alone took ~15 min, which put the run over budget). Left out for "
        "time: spambase (57 features, the slowest operator) and the multi-class sets "
        "(satimage, letter: one cone program per class); the sampler comparison is skipped "
        "(\"data\" only)."
    ),
)

PLANS = {"gated_relu": FULL, "relu": RELU}

QUICK = Plan(
    name="quick",
    grid={"gated_relu": ("uci_energy",), "relu": ("uci_energy",)},
    check={"gated_relu": (), "relu": ()},
    alphas=(1e-3, 1e-2),
    n_patterns=(20, 50),
    max_train=200,
    max_test=100,
    note="Smoke test: one tiny data set, a 2 x 2 grid, 200 training rows.",
)


# -- data ---------------------------------------------------------------------------------
@dataclass
class Split:
    """A standardised train/test split of one data set."""

    name: str
    task: str  # "classification" or "regression"
    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    n_classes: int | None = None

    def describe(self) -> dict:
        return {
            "dataset": self.name,
            "task": self.task,
            "n_train": int(self.X_train.shape[0]),
            "n_test": int(self.X_test.shape[0]),
            "n_features": int(self.X_train.shape[1]),
            "n_classes": self.n_classes,
        }


def load_split(name: str, max_train: int, max_test: int, seed: int = SEED) -> Split | None:
    """Load ``name`` from :data:`DATA_DIR`, subsample, split and standardise it.

    Returns ``None`` (after a message) when the file is missing.
    """
    path = DATA_DIR / f"{name}.npz"
    if not path.exists():
        print(f"skipping {name}: {path} not found", flush=True)
        return None
    with np.load(path) as data:
        X, y = data["X"].astype(np.float64), data["y"]
    task = "classification" if name in CLASSIFICATION else "regression"
    n_test = min(max_test, int(round(0.3 * len(y))))
    n_train = min(max_train, len(y) - n_test)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, train_size=n_train, test_size=n_test, random_state=seed,
        stratify=y if task == "classification" else None,
    )
    scaler = StandardScaler().fit(X_tr)
    X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
    if task == "regression":
        mean, std = y_tr.astype(np.float64).mean(), y_tr.astype(np.float64).std()
        y_tr, y_te = (y_tr - mean) / std, (y_te - mean) / std
        return Split(name, task, X_tr, X_te, y_tr, y_te)
    return Split(name, task, X_tr, X_te, y_tr, y_te, n_classes=int(np.unique(y).size))


# -- fitting ------------------------------------------------------------------------------
def timed_fit(estimator, split: Split) -> dict:
    """Fit ``estimator`` on the training rows and score it on the test rows.

    Returns the score, the fit time, whether a ``ConvergenceWarning`` was raised and
    the error message of a failed fit (score ``nan``).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        try:
            estimator.fit(split.X_train, split.y_train)
            error = None
        except Exception as exc:  # a failure is a result to report, not a crash
            error = f"{type(exc).__name__}: {exc}"
        fit_time = time.perf_counter() - start
    score = float("nan") if error else float(estimator.score(split.X_test, split.y_test))
    warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return {"score": score, "fit_time": fit_time, "convergence_warning": warned, "error": error}


def fit_convex(split: Split, activation: str, alpha: float, n_patterns: int, sampler: str) -> dict:
    """One ConvexMLP fit; returns its result row."""
    Estimator = ConvexMLPClassifier if split.task == "classification" else ConvexMLPRegressor
    est = Estimator(
        activation, alpha=alpha, n_patterns=n_patterns, sampler=sampler, tol=TOL,
        max_iter=MAX_ITER[activation], random_state=SEED,
    )
    row = {"model": "convex", "activation": activation, "alpha": alpha,
           "n_patterns": n_patterns, "sampler": sampler, **split.describe(), **timed_fit(est, split)}
    fitted = row["error"] is None
    row["n_neurons"] = int(est.n_neurons_) if fitted else None
    row["relative_gap"] = float(est.certificate_.relative_gap) if fitted else None
    row["n_iter"] = int(est.n_iter_) if fitted else None
    return row


def fit_mlp(split: Split) -> dict:
    """The peer: scikit-learn's MLP with default settings (``max_iter=1000``)."""
    Estimator = MLPClassifier if split.task == "classification" else MLPRegressor
    est = Estimator(random_state=SEED, max_iter=1000)
    row = {"model": "mlp", "activation": "relu", "alpha": est.alpha, "n_patterns": None,
           "sampler": None, **split.describe(), **timed_fit(est, split)}
    row["n_iter"] = int(est.n_iter_) if row["error"] is None else None
    return row


def find_row(rows, dataset, activation, alpha, n_patterns, sampler) -> dict | None:
    """The ConvexMLP row with these settings, or ``None``."""
    key = ("convex", dataset, activation, alpha, n_patterns, sampler)
    return next((r for r in rows if (r["model"], r["dataset"], r["activation"], r["alpha"],
                                     r["n_patterns"], r["sampler"]) == key), None)


def score_of(rows, *key) -> float:
    """Test score of :func:`find_row`'s row (``nan`` when missing or failed)."""
    row = find_row(rows, *key)
    return float("nan") if row is None else row["score"]


class Runner:
    """Runs fits once each, prints a progress line per fit and checkpoints the rows."""

    def __init__(self, plan: Plan, json_path: Path, resume: bool = True):
        self.plan = plan
        self.json_path = json_path
        self.rows: list[dict] = []
        self.previous_s = 0.0  # compute time of the runs this one resumes
        if resume and json_path.exists():
            saved = json.loads(json_path.read_text())
            mine, theirs = settings(plan), saved["settings"]
            # the settings every fit depends on; a row is found by its own (data set,
            # activation, alpha, n_patterns, sampler), so the plan's lists may change
            keys = ("plan", "tol", "max_iter", "random_state", "max_train", "max_test")
            # JSON turns tuples into lists: compare both through JSON
            if all(json.dumps(mine[k]) == json.dumps(theirs.get(k)) for k in keys):
                self.rows = saved["rows"]
                self.previous_s = float(saved["elapsed_s"])
                print(f"resuming from {json_path.name}: {len(self.rows)} rows, "
                      f"{self.previous_s / 60:.1f} min", flush=True)
            else:
                sys.exit(f"{json_path} holds rows fitted with other settings: use --fresh to overwrite it")
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return self.previous_s + time.perf_counter() - self.start

    def _record(self, row: dict) -> dict:
        self.rows.append(row)
        if row["model"] == "mlp":
            what = "sklearn MLP"
        else:
            what = (f"{row['activation']:<10} alpha={row['alpha']:.0e} "
                    f"P={row['n_patterns']:<3} {row['sampler']:<8}")
        if row["error"]:
            tail = f"FAILED {row['error']}"
        else:
            tail = f"score={row['score']:.4f} time={row['fit_time']:6.1f}s"
            if row["model"] == "convex":
                tail += f" gap={row['relative_gap']:.1e} neurons={row['n_neurons']}"
            tail += " ConvergenceWarning" if row["convergence_warning"] else ""
        print(f"[{self.elapsed():7.1f}s] {row['dataset']:<14} {what} {tail}", flush=True)
        self.save()
        return row

    def convex(self, split: Split, activation: str, alpha: float, n_patterns: int, sampler: str) -> dict:
        """The row of this fit, fitting it if it has not been run yet."""
        row = find_row(self.rows, split.name, activation, alpha, n_patterns, sampler)
        return row or self._record(fit_convex(split, activation, alpha, n_patterns, sampler))

    def mlp(self, split: Split) -> dict:
        row = next((r for r in self.rows if r["model"] == "mlp" and r["dataset"] == split.name), None)
        return row or self._record(fit_mlp(split))

    def save(self, extra: dict | None = None) -> None:
        payload = {"settings": settings(self.plan), "elapsed_s": self.elapsed(), **(extra or {}),
                   "rows": self.rows}
        self.json_path.write_text(json.dumps(payload, indent=1, default=float))


def settings(plan: Plan) -> dict:
    return {
        "plan": plan.name,
        "grid_datasets": plan.grid,
        "check_datasets": plan.check,
        "alphas": plan.alphas,
        "n_patterns": plan.n_patterns,
        "samplers": plan.samplers,
        "sampler_comparison_at": plan.middle,
        "tol": TOL,
        "max_iter": MAX_ITER,
        "random_state": SEED,
        "max_train": plan.max_train,
        "max_test": plan.max_test,
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
            "convexnn": convexnn.__version__,
        },
        "convexnn_source": str(Path(convexnn.__file__).parent),
        "machine": platform.platform(),
    }


# -- choosing -----------------------------------------------------------------------------
@dataclass
class Choice:
    """The computed defaults of one activation and the evidence for them."""

    activation: str
    alpha: float
    n_patterns: int
    sampler: str
    mean_rank: dict = field(default_factory=dict)  # (alpha, P) -> mean rank
    sampler_wins: dict = field(default_factory=dict)  # sampler -> number of data sets won


def grid_scores(rows: list[dict], plan: Plan, activation: str, datasets: tuple) -> np.ndarray:
    """Scores of the ``data``-sampler grid, shape ``(n_points, n_datasets)`` (``nan``: failed)."""
    points = [(a, p) for a in plan.alphas for p in plan.n_patterns]
    S = np.full((len(points), len(datasets)), np.nan)
    for r in rows:
        grid_row = (r["model"], r["activation"], r["sampler"]) == ("convex", activation, "data")
        if grid_row and r["dataset"] in datasets:
            key = (r["alpha"], r["n_patterns"])
            if key in points:
                S[points.index(key), datasets.index(r["dataset"])] = r["score"]
    return S


def choose(rows: list[dict], plan: Plan, activation: str, datasets: tuple) -> Choice:
    """Apply the selection rules of the module docstring (steps 3 and 4)."""
    points = [(a, p) for a in plan.alphas for p in plan.n_patterns]
    S = grid_scores(rows, plan, activation, datasets)
    # rank 1 = best; a failed fit (nan) ranks below every finished one
    ranks = np.column_stack([rankdata(-np.nan_to_num(s, nan=-np.inf)) for s in S.T])
    mean_rank = dict(zip(points, ranks.mean(axis=1)))
    alpha, n_patterns = min(points, key=lambda ap: (round(mean_rank[ap], 9), -ap[0], ap[1]))

    if "gaussian" not in plan.samplers:
        return Choice(activation, alpha, n_patterns, "data", mean_rank, {})
    a_mid, p_mid = plan.middle
    by_sampler = {
        s: np.array([score_of(rows, d, activation, a_mid, p_mid, s) for d in datasets]) for s in SAMPLERS
    }
    gauss, data = (np.nan_to_num(by_sampler[s], nan=-np.inf) for s in ("gaussian", "data"))
    wins = {"gaussian": int((gauss > data).sum()), "data": int((data > gauss).sum())}
    sampler = "gaussian" if wins["gaussian"] > len(datasets) / 2 else "data"
    return Choice(activation, alpha, n_patterns, sampler, mean_rank, wins)


# -- reporting ----------------------------------------------------------------------------
def md_table(header: list[str], body: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def fmt(x, spec=".4f") -> str:
    return "—" if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, spec)


def mean_or_nan(values) -> float:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else float("nan")


def max_or_nan(values) -> float:
    values = [v for v in values if v is not None]
    return float(np.max(values)) if values else float("nan")


def median_or_nan(values) -> float:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else float("nan")


def activation_section(rows, plan: Plan, choice: Choice, mlp: dict) -> str:
    """Markdown for one activation: grid means, per-data-set scores and bests, sampler.

    ``mlp`` maps each available data set to its MLP row (which also describes the data).
    """
    act = choice.activation
    grid_sets = tuple(d for d in plan.grid[act] if d in mlp)
    clf = [d for d in grid_sets if mlp[d]["task"] == "classification"]
    reg = [d for d in grid_sets if mlp[d]["task"] == "regression"]
    S = grid_scores(rows, plan, act, grid_sets)
    points = [(a, p) for a in plan.alphas for p in plan.n_patterns]

    def grid_row(a, p, s="data"):
        return [r for r in rows if r["model"] == "convex" and r["activation"] == act and r["alpha"] == a
                and r["n_patterns"] == p and r["sampler"] == s and r["dataset"] in grid_sets]

    out = [f"## {act}", "",
           f"Grid data sets: {', '.join(grid_sets)}. "
           f"Check data sets: {', '.join(plan.check[act]) or 'none'}. "
           f"max_iter={MAX_ITER[act]}, tol={TOL:g}.", "",
           "### Mean over grid data sets (sampler = \"data\")", ""]
    body = []
    for i, (a, p) in enumerate(points):
        rs = grid_row(a, p)
        mark = " **←**" if (a, p) == (choice.alpha, choice.n_patterns) else ""
        body.append([f"{a:g}", p,
                     fmt(mean_or_nan([S[i, grid_sets.index(d)] for d in clf])),
                     fmt(mean_or_nan([S[i, grid_sets.index(d)] for d in reg])),
                     f"{choice.mean_rank[(a, p)]:.2f}{mark}",
                     fmt(mean_or_nan([r["fit_time"] for r in rs]), ".1f"),
                     fmt(median_or_nan([r["relative_gap"] for r in rs]), ".1e"),
                     fmt(max_or_nan([r["relative_gap"] for r in rs]), ".1e"),
                     f"{sum(r['convergence_warning'] for r in rs)}/{len(rs)}"])
    body.append(["MLP (sklearn default)", "—",
                 fmt(mean_or_nan([mlp[d]["score"] for d in clf])),
                 fmt(mean_or_nan([mlp[d]["score"] for d in reg])), "—",
                 fmt(mean_or_nan([mlp[d]["fit_time"] for d in grid_sets]), ".1f"), "—", "—",
                 f"{sum(mlp[d]['convergence_warning'] for d in grid_sets)}/{len(grid_sets)}"])
    out += [md_table(["alpha", "n_patterns", "mean accuracy", "mean R²", "mean rank",
                      "mean fit time (s)", "median rel. gap", "max rel. gap", "ConvergenceWarnings"],
                     body), ""]

    out += ["### Test score per grid data set (sampler = \"data\")", ""]
    body = [[f"{a:g}", p] + [fmt(S[i, j]) for j in range(len(grid_sets))] for i, (a, p) in enumerate(points)]
    body.append(["MLP", "—"] + [fmt(mlp[d]["score"]) for d in grid_sets])
    out += [md_table(["alpha", "n_patterns"] + list(grid_sets), body), ""]

    out += ["### Fit time (s) and relative gap per grid data set (sampler = \"data\"; "
            "* = ConvergenceWarning)", ""]
    body = []
    for a, p in points:
        cells = []
        for d in grid_sets:
            r = find_row(rows, d, act, a, p, "data")
            cells.append("—" if r is None or r["error"] else
                         f"{r['fit_time']:.1f} / {r['relative_gap']:.1e}"
                         + ("*" if r["convergence_warning"] else ""))
        body.append([f"{a:g}", p] + cells)
    body.append(["MLP", "—"] + [fmt(mlp[d]["fit_time"], ".1f") for d in grid_sets])
    out += [md_table(["alpha", "n_patterns"] + list(grid_sets), body), ""]

    out += ["### Per-data-set best", ""]
    body = []
    for j, d in enumerate(grid_sets):
        col = np.nan_to_num(S[:, j], nan=-np.inf)
        best = int(np.argmax(col))
        chosen = points.index((choice.alpha, choice.n_patterns))
        body.append([d, f"alpha={points[best][0]:g}, P={points[best][1]}", fmt(S[best, j]),
                     fmt(S[chosen, j]), fmt(mlp[d]["score"])])
    out += [md_table(["data set", "best grid point", "best score", "chosen score", "MLP score"], body), ""]

    if "gaussian" not in plan.samplers:
        out += ["### Sampler", "", "Not compared in this plan: every fit uses sampler=\"data\".", ""]
        return "\n".join(out)
    a_mid, p_mid = plan.middle
    out += [f"### Sampler (alpha={a_mid:g}, n_patterns={p_mid})", ""]
    body = []
    for d in grid_sets:
        r = {s: find_row(rows, d, act, a_mid, p_mid, s) for s in SAMPLERS}
        body.append([d] + [fmt(r[s]["score"] if r[s] else None) for s in SAMPLERS]
                    + [fmt(r[s]["fit_time"] if r[s] else None, ".1f") for s in SAMPLERS])
    header = ["data set", "score data", "score gaussian", "time data (s)", "time gaussian (s)"]
    out += [md_table(header, body), ""]
    out += [f"Wins: data {choice.sampler_wins['data']}, gaussian {choice.sampler_wins['gaussian']} "
            f"(of {len(grid_sets)}).", ""]
    return "\n".join(out)


def choice_section(rows, plan: Plan, choice: Choice, mlp: dict) -> str:
    """The computed-defaults paragraph and the per-data-set comparison with MLP."""
    act = choice.activation
    sets = [d for d in plan.grid[act] + plan.check[act] if d in mlp]
    body, deltas, unconverged = [], [], 0
    for d in sets:
        r = find_row(rows, d, act, choice.alpha, choice.n_patterns, choice.sampler)
        if r is None or r["error"]:  # an interrupted run, or a failed fit (listed below)
            continue
        m = mlp[d]
        delta = r["score"] - m["score"]
        deltas.append(delta)
        unconverged += bool(r["convergence_warning"])
        metric = "accuracy" if mlp[d]["task"] == "classification" else "R²"
        body.append([d, "grid" if d in plan.grid[act] else "check", metric, fmt(r["score"]), fmt(m["score"]),
                     fmt(delta, "+.4f"), fmt(r["fit_time"], ".1f"), fmt(m["fit_time"], ".1f"),
                     fmt(r["relative_gap"], ".1e"), "yes" if r["convergence_warning"] else "no"])
    better = sum(x > 0 for x in deltas)
    text = (f"**{act}: alpha={choice.alpha:g}, n_patterns={choice.n_patterns}, "
            f"sampler=\"{choice.sampler}\"** "
            f"(best mean rank {choice.mean_rank[(choice.alpha, choice.n_patterns)]:.2f} of "
            f"{len(choice.mean_rank)} grid points over {len(plan.grid[act])} grid data sets). "
            f"Against sklearn's default MLP it scores higher on {better} of {len(deltas)} data sets "
            f"(mean difference {np.nanmean(deltas):+.4f}).")
    edges = [f"{side} {name}" for name, values, value in
             (("alpha", plan.alphas, choice.alpha), ("n_patterns", plan.n_patterns, choice.n_patterns))
             for side, end in (("smallest", values[0]), ("largest", values[-1])) if value == end]
    if edges:
        text += (f" The choice is on the edge of the grid ({', '.join(edges)}): "
                 "the best setting may lie outside it.")
    if unconverged:
        text += (f" Caution: {unconverged} of {len(deltas)} of these fits stopped at max_iter={MAX_ITER[act]} "
                 f"above tol={TOL:g} (ConvergenceWarning), so their scores are those of unconverged "
                 "solutions and the choice is made among early-stopped fits.")
    table = md_table(["data set", "role", "metric", "convex (chosen)", "MLP", "Δ", "convex time (s)",
                      "MLP time (s)", "rel. gap", "ConvergenceWarning"], body)
    return f"### {act}\n\n{text}\n\n{table}\n"


def write_markdown(path: Path, rows, plan: Plan, elapsed: float) -> dict:
    """Recompute the choices from ``rows`` and write the report; returns the choices."""
    mlp = {r["dataset"]: r for r in rows if r["model"] == "mlp"}
    choices = {act: choose(rows, plan, act, grid_sets) for act in plan.activations
               if (grid_sets := tuple(d for d in plan.grid[act] if d in mlp))}
    failures = [r for r in rows if r["error"]]
    data_lines = [f"- {d}: {r['task']}, {r['n_train']} train / {r['n_test']} test rows, "
                  f"{r['n_features']} features" + (f", {r['n_classes']} classes" if r["n_classes"] else "")
                  for d, r in mlp.items()]
    parts = [
        f"# Choosing the ConvexMLP defaults ({plan.name} run)", "",
        "Generated by `benchmarks/choose_defaults.py` (procedure in its docstring); all rows are in "
        f"`{path.with_suffix('.json').name}`. Scores are test accuracy (classification) and test R² "
        "(regression). `alpha` multiplies ½|W|² added to the *mean* loss (DESIGN.md §1), so it is not "
        f"sklearn's MLP `alpha` (that one is divided by n_samples). Total runtime: {elapsed / 60:.1f} min.",
        "", f"**Plan.** {plan.note}", "", "Data (seed 0, X standardised on train, regression y too):", "",
        *data_lines, "", "## Chosen defaults", "",
        "Rule: the (alpha, n_patterns) with the best mean rank of test score across the grid data sets "
        "(ties: larger alpha, then fewer patterns); "
        + ("sampler \"gaussian\" only if it beats \"data\" on a strict majority of grid data sets at "
           "the middle grid point. " if "gaussian" in plan.samplers else "sampler \"data\" (not compared). ")
        + "The chosen setting is then compared with sklearn's default MLP on every data set, check sets "
        "included. It is the rule's outcome on this grid, not necessarily the estimators' default "
        "(README, \"How the defaults were chosen\").", "",
        *[choice_section(rows, plan, c, mlp) for c in choices.values()],
        *[activation_section(rows, plan, c, mlp) for c in choices.values()],
        "## Failures", "",
        "\n".join(f"- {r['dataset']} {r['activation']} alpha={r['alpha']} P={r['n_patterns']}: {r['error']}"
                  for r in failures) or "None.", "",
    ]
    path.write_text("\n".join(parts))
    return choices


# -- main ---------------------------------------------------------------------------------
def output_paths(plan: Plan) -> tuple[Path, Path]:
    stem = "defaults" if plan.name == "full" else f"defaults_{plan.name}"
    return RESULTS_DIR / f"{stem}.json", RESULTS_DIR / f"{stem}.md"


def run(plan: Plan, resume: bool = True) -> None:
    """Fit everything the plan asks for, then write the JSON rows and the report."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    json_path, md_path = output_paths(plan)
    runner = Runner(plan, json_path, resume=resume)
    splits = {}
    for name in plan.datasets:
        split = load_split(name, plan.max_train, plan.max_test)
        if split is not None:
            splits[name] = split
    if not splits:
        sys.exit(f"no data sets found under {DATA_DIR}")

    for split in splits.values():
        runner.mlp(split)
    for act in plan.activations:
        grid_sets = tuple(d for d in plan.grid[act] if d in splits)
        if not grid_sets:
            print(f"skipping {act}: none of its grid data sets is available", flush=True)
            continue
        for d in grid_sets:
            for alpha in plan.alphas:
                for p in plan.n_patterns:
                    runner.convex(splits[d], act, alpha, p, "data")
            if "gaussian" in plan.samplers:
                runner.convex(splits[d], act, *plan.middle, "gaussian")
        choice = choose(runner.rows, plan, act, grid_sets)
        print(f"chosen for {act}: alpha={choice.alpha:g} n_patterns={choice.n_patterns} "
              f"sampler={choice.sampler}", flush=True)
        for d in grid_sets + tuple(d for d in plan.check[act] if d in splits):
            runner.convex(splits[d], act, choice.alpha, choice.n_patterns, choice.sampler)

    elapsed = runner.elapsed()
    choices = write_markdown(md_path, runner.rows, plan, elapsed)
    runner.save({"chosen": {a: {"alpha": c.alpha, "n_patterns": c.n_patterns, "sampler": c.sampler}
                            for a, c in choices.items()}})
    print(f"done in {elapsed / 60:.1f} min: {json_path} and {md_path.name}", flush=True)


def report_only(plan: Plan) -> None:
    """Rewrite the markdown report from the saved JSON rows, without fitting."""
    json_path, md_path = output_paths(plan)
    saved = json.loads(json_path.read_text())
    write_markdown(md_path, saved["rows"], plan, saved["elapsed_s"])
    print(f"rewrote {md_path} from {json_path.name}", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--activation", choices=tuple(PLANS), default="gated_relu",
                        help="whose grid to run: gated_relu (defaults.*) or relu (defaults_relu.*)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test on one tiny data set (both activations)")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the markdown report from the saved JSON without fitting")
    parser.add_argument("--fresh", action="store_true",
                        help="ignore the saved JSON of this plan instead of resuming from it")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else PLANS[args.activation]
    if args.report_only:
        report_only(plan)
    else:
        run(plan, resume=not args.fresh)


if __name__ == "__main__":
    main()
