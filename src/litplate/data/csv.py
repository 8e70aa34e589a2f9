"""Bring your own data: a CSV file of numeric columns, some features and one target. numpy's C
reader parses it; where it cannot, or reads a value that is not a finite float32, Python's csv
module reads it again, cell by cell, to name the first bad one."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import math
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from litplate.data.standardize import Standardization
from litplate.data.tensors import Rules, TensorDataModule, check_arguments
from litplate.run.errors import UserInputError

# A header cell shown in an error: a short name of letters, digits, spaces and a few signs.
COLUMN_NAME = re.compile(r"[\w .()%+-]{1,64}")
# Doubles from here up round to inf in float32 (half an ulp above its largest value, 3.4e38).
FLOAT32_OVERFLOW = 2.0**128 - 2.0**103
RULES: Rules = {
    "path": (lambda v: isinstance(v, str | Path) and str(v) != "", "the path of a CSV file"),
    "standardize": (lambda v: isinstance(v, bool), "true or false"),
    "n_classes": (lambda v: v is None or (isinstance(v, int) and v >= 2), "an integer >= 2"),
}


class CSVDataError(UserInputError):
    """The CSV file or its config cannot be used; the message names the file, line and column."""


def column_names(features: Any, target: Any) -> tuple[list[str], str]:
    """`data.features` as a list of column names (one name alone is accepted) and the target."""
    if features is None:
        raise CSVDataError(
            "data.features is null: name the input columns, e.g. data.features=[area,rooms] "
            "(or data.features=area for one)"
        )
    if isinstance(features, str) or not isinstance(features, Sequence):
        features = [features]  # one name alone
    names = [_name("data.features", name) for name in features]
    if not names:
        raise CSVDataError("data.features is empty: name at least one feature column")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise CSVDataError(f"data.features={names} names {', '.join(map(repr, repeated))} twice")
    target = _name("data.target", target)
    if target in names:
        raise CSVDataError(
            f"data.target={target!r} is also in data.features={names}: a column is either an "
            "input or the target, not both"
        )
    return names, target


def _name(key: str, value: Any) -> str:
    # Hydra reads `data.features=[1,2]` as integers: a header can name its columns 1 and 2.
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise CSVDataError(f"{key}: expected a column name, got {value!r}")
    return str(value)


def read_csv(
    path: str | Path, features: list[str], target: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(X, y) as float32 tensors of shape [rows, len(features)] and [rows, 1], strictly checked."""
    path = Path(path)
    if not path.is_file():
        raise CSVDataError(f"{path}: " + ("not a file" if path.exists() else "file not found"))
    rows = _rows(path)
    _, header_lines, header = next(rows, (0, 0, None))
    if header is None:
        raise CSVDataError(f"{path}: the file is empty (no header row)")
    if not header:
        raise CSVDataError(f"{path}, line 1: empty; the first line must be the header row")
    if next(rows, None) is None:
        raise CSVDataError(f"{path}: only a header, no data rows")
    header = [name.strip() for name in header]
    columns = _columns(path, header, [*features, target])
    data = _fast_read(path, len(header), header_lines, columns)
    if data is None:  # read again, cell by cell, to name the first bad one
        rows = itertools.islice(_rows(path, columns), 1, None)
        cells = (_number(path, line, header[i], row[i]) for line, _, row in rows for i in columns)
        data = np.fromiter(cells, dtype=np.float32).reshape(-1, len(columns))
    tensor = torch.from_numpy(data)
    return tensor[:, :-1], tensor[:, -1:]


def _rows(path: Path, columns: Sequence[int] = ()) -> Iterator[tuple[int, int, list[str]]]:
    """(first line, last line, cells) of the header and each data row, blank lines skipped; a
    ragged row, or a quote left open (a newline in a `columns` cell), is an error naming it."""
    try:
        file = path.open("rb")
    except OSError as err:
        raise CSVDataError(f"{path}: cannot be read: {err.strerror}") from None
    with file:
        reader = csv.reader(_decoded(path, file))
        header = None
        while True:
            line = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                raise CSVDataError(f"{path}, line {line}: {err}") from None
            last = reader.line_num
            if header is None:
                header = row
            elif not row:
                continue
            elif last > line and (len(row) != len(header) or any("\n" in row[i] for i in columns)):
                raise CSVDataError(
                    f'{path}, line {line}: a quote (") is not closed on this line; the cell '
                    f"it opens runs on to line {last}"
                )
            elif len(row) != len(header):
                raise CSVDataError(
                    f"{path}, line {line}: {len(row)} cells where the header has {len(header)}"
                )
            yield line, last, row


def _decoded(path: Path, file: BinaryIO) -> Iterator[str]:
    """The file's lines as text; a line that is not UTF-8 is one short error naming it."""
    for number, line in enumerate(file, start=1):
        try:
            # utf-8-sig: drop the byte-order mark that spreadsheet programs put before the header.
            yield line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as err:
            raise CSVDataError(
                f"{path}, line {number}: not UTF-8 text (byte 0x{line[err.start]:02x} at "
                f"position {err.start + 1} of the line); save the file as UTF-8"
            ) from None


def _columns(path: Path, header: list[str], wanted: list[str]) -> list[int]:
    """The header positions of the wanted columns, each of which must be there exactly once."""
    missing = [name for name in wanted if name not in header]
    if missing:
        # Echo the header only when it reads as column names, not a line of some other file.
        looks_like_names = 2 <= len(header) <= 50 and all(map(COLUMN_NAME.fullmatch, header))
        raise CSVDataError(
            f"{path}: no column {', '.join(map(repr, missing))} in the header (line 1); "
            + (
                f"the columns are {header}"
                if looks_like_names
                else "its first line does not look like a row of column names (is it a CSV file?)"
            )
        )
    for name in wanted:
        positions = [str(i + 1) for i, column in enumerate(header) if column == name]
        if len(positions) > 1:
            raise CSVDataError(
                f"{path}, line 1: the header has {len(positions)} columns named {name!r} "
                f"(columns {', '.join(positions)}); rename all but one"
            )
    return [header.index(name) for name in wanted]


def _fast_read(
    path: Path, n_columns: int, header_lines: int, columns: list[int]
) -> np.ndarray | None:
    """The wanted columns as finite float32 rows, by numpy's C reader; None if it cannot."""
    # Every column is read, so a ragged row is refused; the unused ones may hold text.
    ignored = {i: lambda cell: 0.0 for i in range(n_columns) if i not in columns}
    try:
        data = np.loadtxt(
            path,
            dtype=np.float32,
            delimiter=",",
            comments=None,  # "#" is not special in a CSV file
            quotechar='"',
            skiprows=header_lines,
            ndmin=2,
            encoding="utf-8",
            converters=ignored or None,
        )
    except ValueError:  # UnicodeDecodeError is one too
        return None
    if columns != list(range(n_columns)):
        data = data[:, columns]  # a copy: the wanted columns, features first, then the target
    return data if np.isfinite(data).all() else None


def _number(path: Path, line: int, column: str, cell: str) -> float:
    where = f"{path}, line {line}, column {column!r}"
    if not cell.strip():
        raise CSVDataError(f"{where}: empty cell")
    try:
        # numpy reads ASCII decimals only; Python's float() also takes "1_000" and Arabic digits.
        if not cell.isascii() or "_" in cell:
            raise ValueError(cell)
        value = float(cell)
    except ValueError:
        raise CSVDataError(f"{where}: {cell!r} is not a number") from None
    if not math.isfinite(value):
        raise CSVDataError(f"{where}: {cell!r} is not a finite number (NaN and inf are refused)")
    if abs(value) >= FLOAT32_OVERFLOW:
        raise CSVDataError(
            f"{where}: {cell!r} is too large for float32, the type the model computes in "
            "(largest magnitude 3.4e38); rescale the column"
        )
    return value


class CSVDataModule(TensorDataModule):
    """Rows of a CSV file: `features` columns in, the `target` column out, maybe standardized;
    `raw_inputs`, `raw_targets` and `to_data_units` give the file's values (docs/data.md)."""

    # The data config as loaded, which train() writes into the run's (and checkpoints').
    SETTLED = ("path", "features", "target", "feature_mean", "feature_std", "target_mean")

    def __init__(
        self,
        path: str,
        features: list[str] | str,
        target: str,
        shuffle_rows: bool = False,
        rows_seed: int = 0,
        standardize: bool = False,
        feature_mean: list[float] | None = None,
        feature_std: list[float] | None = None,
        target_mean: float | None = None,
        **split_and_batch: object,
    ) -> None:
        super().__init__(**split_and_batch)
        self.save_hyperparameters()
        check_arguments(RULES, locals())
        features, target = column_names(features, target)
        path = Path(path).expanduser()
        X, y = read_csv(path, features, target)
        self.check_targets(path, target, y)
        if shuffle_rows:
            order = torch.randperm(len(X), generator=torch.Generator().manual_seed(rows_seed))
            X, y = X[order], y[order]
        try:
            self.set_data(X, y)
        except ValueError as err:
            raise CSVDataError(f"{path}: too few rows for the splits: {err}") from None
        stats = None
        if standardize:
            stats = self.fit_standardization(features, (feature_mean, feature_std, target_mean))
            self.X, self.y = stats.apply(X), y - stats.target_mean
        self.standardization = stats
        # As loaded: what eval and predict need to rebuild exactly this data from anywhere.
        self.hparams.update(
            path=str(path.resolve()),
            features=features,
            target=target,
            feature_mean=list(stats.mean) if stats else None,
            feature_std=list(stats.std) if stats else None,
            target_mean=stats.target_mean if stats else None,
        )

    def fit_standardization(self, features: list[str], given: tuple) -> Standardization:
        """The training split's statistics, or the given (mean, std, target mean), checked."""
        if all(value is None for value in given):
            return Standardization.fit(*self.split("train"))
        if any(value is None for value in given):
            raise CSVDataError(
                "data.feature_mean, data.feature_std and data.target_mean go together: give all "
                "three, or none to compute them from the training split"
            )
        try:
            stats = Standardization.of(*given)
        except (TypeError, ValueError) as err:
            raise CSVDataError(f"data.feature_mean/feature_std/target_mean: {err}") from None
        if len(stats.mean) != len(features):
            raise CSVDataError(
                f"data.feature_mean and data.feature_std have {len(stats.mean)} values for the "
                f"{len(features)} features {features}"
            )
        return stats

    def check_targets(self, path: Path, target: str, y: torch.Tensor) -> None:
        """Refuse targets the task cannot learn (a regression's: any number read is fine)."""

    def settled_config(self) -> dict[str, Any]:
        return {key: self.hparams[key] for key in self.SETTLED}

    def to_data_units(self, predictions: torch.Tensor) -> torch.Tensor:
        return self.standardization.uncenter(predictions) if self.standardization else predictions

    @property
    def feature_names(self) -> list[str]:
        return list(self.hparams.features)


class ClassificationCSVDataModule(CSVDataModule):
    """A CSV whose target column holds class labels, the integers 0 to `n_classes` - 1 (null:
    the largest label + 1); they are checked and never centred."""

    SETTLED = (*CSVDataModule.SETTLED, "n_classes")

    def __init__(self, *args: Any, n_classes: int | None = None, **kwargs: Any) -> None:
        check_arguments(RULES, locals())
        self.n_classes = n_classes
        super().__init__(*args, **kwargs)
        # As found, in the initial hyper-parameters too: Lightning checks the model's match them.
        self.save_hyperparameters({**self.hparams, "n_classes": self.n_classes})

    def check_targets(self, path: Path, target: str, y: torch.Tensor) -> None:
        labels = y.reshape(-1)
        self.n_classes = self.n_classes or max(int(labels.max()) + 1, 2)
        bad = ((labels != labels.round()) | (labels < 0) | (labels >= self.n_classes)).nonzero()
        if len(bad) == 0:
            return
        rows = _rows(path)
        header = [name.strip() for name in next(rows)[2]]
        line, _, row = next(itertools.islice(rows, int(bad[0]), None))
        raise CSVDataError(
            f"{path}, line {line}, column {target!r}: {row[header.index(target)]!r} is not a class "
            f"label: expected an integer from 0 to {self.n_classes - 1} (data.n_classes)"
        )

    def fit_standardization(self, *args: Any) -> Standardization:
        return dataclasses.replace(super().fit_standardization(*args), target_mean=0.0)

    def raw_targets(self, name: str) -> torch.Tensor:
        """The labels as integers, as the file has them (predictions.csv's `target` column)."""
        return super().raw_targets(name).long()
