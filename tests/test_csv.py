"""Bring your own data: a CSV file, and one clear error per kind of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from litplate.data import CSVDataModule
from litplate.data.csv import CSVDataError
from tests.conftest import ROOT


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return path


def good_rows(n: int = 20) -> str:
    return "a,b,y\n" + "".join(f"{i},{2 * i},{3 * i + 1}\n" for i in range(n))


def test_reads_features_and_target(tmp_path: Path):
    dm = CSVDataModule(str(write(tmp_path, good_rows())), features=["b", "a"], target="y")
    assert dm.X.shape == (20, 2) and dm.y.shape == (20, 1) and dm.n_features == 2
    assert dm.X[3].tolist() == [6.0, 3.0] and dm.y[3].item() == 10.0
    assert [len(dm.split(s)[0]) for s in ("train", "val", "test")] == [16, 4, 4]


def test_row_shuffle_is_seeded(tmp_path: Path):
    path = str(write(tmp_path, good_rows()))
    a = CSVDataModule(path, ["a"], "y", shuffle_rows=True, rows_seed=1)
    b = CSVDataModule(path, ["a"], "y", shuffle_rows=True, rows_seed=1)
    c = CSVDataModule(path, ["a"], "y", shuffle_rows=True, rows_seed=2)
    assert torch.equal(a.X, b.X) and not torch.equal(a.X, c.X)
    assert sorted(a.X[:, 0].tolist()) == [float(i) for i in range(20)]


def test_example_csv_ships_with_the_template():
    dm = CSVDataModule(str(ROOT / "data" / "houses.csv"), ["area", "rooms"], "price")
    assert dm.X.shape == (200, 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, r"data\.csv: file not found"),
        ("", r"data\.csv: the file is empty \(no header row\)"),
        ("a,b,y\n", r"data\.csv: only a header, no data rows"),
        ("a,y\n1,2\n", r"data\.csv: no column 'b' in the header \(line 1\)"),
        ("a,b,y\n1,2,3\n4,x,6\n", r"data\.csv, line 3, column 'b': 'x' is not a number"),
        ("a,b,y\n1,2,3\n4,,6\n", r"data\.csv, line 3, column 'b': empty cell"),
        ("a,b,y\n1,2,3\n1,2,nan\n", r"data\.csv, line 3, column 'y': 'nan' is not a finite number"),
        ("a,b,y\n1,inf,3\n", r"data\.csv, line 2, column 'b': 'inf' is not a finite number"),
        ("a,b,y\n1,2,3\n1,2\n", r"data\.csv, line 3: 2 cells where the header has 3"),
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


def test_training_on_the_example_csv_learns_one_weight_per_feature(cfg_factory):
    from litplate.train import train

    cfg = cfg_factory(overrides=["experiment=linear", "data=csv", "callbacks.progress_bar=null"])
    metrics = train(cfg)
    # data/houses.csv: price = 0.8 * area + 0.15 * rooms + 0.2 + noise(0.02)
    assert abs(metrics["weight/0"] - 0.8) < 0.02 and abs(metrics["weight/1"] - 0.15) < 0.02
    assert abs(metrics["bias"] - 0.2) < 0.03 and metrics["test/r2"] > 0.99
    run_dir = Path(cfg.paths.output_dir)
    for checkpoint in (run_dir / "checkpoints").glob("*.ckpt"):
        loaded = torch.load(checkpoint, weights_only=True)
        assert loaded["state_dict"]["weights"].shape == (2,)
        assert loaded["run_config"]["model"]["n_features"] == 2


def test_bad_csv_leaves_no_run_artefacts(cfg_factory, tmp_path: Path):
    from litplate.train import train

    path = write(tmp_path, "a,b,y\n1,2,3\n4,x,6\n")
    overrides = ["data=csv", f"data.path={path}", "data.features=[a,b]", "data.target=y"]
    cfg = cfg_factory(overrides=overrides)
    with pytest.raises(Exception, match=r"data\.csv, line 3, column 'b': 'x' is not a number"):
        train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "checkpoints").exists()
