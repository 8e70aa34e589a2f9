"""Models: step 2 of the workflow, "build or pick a model"."""

from litplate.models.base import LitModel
from litplate.models.linear import LinearRegression
from litplate.models.mlp import MLPRegression

__all__ = ["LinearRegression", "LitModel", "MLPRegression"]
