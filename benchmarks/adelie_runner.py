"""Run adelie on one gated-ReLU program; executed by ``benchmarks/.venv-adelie/bin/python``.

adelie pins ``numpy < 2``, so it lives in its own virtualenv and talks to the benchmark
through files only (no convexnn import here)::

    .venv-adelie/bin/python adelie_runner.py problem.npz result.npz

``problem.npz`` holds ``Xa`` (n, d+1: the bias column appended), ``masks`` (n, P, bool),
``y`` (n,), ``alpha``, ``lmda_path`` (decreasing, ending at ``alpha``), ``tols`` and
``J_target``: tolerances are tried in order and the sweep stops at the first whose
solution has ``J <= J_target`` (the caller re-evaluates ``J`` with convexnn's code).
For each tolerance adelie's ``grpnet`` solves the Gaussian group lasso

    1/2 sum_i w_i (y_i - eta_i)^2 + lmda sum_g penalty_g ||beta_g||,   w_i = 1/n,

over the matrix ``convex_relu(Xa, masks, gated=True)`` (groups = patterns), with
``penalty = ones(P)`` (its default is sqrt(group size)) and its free intercept; that is
exactly convexnn's gated program with ``lmda = alpha``. ``result.npz`` holds, per
tolerance, the coefficients at the last lambda (shape (P, d+1)), the intercept, and the
wall time of the whole path. Single-output programs only.
"""

import sys
import time

import numpy as np


def main(problem_path: str, result_path: str) -> None:
    import adelie as ad

    f = np.load(problem_path)
    Xa = np.asfortranarray(f["Xa"], dtype=np.float64)
    masks = np.asfortranarray(f["masks"].astype(bool))
    y = np.asarray(f["y"], dtype=np.float64)
    path = np.asarray(f["lmda_path"], dtype=np.float64)
    tols = np.asarray(f["tols"], dtype=np.float64)
    n, p = Xa.shape
    P = masks.shape[1]
    out = {"version": np.array(ad.__version__)}
    for i, tol in enumerate(tols):
        t0 = time.perf_counter()
        mat = ad.matrix.convex_relu(Xa, masks, gated=True, n_threads=1)
        glm = ad.glm.gaussian(y)
        state = ad.grpnet(
            mat, glm, groups=np.arange(0, P * p, p), penalty=np.ones(P), lmda_path=path,
            early_exit=False, intercept=True, tol=float(tol), progress_bar=False, n_threads=1,
        )
        seconds = time.perf_counter() - t0
        beta = state.betas[-1].toarray().ravel()
        out[f"coef_{i}"] = beta.reshape(P, p)
        out[f"intercept_{i}"] = np.array(state.intercepts[-1])
        out[f"seconds_{i}"] = np.array(seconds)
        out[f"lmda_{i}"] = np.array(state.lmdas[-1])
        B = beta.reshape(P, p).T  # (p, P)
        Z = ((Xa @ B) * masks).sum(axis=1) + float(state.intercepts[-1])
        J = 0.5 * np.mean((Z - y) ** 2) + float(f["alpha"]) * np.linalg.norm(B, axis=0).sum()
        if J <= float(f["J_target"]):
            break
    np.savez(result_path, **out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
