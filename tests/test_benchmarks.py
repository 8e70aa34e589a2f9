"""benchmarks/run.py at tiny sizes: every benchmark path runs and reports what it measured.

No timing is asserted: only that the rows are there, hold positive numbers and consistent ratios,
and that goals are judged and reported as the issue asks.
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
    captured = capsys.readouterr()
    assert captured.out == text  # the fits' console output went to /dev/null
    assert "GPU available" not in captured.err and "Seed set" not in captured.err

    w1 = table_rows(text, "W1")
    defaults, quiet = bench.DEFAULTS, bench.QUIETED
    anchors = (bench.FLOOR, bench.PEER, bench.PLAIN)
    without = [f"{defaults} without {name}" for name in bench.WITHOUT]
    assert [row[0] for row in w1] == [
        f"W1, 20 epochs: {case}" for case in (defaults, quiet, *anchors, *without)
    ]
    for row, name in zip(w1[5:], bench.WITHOUT, strict=True):  # what each default costs
        assert re.fullmatch(rf"{name} costs -?[\d.]+ ms/epoch", row[-1])
    w2 = table_rows(text, "W2 ")
    threads = f"torch's default threads ({bench.TORCH_DEFAULT_THREADS})"
    assert [row[0].split(": ", 1)[1] for row in w2] == [
        *(defaults, quiet, *anchors, f"{defaults}, {threads}", f"{bench.FLOOR}, {threads}"),
        *(defaults, *anchors),  # the linear model
    ]
    assert w2[0][0].startswith("W2 MLP 1-64-1, 10,000 points")
    assert w2[-1][0].startswith("W2 linear, 10,000 points")
    assert all(row[1].endswith("ms/epoch") for row in w1)
    for rows in (w1[:5], w2[:5], w2[7:]):
        by_case = {row[0].split(": ", 1)[1]: number(row[1]) for row in rows}
        floor, peer, plain = (by_case[case] for case in anchors)
        for name, time, vs_plain, vs_floor, vs_peer, *_ in rows:
            assert number(time) > 0, name
            assert number(vs_plain) == pytest.approx(number(time) / plain, rel=0.02), name
            assert number(vs_floor) == pytest.approx(number(time) / floor, rel=0.02), name
            assert number(vs_peer) == pytest.approx(number(time) / peer, rel=0.02), name
    # The goals, with the ratio beside each and its verdict.
    assert re.fullmatch(r"≤ 2x floor: [\d.]+x (met|\*\*missed\*\*)", w1[0][5])
    verdict = r"(met|\*\*missed\*\*)"
    assert re.fullmatch(
        rf"≤ 1.2x floor: [\d.]+x {verdict}; ≥ 4x faster than the peer: [\d.]+x {verdict}",
        w2[0][5],
    )
    assert re.fullmatch(rf"≤ 1.2x floor: [\d.]+x {verdict}", w2[7][5])
    assert [row[5] for row in w1[1:5] + w2[1:5] + w2[8:]] == [""] * 11  # no goal for anchors
    assert "one run" in w2[9][-1]  # the peer of W2 linear runs once
    assert "CPU" in text and "torch / lightning" in text
    assert f"users of `train.py` get torch's default, {bench.TORCH_DEFAULT_THREADS}" in text
    assert "Cold start" not in text and "## GPU" not in text  # only what --only asked for


def test_a_missed_goal_gets_a_paragraph_slot_that_a_rewrite_keeps(tmp_path: Path):
    def row(case: str, seconds: float) -> bench.Row:
        anchors = {"floor": [1.0], "plain": [0.5]}
        goals = bench.W1_GOAL if case == bench.DEFAULTS else ()
        return bench.Row("W1, 9 epochs", case, "ms/epoch", 1, [seconds], anchors, goals)

    report = bench.Report(bench.Sizes(), ["W1"], rows=[row(bench.DEFAULTS, 2.5)])
    text = bench.markdown(report, "python benchmarks/run.py", {})
    (defaults,) = table_rows(text, "W1")
    assert defaults[2:6] == ["5x", "2.5x", "", "≤ 2x floor: 2.5x **missed**"]
    assert "### Why W1, 1000 epochs misses its goal" in text
    assert bench.WHY_PLACEHOLDER in text
    # A paragraph written into the slot survives the next run's rewrite; a met goal has no slot.
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(text.replace(bench.WHY_PLACEHOLDER, "Lightning's hooks: see the profile."))
    again = bench.markdown(report, "python benchmarks/run.py", {}, bench.kept_paragraphs(path))
    assert "Lightning's hooks: see the profile." in again and bench.WHY_PLACEHOLDER not in again
    report.rows = [row(bench.DEFAULTS, 1.5)]
    met = bench.markdown(report, "python benchmarks/run.py", {})
    assert "≤ 2x floor: 1.5x met" in met and "### Why" not in met


@pytest.mark.slow
def test_the_gpu_section_runs_its_cases_on_the_device_it_is_given():
    # No GPU here: the same code on the CPU (trainer=cpu), at tiny sizes.
    report = bench.Report(bench.QUICK, ["gpu"])
    bench.bench_gpu(report, preset="cpu", device="cpu")
    text = bench.markdown(report, "python benchmarks/run.py --only gpu", {})
    rows = table_rows(text, "W2 ")
    cases = [row[0].split(": ", 1)[1] for row in rows]
    expected = [bench.PLAIN]
    for precision in bench.PRECISIONS:
        expected += [f"{bench.FLOOR} ({precision})", f"{bench.DEFAULTS} ({precision})"]
    expected.append(f"{bench.DEFAULTS} (32-true), data.on_device=false: batches copied per step")
    assert cases == expected * 2  # the MLP, then the linear model
    for row in rows:
        assert number(row[1]) > 0 and number(row[2]) > 0 and number(row[3]) > 0
    for case, floor in ((2, 1), (4, 3)):  # vs the floor in its own precision
        ratio = number(rows[case][1]) / number(rows[floor][1])
        assert number(rows[case][3]) == pytest.approx(ratio, rel=0.02)


def test_without_cuda_the_gpu_rows_say_not_measured(monkeypatch):
    monkeypatch.setattr(bench.torch.cuda, "is_available", lambda: False)
    report = bench.Report(bench.QUICK, ["gpu"])
    bench.bench_gpu(report)
    text = bench.markdown(report, "python benchmarks/run.py --only gpu", {})
    assert "## GPU" in text and "not measured (no CUDA GPU)" in text
    assert not table_rows(text, "W2 ")


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
    cold, imported = table_rows(text, "`train.py experiment=linear") + table_rows(text, "`python")
    assert number(cold[1]) > 0 and number(imported[1]) > 0
    assert number(cold[2]) == pytest.approx(number(cold[1]) / number(imported[1]), rel=0.05)
    assert re.fullmatch(r"≤ 1.35x `import lightning`: [\d.]+x (met|\*\*missed\*\*)", cold[3])
    table = text[text.index("| step | s |") :].split("\n\n")[0]
    phases = dict(row[:2] for row in table_rows(table, "")[2:])  # after the header
    for step in ("trainer.fit", "trainer.test", "plot predictions.png", "write metrics.json"):
        assert number(phases[step]) > 0, step
    steps = [number(value) for name, value in phases.items() if name != "train(), in all"]
    assert sum(steps) == pytest.approx(number(phases["train(), in all"]), abs=0.01)
    entry_points = table_rows(text, "`train.py --")
    assert [row[0] for row in entry_points] == ["`train.py --help`", "`train.py --cfg job`"]
    assert [row[2] for row in entry_points] == ["no", "no"]  # neither imports torch
    assert "Reading a CSV file" not in text
    assert "The slowest packages to import" not in text  # --quick leaves the import tables out
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


def test_import_tables_come_from_python_x_importtime():
    imported = bench._imports([sys.executable, "-X", "importtime", "-c", "import json"])
    assert imported["json"] > 0 and "torch" not in imported
    report = bench.Report(bench.Sizes(), ["start"])
    report.commands = [("train.py --help", 0.5, False)]
    report.startup_imports, report.beyond_lightning = [("lightning", 2.6)], [("hydra", 0.1)]
    text = bench.markdown(report, "python benchmarks/run.py --only start", {})
    assert table_rows(text, "`train.py --help`") == [["`train.py --help`", "0.50 s", "no"]]
    assert table_rows(text, "lightning") == [["lightning", "2.60"]]
    assert table_rows(text, "hydra") == [["hydra", "0.10"]]


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
