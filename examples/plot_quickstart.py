"""
Quick start: a certified network on breast cancer
==================================================

Fit a two-layer gated-ReLU network to the breast-cancer data set by solving its convex
reformulation, read its duality-gap certificate, and compare it with scikit-learn's
``MLPClassifier`` on the same split.

``alpha`` here multiplies the weight decay added to the *mean* loss (it is not
``MLPClassifier.alpha``, which is divided by ``n_samples``).
"""

# %%
# Fit
# ---
# convexnn never rescales data: standardize the features in a pipeline.
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from convexnn import ConvexMLPClassifier

X, y = load_breast_cancer(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)

clf = make_pipeline(StandardScaler(), ConvexMLPClassifier("gated_relu", random_state=0))
clf.fit(X_train, y_train)
net = clf[-1]
print(f"test accuracy: {clf.score(X_test, y_test):.3f}")
print(f"hidden units:  {net.n_neurons_}")

# %%
# The certificate
# ---------------
# ``primal`` is the objective ``J`` of the exported network; ``dual`` is a proven lower
# bound. The scope says over which networks the bound holds: here the sampled
# activation patterns, not every network (see the user guide).
print(net.certificate_)
print(net.certificate_.certifies)

# %%
# Next to scikit-learn's MLP
# --------------------------
# Same split, default settings. The MLP has no certificate: a different seed gives a
# different network.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    accs = [
        make_pipeline(StandardScaler(), MLPClassifier(random_state=s)).fit(X_train, y_train).score(X_test, y_test)
        for s in range(5)
    ]
print(f"MLPClassifier test accuracy over 5 seeds: {np.min(accs):.3f} .. {np.max(accs):.3f}")

# %%
# The network is an ordinary ReLU-type network: the weights are in scikit-learn's MLP
# layout, and its hidden units' output weights show how sparse the solution is.
W1, W2 = net.coefs_
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
order = np.argsort(-np.abs(W2[:, 0]))
ax.bar(np.arange(W2.shape[0]), W2[order, 0])
ax.set_xlabel("hidden unit (sorted by |output weight|)")
ax.set_ylabel("output weight")
ax.set_title(f"{net.n_neurons_} units chosen out of {net.gates_.shape[1]} sampled patterns")
plt.show()
