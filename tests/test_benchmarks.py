"""benchmarks/run.py at tiny sizes: every benchmark path runs and reports what it measured.

No timing is asserted: only that the rows are there and hold positive numbers.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks import run as bench

from tests.helpers.project import ROOT

KEEP = ["--threads", "0"]  # in-process: leave torch's threads to the rest of the test session


def table_rows(text: str, first_cell: str) -> list[list[str]]:
    """The cells of the markdown table rows whose first cell starts with `first_cell`."""
    rows = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].startswith(first_cell):
            rows.append(cells)
    return rows


def number(cell: str) -> float:
    match = re.match(r"[+-]?[\d.]+(e[+-]?\d+)?", cell.replace(",", ""))
    assert match, f"no number in {cell!r}"
    return float(match[0])


@pytest.mark.slow
def test_quick_w1_w2_report_medians_and_ratios(tmp_path: Path, capsys):
    output = tmp_path / "bench.md"
    assert (
        bench.main(["--quick", "--only", "W1,W2", "--no-profile", "--output", str(output), *KEEP])
        == 0
    )
    text = output.read_text()
    assert capsys.readouterr().out.endswith(text)  # printed as written, after the fits' output

    w1 = table_rows(text, "W1")
    defaults, quiet = "litplate, defaults", "litplate, logger/checkpoints/progress bar/summary off"
    floor = "Lightning's floor: steps that only compute the loss, no callbacks/logging"
    without = [f"{defaults} without {name}" for name in bench.WITHOUT]
    assert [row[0] for row in w1] == [
        f"W1, 20 epochs: {case}" for case in (defaults, quiet, floor, *without)
    ]
    for row, name in zip(w1[3:], bench.WITHOUT, strict=True):  # what each default costs
        assert re.fullmatch(rf"{name} costs -?[\d.]+ ms/epoch", row[-1])
    w2 = table_rows(text, "W2 ")
    per_sample = "plain loop fed by DataLoader(TensorDataset(X, y), shuffle=True)"
    assert [row[0].split(": ", 1)[1] for row in w2] == [
        *(defaults, quiet, floor, per_sample),  # the MLP
        *(defaults, floor),  # the linear model
    ]
    assert w2[0][0].startswith("W2 MLP 1-64-1, 10,000 points")
    assert w2[-1][0].startswith("W2 linear, 10,000 points")
    for name, litplate, plain, ratio, *_ in w1 + w2:
        assert number(litplate) > 0 and number(plain) > 0, name
        assert number(ratio) == pytest.approx(number(litplate) / number(plain), rel=0.02), name
    assert all(row[1].endswith("ms/epoch") for row in w1)
    assert "≤ 3x" in w1[0][4] and "≤ 1.5x" in w2[0][4]
    assert "9.4x" in w1[1][5] and "12.5x" in w2[3][5]  # the issue's anchors beside them
    assert "CPU" in text and "torch / lightning" in text
    assert "Cold start" not in text  # only what --only asked for


def test_profile_shows_where_litplate_spends_its_time(capsys):
    assert bench.main(["--quick", "--profile", "W1", *KEEP]) == 0
    text = capsys.readouterr().out
    text = text[text.index("cProfile") :]  # after the fits' own output
    assert "cProfile of litplate (defaults), W1, 20 epochs" in text
    assert re.search(r"\d+\.\d+ s +\d+\.\d+ % +lightning\n", text)  # own time of the package
    # The fit, called once, and its loop's step, once per epoch.
    assert re.search(r" 1 +[\d.]+  lightning/pytorch/trainer/trainer\.py:\d+\(fit\)\n", text)
    assert re.search(r" 20 +[\d.]+  lightning/pytorch/loops/fit_loop\.py:\d+\(advance\)\n", text)


def test_unknown_section_is_refused(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--only", "W3"])
    assert "--only: unknown W3" in capsys.readouterr().err


@pytest.mark.slow
def test_cold_start_runs_from_the_command_line(tmp_path: Path):
    # W1 and W2 run in-process above; the cold start times fresh processes of its own.
    logs_before = sorted((ROOT / "logs").rglob("*"))
    output = tmp_path / "bench.md"
    result = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--quick", "--only", "start", "--output", output],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = output.read_text()
    assert not [row for row in table_rows(text, "W") if ": " in row[0]]  # only what --only asked
    (cold,) = table_rows(text, "Cold start")
    assert number(cold[1]) > 0 and number(cold[2]) > 0 and "≤ 1.5x" in cold[4]
    entry_points = table_rows(text, "`train.py --")
    assert [row[0] for row in entry_points] == ["`train.py --help`", "`train.py --cfg job`"]
    assert [row[2] for row in entry_points] == ["no", "no"]  # neither imports torch
    assert "Reading a CSV file" not in text
    # The cold-start runs went to a temporary directory, not the project's logs/.
    assert sorted((ROOT / "logs").rglob("*")) == logs_before


@pytest.mark.slow
def test_memory_and_csv_rows_come_from_their_child_processes(tmp_path: Path, monkeypatch):
    """The children run here, but for the bad cell, whose fresh process checks `_child` itself."""
    real_child = bench._child
    children = []

    def child(args: list[str]) -> dict:
        children.append(args[:2])
        if args[:2] == ["--csv-child", "bad cell"]:
            return real_child(args)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert bench.main(args) == 0
        return json.loads(printed.getvalue().strip().splitlines()[-1])

    monkeypatch.setattr(bench, "_child", child)
    output = tmp_path / "bench.md"
    bench.main(["--quick", "--only", "memory,csv", "--output", str(output), *KEEP])
    assert [args[0] for args in children].count("--memory-child") == 3  # baseline, MLP, linear
    assert [args[1] for args in children if args[0] == "--csv-child"] == list(bench.CSV_CASES)
    text = output.read_text()
    memory = [row for row in table_rows(text, "W2 ") if ": " not in row[0]]
    assert [row[0] for row in memory] == ["W2 MLP, 10,000 points", "W2 linear, 10,000 points"]
    for row in memory:
        assert number(row[1]) > 0 and number(row[2]) > 0 and number(row[3]) > 0
    read, module, bad = (
        table_rows(text, start)[0] for start in ("read_csv", "CSVDataModule", "a bad")
    )
    for row in (read, module, bad):
        assert row[1] == "20,000" and number(row[2]) > 0.2 and number(row[3]) > 0
        assert row[3].endswith((" s", " ms"))
    assert "`line 20002, column 'rooms': 'x' is not a number`" in bad[0]
    assert "Cold start" not in text


def test_a_goal_below_lightnings_floor_is_called_out():
    def row(case: str, seconds: float, goal: float | None) -> bench.Row:
        return bench.Row(f"W1, 9 epochs: {case}", "ms/epoch", 1, [seconds], [1.0], goal)

    over = [row(bench.DEFAULTS, 9.0, 3), row(bench.FLOOR, 3.3, None)]
    (line,) = [line for line in bench._reading(over) if line.startswith("- ")]
    assert line.startswith("- W1, 9 epochs: Lightning's floor alone is 3.3x the plain loop")
    assert "above the 3x goal" in line
    assert bench._reading([row(bench.DEFAULTS, 9.0, 3), row(bench.FLOOR, 2.9, None)]) == []


def test_csv_reading_is_held_to_the_issue_goal_at_its_size():
    report = bench.Report(bench.Sizes(), ["csv"])
    for case, seconds, peak in (("read_csv", 1.4, 70.0), ("CSVDataModule", 3.5, 90.0)):
        report.csv.append(
            {"case": case, "rows": 2_000_000, "file_mb": 28.2, "seconds": seconds,
             "peak_mb": peak, "baseline_mb": 300.0, "ratio": peak / 28.2, "error": ""}
        )  # fmt: skip
    text = bench.markdown(report, "python benchmarks/run.py --only csv", {})
    (read,) = table_rows(text, "read_csv")
    (module,) = table_rows(text, "CSVDataModule")
    assert read[1:] == ["2,000,000", "28.2 MB", "1.40 s", "70 MB", "2.5x", "met"]
    assert module[-1] == "**missed**"  # 3.5 s > 3 s
