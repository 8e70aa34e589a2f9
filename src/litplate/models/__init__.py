"""Models: step 2 of the workflow, "build or pick a model"."""

from litplate.models.linear import LinearRegression

__all__ = ["LinearRegression"]
