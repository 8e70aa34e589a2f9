"""Data modules: step 1 of the workflow, "get data ready"."""

from litplate.data.csv import ClassificationCSVDataModule, CSVDataModule
from litplate.data.linear import LinearDataModule  # example
from litplate.data.tensors import TensorDataModule

# `make remove-examples` deletes the lines that end in "# example".
__all__ = [
    "CSVDataModule",
    "ClassificationCSVDataModule",
    "LinearDataModule",  # example
    "TensorDataModule",
]
