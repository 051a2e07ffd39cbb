"""
Real data: heating load of buildings (UCI energy)
=================================================

The UCI *energy efficiency* data (768 simulated buildings, 8 features, target: heating
load) from the project's shared data directory, with the source's first standard
90/10 test split. We fit a certified gated-ReLU network with the library defaults
(chosen on held-out benchmarks, see the user guide) next to scikit-learn's
``MLPRegressor``.

The data file lives in ``../shared/data`` next to the repository (or in the folder named
by the ``CONVEXNN_DATA`` environment variable). When it is missing — a plain clone —
the example says so and uses scikit-learn's bundled *diabetes* data instead.
"""

import os
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from convexnn import ConvexMLPRegressor


def _data_dir() -> Path:
    if os.environ.get("CONVEXNN_DATA"):
        return Path(os.environ["CONVEXNN_DATA"])
    try:
        here = Path(__file__).resolve().parent  # examples/
    except NameError:  # run interactively
        here = Path.cwd()
    return here.parent.parent / "shared" / "data"


path = _data_dir() / "uci_energy.npz"
if path.exists():
    data = np.load(path)
    X, y = data["X"].astype(float), data["y"].astype(float)
    test = data["test_mask"][:, 0]
    X_train, X_test, y_train, y_test = X[~test], X[test], y[~test], y[test]
    name = "UCI energy (heating load)"
else:
    from sklearn.datasets import load_diabetes

    print(f"{path} not found: this example needs the shared data directory (set CONVEXNN_DATA "
          "to its location). Using scikit-learn's diabetes data instead.")
    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.1, random_state=0)
    name = "diabetes (fallback)"
print(f"{name}: {X_train.shape[0]} training rows, {X_test.shape[0]} test rows, {X.shape[1]} features")

# %%
# Fit both models
# ---------------
# The target is standardized too, so that ``alpha`` means the same thing on every data set.
y_mean, y_std = y_train.mean(), y_train.std()
convex = make_pipeline(StandardScaler(), ConvexMLPRegressor("gated_relu", random_state=0))
t0 = time.perf_counter()
convex.fit(X_train, (y_train - y_mean) / y_std)
t_convex = time.perf_counter() - t0

mlp = make_pipeline(StandardScaler(), MLPRegressor(random_state=0, max_iter=2000))
t0 = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    mlp.fit(X_train, (y_train - y_mean) / y_std)
t_mlp = time.perf_counter() - t0


def r2(model):
    pred = model.predict(X_test) * y_std + y_mean
    return 1 - np.sum((y_test - pred) ** 2) / np.sum((y_test - y_test.mean()) ** 2), pred


r2_convex, pred_convex = r2(convex)
r2_mlp, pred_mlp = r2(mlp)
print(f"ConvexMLPRegressor: test R² {r2_convex:.4f}, {t_convex:.1f} s, {convex[-1].n_neurons_} units")
print(f"MLPRegressor:       test R² {r2_mlp:.4f}, {t_mlp:.1f} s")
print(convex[-1].certificate_)

# %%
# Predictions against the truth
# -----------------------------
fig, ax = plt.subplots(figsize=(5, 5), layout="constrained")
ax.scatter(y_test, pred_mlp, s=14, label=f"MLPRegressor (R² {r2_mlp:.3f})", alpha=0.7)
ax.scatter(y_test, pred_convex, s=14, label=f"ConvexMLPRegressor (R² {r2_convex:.3f})", alpha=0.7)
lim = [y_test.min(), y_test.max()]
ax.plot(lim, lim, "k--", lw=1)
ax.set_xlabel("true target")
ax.set_ylabel("predicted")
ax.set_title(name)
ax.legend()
plt.show()
