"""Bring your own data: a CSV file of numeric columns, some features and one target."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import torch

from litplate.data.tensors import TensorDataModule


class CSVDataError(ValueError):
    """The CSV file cannot be used; the message names the file, line and column."""


def read_csv(
    path: str | Path, features: list[str], target: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(X, y) as float tensors of shape [rows, len(features)] and [rows, 1], strictly checked."""
    path = Path(path)
    if not features:
        raise CSVDataError(f"{path}: data.features is empty; name at least one feature column")
    if not path.is_file():
        raise CSVDataError(f"{path}: file not found")
    with path.open(newline="") as file:
        reader = csv.reader(file)
        header = next(reader, None)
        if not header:
            raise CSVDataError(f"{path}: the file is empty (no header row)")
        header = [name.strip() for name in header]
        wanted = [*features, target]
        missing = [name for name in wanted if name not in header]
        if missing:
            raise CSVDataError(
                f"{path}: no column {', '.join(map(repr, missing))} in the header (line 1); "
                f"the columns are {header}"
            )
        columns = [header.index(name) for name in wanted]
        rows = []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue  # a blank line
            if len(row) != len(header):
                raise CSVDataError(
                    f"{path}, line {line}: {len(row)} cells where the header has {len(header)}"
                )
            rows.append([_number(path, line, header[c], row[c]) for c in columns])
    if not rows:
        raise CSVDataError(f"{path}: only a header, no data rows")
    data = torch.tensor(rows, dtype=torch.float32)
    return data[:, :-1], data[:, -1:]


def _number(path: Path, line: int, column: str, cell: str) -> float:
    where = f"{path}, line {line}, column {column!r}"
    if not cell.strip():
        raise CSVDataError(f"{where}: empty cell")
    try:
        value = float(cell)
    except ValueError:
        raise CSVDataError(f"{where}: {cell!r} is not a number") from None
    if not math.isfinite(value):
        raise CSVDataError(f"{where}: {cell!r} is not a finite number (NaN and inf are refused)")
    return value


class CSVDataModule(TensorDataModule):
    """Rows of a CSV file: `features` columns in, the `target` column out.

    Rows are split in file order, or shuffled once first with `shuffle_rows` and `rows_seed`.
    """

    def __init__(
        self,
        path: str,
        features: list[str],
        target: str,
        shuffle_rows: bool = False,
        rows_seed: int = 0,
        **split_and_batch: object,
    ) -> None:
        super().__init__(**split_and_batch)
        self.save_hyperparameters()
        X, y = read_csv(path, list(features), target)
        if shuffle_rows:
            order = torch.randperm(len(X), generator=torch.Generator().manual_seed(rows_seed))
            X, y = X[order], y[order]
        try:
            self.set_data(X, y, what="rows")
        except ValueError as err:
            raise CSVDataError(f"{path}: too few rows for the splits: {err}") from None

    @property
    def feature_names(self) -> list[str]:
        return list(self.hparams.features)
