"""Models: step 2 of the workflow, "build or pick a model"."""

from litplate.models.base import ClassificationModel, LitModel
from litplate.models.linear import LinearRegression  # example
from litplate.models.mlp import MLPClassifier, MLPRegression  # example

# `make remove-examples` deletes the lines that end in "# example".
__all__ = [
    "ClassificationModel",
    "LinearRegression",  # example
    "LitModel",
    "MLPClassifier",  # example
    "MLPRegression",  # example
]
