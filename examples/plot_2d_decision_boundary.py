"""
Decision regions and neuron hyperplanes in two dimensions
=========================================================

Each hidden unit of a two-layer network switches on one side of a line in the plane
(for a gated-ReLU unit, the line of its gate). Between the lines the network is affine,
so the decision boundary is piecewise linear with corners only on those lines.
:class:`~convexnn.plotting.NetworkFunctionDisplay` draws the regions and the lines,
mapped back to the original units through the ``StandardScaler``.
"""

import matplotlib.pyplot as plt
from sklearn.datasets import make_moons
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from convexnn import ConvexMLPClassifier
from convexnn.plotting import NetworkFunctionDisplay

X, y = make_moons(n_samples=200, noise=0.2, random_state=0)
X = X * [3.0, 1.0] + [10.0, 0.0]  # not standardized: the pipeline does it

# %%
# Regions and hyperplanes
# -----------------------
clf = make_pipeline(StandardScaler(), ConvexMLPClassifier("gated_relu", alpha=1e-3, n_patterns=50, random_state=0))
clf.fit(X, y)
print(clf[-1].certificate_)
disp = NetworkFunctionDisplay.from_estimator(clf, X, y)

# %%
# The probability surface
# -----------------------
# ``predict_proba`` is the sigmoid of the network output; ``output=1`` selects the
# probability of the second class.
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), layout="constrained")
NetworkFunctionDisplay.from_estimator(clf, X, y, response_method="predict_proba", output=1, ax=axes[0])
clf10 = make_pipeline(StandardScaler(), ConvexMLPClassifier("gated_relu", alpha=1e-2, n_patterns=50, random_state=0))
NetworkFunctionDisplay.from_estimator(clf10.fit(X, y), X, y, ax=axes[1])
axes[1].set_title(f"alpha=1e-2: {clf10[-1].n_neurons_} units")
plt.show()
