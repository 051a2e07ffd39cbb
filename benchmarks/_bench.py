"""Shared pieces of the speed benchmarks (issue 3): problems, programs, peers, results.

Every ``speed_*.py`` script imports this module. It holds

- the **problems** (data set, targets, number of gates, ``alpha``) in a full and a
  ``--quick`` size, built deterministically from a seed;
- the **program** every method solves: convexnn's own :class:`~convexnn.programs.ConvexProgram`
  over explicit gates, with the squared loss for the peer comparisons (pyscnn supports
  the squared loss only) and :class:`~convexnn.penalties.ColumnGroupL2` (one group per
  pattern *and output*, which is what pyscnn's ``NeuronGL1`` does with several outputs);
- the **pyscnn** adapters and the **objective mapping** (checked, not assumed: see
  :func:`pyscnn_objective_check`);
- the **result store**: one JSON file per (benchmark, problem) under
  ``benchmarks/results/speed/`` (``speed_quick/`` for ``--quick``); a file that exists is
  reused, so an interrupted run resumes where it stopped (``--force`` recomputes).

Objective mapping (pyscnn 0.0.10, verified by :func:`pyscnn_objective_check` at every run)
-----------------------------------------------------------------------------------
pyscnn minimises ``||sum_k D_k Xa u_k - Y||_F^2 / (2 n c) + lam * sum_{k,c} ||u_{c,k}||_2``
with ``c`` outputs: its squared loss is the *mean over all n c entries* (measured: with
digits' 10 one-hot outputs its logged objective is ours at its weights divided by 10
exactly when the loss is scaled so, 0.78 off otherwise). ``NeuronGL1`` takes the 2-norm
over the last, feature axis of weights shaped ``(c, P, d + 1)``, i.e. one group per
pattern and output. convexnn's gated program with the squared loss and uniform weights
``1/n`` is ``mean_i 1/2 |f_i - y_i|^2 + alpha * sum_k sum_c ||V_k[:, c]||`` plus a free
intercept (the loss sums over outputs). So pyscnn's objective is ``J / c`` for
``alpha = c * lam`` (:func:`convexnn_alpha`): the problems' ``alpha`` is pyscnn's ``lam``
(the issue's peer runs), and with one output the two coincide. The programs are then
identical except for convexnn's free output intercept (which can only lower convexnn's
optimum). pyscnn's weights map to convexnn's by ``coef = W.transpose(1, 2, 0)``; its
(possibly re-ordered) gates are used for the operator that evaluates its solution.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
DATA_DIR = REPO.parent / "shared" / "data"
RESULTS = BENCH / "results"
ADELIE_PYTHON = BENCH / ".venv-adelie" / "bin" / "python"
SEED = 0


# ----------------------------------------------------------------------------------------
# problems
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """One benchmark problem.

    Attributes
    ----------
    name : str
        Key used in file names and tables.
    source : str
        ``"sklearn:breast_cancer"``, ``"sklearn:digits"``, ``"synthetic"`` or
        ``"shared:<file stem>"`` (a file of ``../shared/data``).
    task : str
        ``"binary"`` (targets +-1 for the squared loss), ``"multiclass"`` (one-hot
        targets, one output per class) or ``"regression"`` (standardised targets).
    n_patterns : int
        Gates sampled with convexnn's ``DataSampler`` (``random_state=0``).
    alpha : float
        Regularisation as pyscnn's ``lam`` (convexnn's ``alpha`` is ``lam`` times the
        number of outputs, :func:`convexnn_alpha`; adelie's ``lmda``, single-output).
    max_rows : int or None
        Rows kept (a seeded random subset) -- ``None`` keeps all.
    synthetic_shape : tuple
        ``(n_samples, n_features)`` for ``source="synthetic"``.
    pyscnn_max_iter : int or None
        Cap on pyscnn's iterations (``None``: its default 10000). A cap makes the
        speed-up a *lower bound* (pyscnn would have run longer); tables say so.
    """

    name: str
    source: str
    task: str
    n_patterns: int = 500
    alpha: float = 1e-3
    max_rows: int | None = None
    synthetic_shape: tuple = (20000, 100)
    pyscnn_max_iter: int | None = None


FULL_PROBLEMS = {
    "breast_cancer": Problem("breast_cancer", "sklearn:breast_cancer", "binary"),
    "digits": Problem("digits", "sklearn:digits", "multiclass"),
    "synthetic": Problem("synthetic", "synthetic", "regression", pyscnn_max_iter=300),
    "magic": Problem("magic", "shared:pmlb_magic", "binary", pyscnn_max_iter=1000),
    "protein": Problem("protein", "shared:uci_protein", "regression", pyscnn_max_iter=1000),
}

QUICK_PROBLEMS = {
    "breast_cancer": Problem("breast_cancer", "sklearn:breast_cancer", "binary", n_patterns=20, pyscnn_max_iter=500),
    "digits": Problem("digits", "sklearn:digits", "multiclass", n_patterns=10, max_rows=300, pyscnn_max_iter=500),
    "synthetic": Problem(
        "synthetic", "synthetic", "regression", n_patterns=20, synthetic_shape=(1000, 20), pyscnn_max_iter=500
    ),
    "magic": Problem("magic", "shared:pmlb_magic", "binary", n_patterns=20, max_rows=1000, pyscnn_max_iter=500),
    "protein": Problem(
        "protein", "shared:uci_protein", "regression", n_patterns=20, max_rows=1000, pyscnn_max_iter=500
    ),
}


def problems(quick: bool) -> dict[str, Problem]:
    """The problem set of a full or a ``--quick`` run."""
    return QUICK_PROBLEMS if quick else FULL_PROBLEMS


def _synthetic(n: int, d: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A planted two-layer ReLU network (20 units) plus 10 % noise, Gaussian inputs."""
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((d, 20)) / np.sqrt(d)
    a = rng.standard_normal(20)
    f = np.maximum(X @ W, 0) @ a
    y = f + 0.1 * f.std() * rng.standard_normal(n)
    return X, y


def load(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """Standardised ``X`` (n, d) and targets ``Y`` (n, c) for the squared loss.

    Binary labels become ``+-1``, several classes one-hot columns, regression targets
    are standardised. ``X`` is standardised with its own mean and standard deviation
    (training data only: the benchmarks measure optimisation, not generalisation).
    """
    rng = np.random.default_rng(SEED)
    kind, _, name = problem.source.partition(":")
    if kind == "sklearn":
        from sklearn import datasets

        X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    elif kind == "synthetic":
        X, y = _synthetic(*problem.synthetic_shape, rng)
    elif kind == "shared":
        path = DATA_DIR / f"{name}.npz"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: the shared data sets live in ../shared/data")
        with np.load(path, allow_pickle=False) as f:
            X, y = f["X"], f["y"]
    else:
        raise ValueError(f"unknown problem source {problem.source!r}")
    X = np.asarray(X, dtype=float)
    y = np.asarray(y)
    if problem.max_rows is not None and X.shape[0] > problem.max_rows:
        keep = np.sort(rng.choice(X.shape[0], problem.max_rows, replace=False))
        X, y = X[keep], y[keep]
    std = X.std(axis=0)
    std[std == 0] = 1.0
    X = (X - X.mean(axis=0)) / std
    if problem.task == "binary":
        classes = np.unique(y)
        Y = np.where(y == classes[1], 1.0, -1.0)[:, None]
    elif problem.task == "multiclass":
        classes, codes = np.unique(y, return_inverse=True)
        Y = np.eye(len(classes))[codes]
    else:
        y = y.astype(float)
        Y = ((y - y.mean()) / y.std())[:, None]
    return X, Y


def gates(X: np.ndarray, n_patterns: int) -> np.ndarray:
    """convexnn's ``DataSampler`` gates (``random_state=0``), shape ``(d + 1, P)``."""
    from convexnn.patterns import DataSampler

    return DataSampler(n_patterns).sample(X, SEED).gates


def convexnn_alpha(lam: float, n_outputs: int) -> float:
    """convexnn's ``alpha`` for pyscnn's ``lam``: pyscnn averages the squared loss over
    all ``n * n_outputs`` entries, convexnn over the ``n`` rows (module docstring)."""
    return float(lam) * int(n_outputs)


def program(X: np.ndarray, Y: np.ndarray, G: np.ndarray, alpha: float, relu: bool = False):
    """The squared-loss gated (or, with ``relu``, cone-constrained) program over gates ``G``."""
    from convexnn.losses import SquaredLoss
    from convexnn.operators import ConeOperator, GatedOperator
    from convexnn.penalties import ColumnGroupL2
    from convexnn.programs import ConvexProgram

    op = GatedOperator(X, G)
    if relu:
        op = ConeOperator(op)
    n = X.shape[0]
    return ConvexProgram(SquaredLoss(), ColumnGroupL2(), op, Y, np.full(n, 1.0 / n), float(alpha))


# ----------------------------------------------------------------------------------------
# convexnn
# ----------------------------------------------------------------------------------------
def solve_convexnn(X, Y, G, alpha, *, tol, max_iter, relu=False, solver=None) -> dict:
    """Build the program and solve it with convexnn's default solver; time everything.

    The clock covers operator construction (masks), the solve and the final
    certificate, i.e. what a user waits for. Returns the certificate numbers, the
    solution and the solver's history (time, primal, dual at each gap check).
    """
    from convexnn.certificates import certify
    from convexnn.solvers import make_solver

    t0 = time.perf_counter()
    prog = program(X, Y, G, alpha, relu=relu)
    t_setup = time.perf_counter()
    solver = solver if solver is not None else make_solver("auto", program=prog)
    sol = solver.solve(prog, tol=tol, max_iter=max_iter)
    coef = prog.make_feasible(sol.coef) if relu else sol.coef
    cert = certify(
        prog, coef, sol.intercept, sol.dual_points,
        activation="relu" if relu else "gated_relu", tol=tol, refine=relu,
    )
    seconds = time.perf_counter() - t0
    h = sol.history
    return {
        "seconds": seconds,
        "setup_seconds": t_setup - t0,
        "primal": cert.primal,
        "dual": cert.dual,
        "relative_gap": cert.relative_gap,
        "certified": bool(cert.relative_gap <= tol),
        "cone_violation": cert.cone_violation,
        "n_iter": int(sol.n_iter),
        "solver": solver.name,
        "n_active_blocks": int(np.count_nonzero(np.linalg.norm(coef, axis=1).max(axis=1))),
        # the process's peak so far (Linux: KiB); convexnn runs before any peer in a process
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "history": thin({"time": list(h.time), "primal": list(h.primal), "dual": list(h.dual)}),
        "_coef": coef,
        "_intercept": sol.intercept,
        "_program": prog,
    }


def public(result: dict) -> dict:
    """``result`` without the private (``_``-prefixed, non-JSON) entries."""
    return {k: v for k, v in result.items() if not k.startswith("_")}


def repeat(fn, *, cheap_seconds: float, max_repeats: int) -> tuple[dict, list[float]]:
    """Run ``fn()`` once, and up to ``max_repeats`` times in all while a run is cheap.

    Returns the result of the median-time run and all times (DESIGN.md §4: medians of
    several runs where cheap).
    """
    runs = [fn()]
    while len(runs) < max_repeats and runs[0]["seconds"] < cheap_seconds:
        runs.append(fn())
    times = [r["seconds"] for r in runs]
    med = statistics.median(times)
    best = min(runs, key=lambda r: abs(r["seconds"] - med))
    return best, times


def thin(history: dict, keep: int = 300) -> dict:
    """At most ``keep`` evenly spaced entries of each list (always the last one)."""
    lengths = {len(v) for v in history.values()}
    m = max(lengths, default=0)
    if m <= keep:
        return history
    idx = sorted(set(np.linspace(0, m - 1, keep).round().astype(int).tolist()))
    return {k: [v[i] for i in idx] for k, v in history.items()}


def time_to(history: dict, target: float, total_seconds: float) -> float | None:
    """Wall time until the history's primal first drops to ``target``.

    The solver's history clock starts after setup; setup and the final certificate are
    charged in full: ``total - (t_last - t_hit)``. ``None`` if never reached.
    """
    for t, p in zip(history["time"], history["primal"]):
        if p <= target:
            return total_seconds - (history["time"][-1] - t)
    return None


# ----------------------------------------------------------------------------------------
# pyscnn (the scnn library)
# ----------------------------------------------------------------------------------------
def pyscnn_available() -> str | None:
    """pyscnn's version, or ``None`` if it is not importable."""
    try:
        from importlib.metadata import version

        import scnn  # noqa: F401

        return version("pyscnn")
    except Exception:  # pragma: no cover - depends on the environment
        return None


def run_pyscnn(Xa, Y, G, alpha, *, relu=False, max_iter=None, dtype="float32") -> dict:
    """Solve with pyscnn on ``Xa`` (bias column appended), gates ``G``, ``NeuronGL1(alpha)``.

    Gated: ``RFISTA`` with its defaults (``max_iters=10000``, gradient-norm ``tol=1e-6``)
    unless ``max_iter`` caps it. ReLU: ``AL`` with ``max_primal_iters=max_iter``.
    ``unitize_data=False`` (so the program is ours), ``dtype`` pyscnn's default float32.
    Returns time, its convex weights in convexnn's layout and its gates.
    """
    from scnn.metrics import Metrics
    from scnn.models import ConvexGatedReLU, ConvexReLU
    from scnn.optimize import optimize_model
    from scnn.regularizers import NeuronGL1
    from scnn.solvers import AL, RFISTA

    c = Y.shape[1]
    if relu:
        model = ConvexReLU(G, c=c, bias=False)
        solver = AL(model, max_primal_iters=max_iter or 10000)
    else:
        model = ConvexGatedReLU(G, c=c, bias=False)
        solver = RFISTA(model, max_iters=max_iter or 10000)
    t0 = time.perf_counter()
    model, metrics = optimize_model(
        model, solver, Metrics(), Xa, Y, regularizer=NeuronGL1(alpha),
        return_convex=True, unitize_data=False, dtype=dtype,
    )
    seconds = time.perf_counter() - t0
    params = [np.asarray(p, dtype=float) for p in model.parameters]
    coef = np.concatenate([p.transpose(1, 2, 0) for p in params])  # (B, d+1, c)
    obj = np.asarray(getattr(metrics, "objective", []), dtype=float)
    return {
        "seconds": seconds,
        "n_iter_logged": int(len(obj)),
        "own_objective_last": float(obj[-1]) if len(obj) else None,
        "history": thin({
            "time": [float(t) for t in np.asarray(getattr(metrics, "time", []))],
            "objective": [float(v) for v in obj],
        }, keep=2000),
        "_coef": coef,
        "_gates": np.asarray(model.G, dtype=float),
    }


def pyscnn_objective_check(X, Y, alpha, result: dict, relu=False) -> dict:
    """Evaluate convexnn's objective (``alpha``: convexnn's, :func:`convexnn_alpha`) at
    pyscnn's solution (intercept 0).

    Returns convexnn's ``J`` there, pyscnn's own last logged objective, a dual lower
    bound for pyscnn's own program (no intercept: the dual drops ``1^T Theta = 0``,
    so ``Theta`` is only scaled), and the cone violation for ReLU.
    """
    from convexnn.certificates import dual_point_from_outputs

    prog = program(X, Y, result["_gates"], alpha, relu=relu)
    coef = result["_coef"]
    b = np.zeros(Y.shape[1])
    J = prog.objective(coef, b)
    out = {"J_convexnn_objective": float(J)}
    if not relu:
        Theta = dual_point_from_outputs(prog, prog.predict(coef, b)).Theta
        worst = float(prog.penalty.dual_norms(prog.operator.rmatvec(Theta)).max())
        scale = min(1.0, prog.alpha / worst)
        lower = prog.dual_objective(scale * Theta)
        out["own_program_dual"] = float(lower)
        out["own_program_relative_gap"] = float((J - lower) / abs(J))
    else:
        out["cone_violation"] = float(prog.cone_violation(coef))
        # the same network made exactly feasible (projection onto the cones)
        feasible = prog.make_feasible(coef)
        out["J_after_projection"] = float(prog.objective(feasible, b))
    own = result.get("own_objective_last")
    if own is not None:
        out["own_objective_last"] = own
        # pyscnn's loss is a mean over all n c entries: its objective is ours over c
        out["own_objective_in_convexnn_units"] = own * Y.shape[1]
    return out


# ----------------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------------
def results_dir(quick: bool) -> Path:
    """``results/speed`` or ``results/speed_quick``."""
    return RESULTS / ("speed_quick" if quick else "speed")


def result_path(bench: str, name: str, quick: bool) -> Path:
    """One JSON file per (benchmark, problem)."""
    return results_dir(quick) / f"{bench}__{name}.json"


def load_result(bench: str, name: str, quick: bool) -> dict | None:
    """A stored result, or ``None``."""
    path = result_path(bench, name, quick)
    if path.exists():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            return None
    return None


def save_result(bench: str, name: str, quick: bool, record: dict) -> Path:
    """Write ``record`` (plus environment info) atomically."""
    path = result_path(bench, name, quick)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": bench, "problem": name, "quick": quick, "environment": environment(), **record}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_jsonable(record), indent=1))
    tmp.replace(path)
    return path


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items() if not str(k).startswith("_")}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    return x


def _git_state() -> dict:
    """The checkout's commit, and whether tracked files differ from it."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        return {"git_commit": git("rev-parse", "--short", "HEAD"),
                "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except Exception:  # pragma: no cover
        return {"git_commit": None, "git_dirty": None}


#: the code a benchmark process runs is what it imported when it started: the commit is
#: read then, not when a result is written (a long run can outlive later commits)
_STARTED = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), **_git_state()}


def environment() -> dict:
    """Versions and thread settings recorded with every result; ``git_commit`` (and
    ``git_dirty``) as the process started."""
    import convexnn

    env = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "convexnn": getattr(convexnn, "__version__", "?"),
        "pyscnn": pyscnn_available(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        **_STARTED,
    }
    return env


def cli(description: str, default_problems: tuple[str, ...] | None = None) -> argparse.Namespace:
    """The common command line: ``--quick``, ``--force``, ``--problems``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes (development; a couple of minutes)")
    parser.add_argument("--force", action="store_true", help="recompute results that already exist")
    parser.add_argument(
        "--problems", nargs="*", default=None,
        help=f"subset of problems (default: {', '.join(default_problems) if default_problems else 'all'})",
    )
    args = parser.parse_args()
    if args.problems is None:
        args.problems = list(default_problems) if default_problems else None
    return args


def log(msg: str) -> None:
    """Progress line on stderr with a timestamp."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

