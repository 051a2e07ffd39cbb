"""
The regularization path
=======================

Because training is a convex program, the whole family of networks indexed by the
weight decay ``alpha`` can be computed in one sweep: :func:`convexnn.regularization_path`
starts at ``alpha_max`` — the smallest ``alpha`` whose optimal network is the constant
predictor, *computed* from the data — and walks down a log grid, starting each solve
from the previous solution. Every point has its own certificate, and all points share
the same activation patterns.
"""

import matplotlib.pyplot as plt
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from convexnn import ConvexMLPClassifier, regularization_path
from convexnn.plotting import RegularizationPathDisplay

X, y = load_breast_cancer(return_X_y=True)
X_train, X_val, y_train, y_val = train_test_split(X, y, random_state=0)
scaler = StandardScaler().fit(X_train)
X_train, X_val = scaler.transform(X_train), scaler.transform(X_val)

# %%
# Compute the path
# ----------------
path = regularization_path(
    X_train, y_train,
    estimator=ConvexMLPClassifier("gated_relu", n_patterns=100, random_state=0),
    n_alphas=12, X_val=X_val, y_val=y_val,
)
print(f"alpha_max = {path.alpha_max:.4g}")
print(f"{'alpha':>9} {'units':>5} {'train':>6} {'val':>6} {'rel. gap':>9} {'time (s)':>8}")
for a, m, tr, va, g, t in zip(path.alphas, path.n_neurons, path.train_scores, path.val_scores,
                              path.relative_gaps, path.times):
    print(f"{a:9.3g} {m:5d} {tr:6.3f} {va:6.3f} {g:9.1e} {t:8.2f}")

# %%
# Plot it
# -------
# As ``alpha`` decreases the network gains hidden units, fits the
# training data better, and the validation accuracy peaks at an intermediate alpha.
display = RegularizationPathDisplay.from_path(path)
plt.show()
