"""Models: step 2 of the workflow, "build or pick a model"."""

from litplate.models.linear import LinearRegression
from litplate.models.mlp import MLPRegression
from litplate.models.regression import RegressionModel

__all__ = ["LinearRegression", "MLPRegression", "RegressionModel"]
