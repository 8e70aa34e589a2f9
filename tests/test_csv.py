"""Bring your own data: a CSV file (of numbers, or of class labels), and one clear error per kind
of bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from litplate.data import ClassificationCSVDataModule, CSVDataModule
from litplate.data.csv import CSVDataError, read_csv
from tests.helpers.project import ROOT


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "data.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def good_rows(n: int = 20) -> str:
    return "a,b,y\n" + "".join(f"{i},{2 * i},{3 * i + 1}\n" for i in range(n))


def test_reads_features_and_target(tmp_path: Path):
    # Not standardized unless asked (configs/data/csv.yaml asks): the config of a run saved
    # before standardization existed rebuilds the data it trained on.
    path = write(tmp_path, good_rows())
    dm = CSVDataModule(str(path), features=["b", "a"], target="y")
    assert dm.X.shape == (20, 2) and dm.y.shape == (20, 1) and dm.n_features == 2
    assert dm.X[3].tolist() == [6.0, 3.0] and dm.y[3].item() == 10.0
    assert [len(dm.split(s)[0]) for s in ("train", "val", "test")] == [16, 4, 4]
    assert dm.standardization is None and torch.equal(dm.raw_inputs("test"), dm.split("test")[0])


def test_one_feature_may_be_named_without_a_list(tmp_path: Path):
    dm = CSVDataModule(str(write(tmp_path, good_rows())), features="b", target="y")
    assert dm.n_features == 1 and dm.feature_names == ["b"]
    assert dm.raw_inputs("all")[:, 0].tolist() == [2.0 * i for i in range(20)]


def test_row_shuffle_is_seeded(tmp_path: Path):
    path = str(write(tmp_path, good_rows()))
    a = CSVDataModule(path, ["a"], "y", shuffle_rows=True, rows_seed=1)
    b = CSVDataModule(path, ["a"], "y", shuffle_rows=True, rows_seed=1)
    c = CSVDataModule(path, ["a"], "y", shuffle_rows=True, rows_seed=2)
    assert torch.equal(a.X, b.X) and not torch.equal(a.X, c.X)
    assert sorted(a.raw_X[:, 0].tolist()) == [float(i) for i in range(20)]


def test_a_relative_path_is_stored_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    write(tmp_path, good_rows())
    monkeypatch.chdir(tmp_path)  # a relative data.path is taken from the launch directory
    dm = CSVDataModule("data.csv", ["a"], "y")
    assert dm.settled_config()["path"] == str(tmp_path / "data.csv")


def test_example_csv_ships_with_the_template():
    dm = CSVDataModule(str(ROOT / "data" / "houses.csv"), ["area", "rooms"], "price")
    assert dm.X.shape == (200, 2)


def test_reads_what_spreadsheets_write(tmp_path: Path):
    # A byte-order mark, CRLF line ends, quoted cells, blank lines and text in unused columns.
    text = '\ufeffname,a,y\r\n"Smith, J.",1.5,2\r\n\r\nLee,"-3e2", 4 \r\n'
    X, y = read_csv(write(tmp_path, text), ["a"], "y")
    assert X[:, 0].tolist() == [1.5, -300.0] and y[:, 0].tolist() == [2.0, 4.0]


# --- standardization ---------------------------------------------------------------------------


def test_standardization_uses_the_training_split_only(tmp_path: Path):
    path = write(tmp_path, good_rows(40))
    dm = CSVDataModule(
        str(path), ["a", "b"], "y", standardize=True, train_fraction=0.5, test_fraction=0.5
    )
    train, test = dm.split("train")[0], dm.split("test")[0]
    raw_train = dm.raw_inputs("train").double().numpy()
    assert dm.hparams.feature_mean == pytest.approx(raw_train.mean(axis=0).tolist())
    assert dm.hparams.feature_std == pytest.approx(raw_train.std(axis=0).tolist())
    assert train.mean(dim=0).abs().max() < 1e-6 and train.std(0, correction=0).tolist() == (
        pytest.approx([1.0, 1.0])
    )
    shift = 20 / np.std(np.arange(20))  # the test rows' mean, 29.5, is 20 above the train rows'
    assert test.mean(dim=0).tolist() == pytest.approx([shift, shift], rel=1e-6)
    assert dm.raw_inputs("test")[0].tolist() == [20.0, 40.0]  # the file's values
    # The target is centred on its training mean, 29.5, and keeps its units.
    assert dm.hparams.target_mean == 29.5 and dm.y[0, 0].item() == 1 - 29.5
    assert dm.raw_targets("all")[:, 0].tolist() == [3.0 * i + 1 for i in range(40)]
    assert dm.to_data_units(dm.y).tolist() == dm.raw_y.tolist()


def test_stored_statistics_are_applied_not_recomputed(tmp_path: Path):
    path = str(write(tmp_path, good_rows()))
    stats = {"feature_mean": [1.0, 2.0], "feature_std": [2.0, 4.0], "target_mean": 5.0}
    dm = CSVDataModule(path, ["a", "b"], "y", standardize=True, **stats)
    assert dm.X[3].tolist() == [1.0, 1.0] and dm.y[3].item() == 5.0  # (3 - 1) / 2, ..., 10 - 5
    assert {key: dm.settled_config()[key] for key in stats} == stats
    off = CSVDataModule(path, ["a", "b"], "y", standardize=False, **stats)
    assert off.X[3].tolist() == [3.0, 6.0] and off.y[3].item() == 10.0
    assert off.settled_config()["feature_mean"] is None


def test_a_constant_feature_is_centred_not_divided_by_zero(tmp_path: Path):
    text = "a,c,y\n" + "".join(f"{i},5,{i}\n" for i in range(20))
    dm = CSVDataModule(str(write(tmp_path, text)), ["a", "c"], "y", standardize=True)
    assert dm.hparams.feature_std[1] == 1.0 and dm.X[:, 1].abs().max().item() == 0.0


# --- bad input: one error naming the file, line and column -----------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, r"data\.csv: file not found"),
        ("", r"data\.csv: the file is empty \(no header row\)"),
        ("a,b,y\n", r"data\.csv: only a header, no data rows"),
        ("a,b,y\n\n\n", r"data\.csv: only a header, no data rows"),
        (
            "a,y\n1,2\n",
            r"data\.csv: no column 'b' in the header \(line 1\); the columns are \['a', 'y'\]$",
        ),
        (
            "root:x:0:0:root:/root:/bin/bash\nbin:x:1:1:bin:/bin:/sbin/nologin\n",  # not a CSV
            r"data\.csv: no column 'a', 'b', 'y' in the header \(line 1\); its first line does "
            r"not look like a row of column names \(is it a CSV file\?\)$",
        ),
        ("a,b,y\n1,2,3\n4,x,6\n", r"data\.csv, line 3, column 'b': 'x' is not a number"),
        ("a,b,y\n1,2,3\n4,,6\n", r"data\.csv, line 3, column 'b': empty cell"),
        ("a,b,y\n1,2,3\n1,2,nan\n", r"data\.csv, line 3, column 'y': 'nan' is not a finite number"),
        ("a,b,y\n1,inf,3\n", r"data\.csv, line 2, column 'b': 'inf' is not a finite number"),
        (  # a quote left open on line 42 swallows the lines after it
            good_rows(40) + '1,"2,3\n' + good_rows(10).split("\n", 1)[1],
            r"data\.csv, line 42: a quote \(\"\) is not closed on this line; "
            r"the cell it opens runs on to line 52$",
        ),
        (
            'a,b,y\n1,2,3\n4,"5,6\n7,8",9\n',
            r"data\.csv, line 3: a quote \(\"\) is not closed on this line; "
            r"the cell it opens runs on to line 4$",
        ),
        ("a,b,y\n1,2,3\n1,2\n", r"data\.csv, line 3: 2 cells where the header has 3"),
        ("a,b,y\n1,2,3\n1,2,3,4\n", r"data\.csv, line 3: 4 cells where the header has 3"),
        ("a,b,y\n1,2,3\n  \n", r"data\.csv, line 3: 1 cells where the header has 3"),
        ("a,b,y\n1,2,3\n4,1_000,6\n", r"line 3, column 'b': '1_000' is not a number"),
        # Finite in Python, but inf in float32, the type the model computes in.
        ("a,b,y\n1,2,3\n4,5,6\n1e39,2,3\n", r"data\.csv, line 4, column 'a': '1e39' is too large"),
        ("a,b,y\n1,2,3\n1,2,-4e38\n", r"data\.csv, line 3, column 'y': '-4e38' is too large"),
        # A duplicate column name: which of them is `a`?
        ("a,b,a,y\n1,2,3,4\n", r"data\.csv, line 1: the header has 2 columns named 'a' \(co"),
        (
            "a,b,y\n1,2,3\n4,5,6\n7,8,9\n",
            r"data\.csv: too few rows for the splits: test_fraction=0.2 of 3 rows gives 0",
        ),
    ],
)
def test_bad_input_names_file_line_and_column(tmp_path: Path, text: str | None, message: str):
    path = tmp_path / "data.csv" if text is None else write(tmp_path, text)
    with pytest.raises(CSVDataError, match=message):
        CSVDataModule(str(path), features=["a", "b"], target="y")


def test_an_unused_column_may_repeat_a_name_or_hold_text(tmp_path: Path):
    path = write(tmp_path, "note,a,note,y\nx,1,,2\ny,3,z,4\n")
    X, y = read_csv(path, ["a"], "y")
    assert X[:, 0].tolist() == [1.0, 3.0] and y[:, 0].tolist() == [2.0, 4.0]


@pytest.mark.parametrize(
    ("data", "line"),
    [
        ("a,b,y\n1,2,3\n4,5,6\ncaf\xe9,1,2\n".encode("latin-1"), 4),  # Latin-1, not UTF-8
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64, 1),  # binary, 16 KB
    ],
)
def test_a_file_that_is_not_utf8_is_one_short_error_naming_its_line(
    tmp_path: Path, data: bytes, line: int
):
    path = write(tmp_path, data)
    with pytest.raises(CSVDataError) as error:
        CSVDataModule(str(path), features=["a", "b"], target="y")
    message = str(error.value)
    assert message.startswith(f"{path}, line {line}: not UTF-8 text (byte 0x")
    assert message.endswith("save the file as UTF-8") and len(message) < len(str(path)) + 120
    assert error.value.__cause__ is None and error.value.__suppress_context__


@pytest.mark.parametrize(
    ("features", "target", "message"),
    [
        (None, "y", r"data\.features is null: name the input columns, e\.g\. data\.features=\["),
        ([], "y", r"data\.features is empty"),
        (["a", "y"], "y", r"data\.target='y' is also in data\.features=\['a', 'y'\]"),
        (["a", "b", "a"], "y", r"data\.features=\['a', 'b', 'a'\] names 'a' twice"),
        (["a"], None, r"data\.target: expected a column name, got None"),
        (["a", ["b"]], "y", r"data\.features: expected a column name, got \['b'\]"),
        ({"a": 1}, "y", r"data\.features: expected a column name, got \{'a': 1\}"),
    ],
)
def test_config_mistakes_are_named(tmp_path: Path, features, target, message: str):
    with pytest.raises(CSVDataError, match=message):
        CSVDataModule(str(write(tmp_path, good_rows())), features=features, target=target)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"standardize": "yes"}, r"^standardize='yes': expected true or false"),
        ({"feature_mean": [0.0, 0.0]}, r"data\.feature_mean, data\.feature_std and data\.ta"),
        (
            {"feature_mean": [0.0], "feature_std": [1.0], "target_mean": 0.0},
            r"have 1 values for the 2 features \['a', 'b'\]",
        ),
        (
            {"feature_mean": [0.0, 0.0], "feature_std": [1.0, 0.0], "target_mean": 0.0},
            r"feature_std must be > 0",
        ),
        (
            {"feature_mean": [0.0, 0.0], "feature_std": [1.0, 1.0], "target_mean": "x"},
            r"data\.feature_mean/feature_std/target_mean: could not convert string to float",
        ),
        ({"path": None}, r"^path=None: expected the path of a CSV file"),
    ],
)
def test_standardization_arguments_are_checked(tmp_path: Path, arguments: dict, message: str):
    # A CSVDataError, or a plain ValueError from the arguments' check (the builder names `data`).
    arguments = {"path": str(write(tmp_path, good_rows())), "standardize": True, **arguments}
    with pytest.raises(ValueError, match=message):
        CSVDataModule(features=["a", "b"], target="y", **arguments)


def test_fast_reader_agrees_with_the_csv_module(tmp_path: Path):
    """numpy parses; the csv module only looks for the bad cell. Same numbers as float()."""
    rng = np.random.default_rng(0)
    values = rng.normal(0, 1e3, (200, 3)) * 10.0 ** rng.integers(-30, 30, (200, 3))
    rows = [",".join(repr(float(v)) for v in row) for row in values]
    X, y = read_csv(write(tmp_path, "a,b,y\n" + "\n".join(rows) + "\n"), ["a", "b"], "y")
    expected = torch.tensor([[float(c) for c in row.split(",")] for row in rows])
    assert torch.equal(torch.cat([X, y], dim=1), expected)


def test_cli_csv_errors_are_one_message_without_traceback(tmp_path: Path, entry_point):
    latin1 = write(tmp_path, "a,b,y\n1,2,3\ncaf\xe9,1,2\n".encode("latin-1"))
    common = [f"data.path={latin1}", "data.target=y"]
    run = f"hydra.run.dir={tmp_path / 'run'}"
    result = entry_point("train.py", "data=csv", "data.features=[a,b]", *common, run)
    assert result.returncode == 1
    assert f"{latin1}, line 3: not UTF-8 text (byte 0xe9 at position 4" in result.stderr
    assert "Traceback" not in result.stderr and "UnicodeDecodeError" not in result.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()

    result = entry_point(
        "train.py", "data=csv", "data.features=null", *common, f"hydra.run.dir={tmp_path / 'r2'}"
    )
    assert result.returncode == 1 and "data.features is null" in result.stderr
    assert "Traceback" not in result.stderr


# --- training, and eval/predict of the run from anywhere ---------------------------------------


def test_bad_csv_leaves_no_run_artefacts(cfg_factory, tmp_path: Path):
    from litplate.train import train

    path = write(tmp_path, "a,b,y\n1,2,3\n4,x,6\n")
    overrides = ["data=csv", f"data.path={path}", "data.features=[a,b]", "data.target=y"]
    cfg = cfg_factory(overrides=overrides)
    with pytest.raises(Exception, match=r"data\.csv, line 3, column 'b': 'x' is not a number"):
        train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "checkpoints").exists()


# --- class labels: ClassificationCSVDataModule ------------------------------------------------


def three_classes(path: Path, rows: int = 30) -> Path:
    lines = [f"{i % 3 + 0.1 * i},{i},{i % 3}" for i in range(rows)]
    path.write_text("\n".join(["a,b,label", *lines]) + "\n")
    return path


def test_labels_are_kept_and_counted(tmp_path: Path):
    data = ClassificationCSVDataModule(three_classes(tmp_path / "c.csv"), ["a", "b"], "label",
                                       standardize=True)  # fmt: skip
    assert data.n_classes == 3 and data.settled_config()["n_classes"] == 3
    assert data.settled_config()["target_mean"] == 0.0  # labels are never centred
    X, y = data.split("train")
    assert set(y.reshape(-1).tolist()) == {0.0, 1.0, 2.0}
    assert abs(X.mean(0)).max() < 1e-5  # the features are standardized


@pytest.mark.parametrize(("label", "n_classes"), [("1.5", None), ("-1", None), ("3", 3)])
def test_a_bad_label_names_its_line_and_column(tmp_path: Path, label: str, n_classes):
    path = tmp_path / "c.csv"
    path.write_text(f"a,label\n1,0\n\n2,1\n3,{label}\n4,2\n")
    with pytest.raises(CSVDataError) as error:
        ClassificationCSVDataModule(path, "a", "label", n_classes=n_classes)
    assert str(error.value).startswith(
        f"{path}, line 5, column 'label': '{label}' is not a class label: expected an integer "
        "from 0 to"
    )


def test_n_classes_below_two_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match=r"^n_classes=1: expected an integer >= 2"):
        ClassificationCSVDataModule(three_classes(tmp_path / "c.csv"), "a", "label", n_classes=1)
