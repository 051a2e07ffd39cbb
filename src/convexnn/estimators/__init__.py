"""scikit-learn estimators: the only scikit-learn-aware layer."""

from .cv import ConvexMLPClassifierCV, ConvexMLPRegressorCV
from .deep1d import Deep1DRegressor
from .mlp import ConvexMLPClassifier, ConvexMLPRegressor
from .threshold import ConvexThresholdClassifier, ConvexThresholdRegressor

__all__ = [
    "ConvexMLPClassifier",
    "ConvexMLPClassifierCV",
    "ConvexMLPRegressor",
    "ConvexMLPRegressorCV",
    "ConvexThresholdClassifier",
    "ConvexThresholdRegressor",
    "Deep1DRegressor",
]
