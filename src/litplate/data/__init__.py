"""Data modules: step 1 of the workflow, "get data ready"."""

from litplate.data.csv import CSVDataModule
from litplate.data.linear import LinearDataModule
from litplate.data.tensors import TensorDataModule

__all__ = ["CSVDataModule", "LinearDataModule", "TensorDataModule"]
