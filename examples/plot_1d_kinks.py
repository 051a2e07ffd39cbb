"""
A one-dimensional network and its kinks, globally certified
============================================================

With one input feature the activation patterns of the data can be enumerated
completely (``sampler="exhaustive"``). The convex program then covers *every*
two-layer ReLU network, of any width, and its certificate is **global**: no such
network has a lower regularized objective than the certificate's bound.

A ReLU unit :math:`\\max(0, x w_j + b_j)` bends the fitted function at
:math:`x = -b_j / w_j`. :class:`~convexnn.plotting.NetworkFunctionDisplay` marks those
kinks; the network is affine between them.
"""

import matplotlib.pyplot as plt
import numpy as np

from convexnn import ConvexMLPRegressor
from convexnn.plotting import NetworkFunctionDisplay

rng = np.random.default_rng(0)
X = np.sort(rng.uniform(-3, 3, size=(30, 1)), axis=0)
y = np.sin(X[:, 0]) + 0.1 * rng.normal(size=30)

# %%
# Fit and read the certificate
# ----------------------------
reg = ConvexMLPRegressor(alpha=1e-2, sampler="exhaustive", max_iter=20000).fit(X, y)
print(reg.certificate_)
print(reg.certificate_.certifies)

# %%
# The function and its kinks
# --------------------------
disp = NetworkFunctionDisplay.from_estimator(reg, X, y)
kinks = np.sort(disp.kinks[np.isfinite(disp.kinks)])
print(f"{reg.n_neurons_} units, kinks at x = {np.round(kinks, 2)}")

# %%
# Stronger regularization
# -----------------------
# Larger ``alpha`` shrinks the weights and flattens the function. The number of units
# need not fall with it: several units can share a kink, and the certificate concerns
# the objective, not the width.
fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained", sharey=True)
for ax, alpha in zip(axes, (3e-2, 1e-1)):
    r = ConvexMLPRegressor(alpha=alpha, sampler="exhaustive", max_iter=20000).fit(X, y)
    NetworkFunctionDisplay.from_estimator(r, X, y, ax=ax)
    ax.set_title(f"alpha={alpha:g}: {r.n_neurons_} units, gap {r.certificate_.relative_gap:.0e} (global)")
plt.show()
