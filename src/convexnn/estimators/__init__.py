"""scikit-learn estimators: the only scikit-learn-aware layer."""

from .mlp import ConvexMLPClassifier, ConvexMLPRegressor

__all__ = ["ConvexMLPClassifier", "ConvexMLPRegressor"]
