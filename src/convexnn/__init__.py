"""convexnn: neural networks trained to a certified global optimum by convex optimization.

Two-layer ReLU networks with weight decay are exactly convex programs (a group lasso
over activation patterns, with cone constraints for ReLU). convexnn solves them and
reports a duality-gap certificate with every fit. See DESIGN.md and the README.
"""

from ._version import __version__
from .certificates import Certificate
from .estimators import (
    ConvexMLPClassifier,
    ConvexMLPClassifierCV,
    ConvexMLPRegressor,
    ConvexMLPRegressorCV,
    ConvexThresholdClassifier,
    ConvexThresholdRegressor,
    Deep1DRegressor,
)
from .estimators._base import FitInterruptedWarning
from .io import load, save
from .network import Network
from .path import RegularizationPath, regularization_path

__all__ = [
    "Certificate",
    "ConvexMLPClassifier",
    "ConvexMLPClassifierCV",
    "ConvexMLPRegressor",
    "ConvexMLPRegressorCV",
    "ConvexThresholdClassifier",
    "ConvexThresholdRegressor",
    "Deep1DRegressor",
    "FitInterruptedWarning",
    "Network",
    "RegularizationPath",
    "__version__",
    "load",
    "regularization_path",
    "save",
]
