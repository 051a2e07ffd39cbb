"""
Convergence: objective and duality gap
======================================

Every fit records, at each duality-gap check, the objective of the current network
and the best lower bound found so far. :class:`~convexnn.plotting.ConvergenceDisplay`
draws both and their relative gap, against iterations or seconds. The fit stops when the
relative gap reaches ``tol``; the gap is a proof, not an estimate, so this is also a
picture of how much the certificate is worth at each point in time.
"""

import matplotlib.pyplot as plt
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

from convexnn import ConvexMLPClassifier
from convexnn.plotting import ConvergenceDisplay

X, y = load_breast_cancer(return_X_y=True)
X = StandardScaler().fit_transform(X)

# %%
# One fit, against iterations
# ---------------------------
clf = ConvexMLPClassifier("gated_relu", tol=1e-4, random_state=0).fit(X, y)
disp = ConvergenceDisplay.from_estimator(clf)
print(clf.certificate_)

# %%
# Two regularization strengths, against time
# ------------------------------------------
# Stronger weight decay gives sparser, better-conditioned programs, which certify
# faster. Passing the same axes overlays the curves.
fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
for alpha in (1e-3, 1e-2):
    clf = ConvexMLPClassifier("gated_relu", alpha=alpha, tol=1e-4, random_state=0).fit(X, y)
    ConvergenceDisplay.from_estimator(clf, x="time", ax=axes, name=f"alpha={alpha:g}")
    print(f"alpha={alpha:g}: {clf.n_iter_} iterations, {clf.n_neurons_} units, "
          f"relative gap {clf.certificate_.relative_gap:.1e}")
plt.show()
