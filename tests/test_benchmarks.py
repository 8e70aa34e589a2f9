"""benchmarks/run.py writes the tables, ratios and verdicts; no speed goal is asserted here."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from benchmarks import run as bench

from tests.helpers.project import ROOT

LITPLATE, FLOOR, PEER, PLAIN = bench.CASES.values()


def table(text: str, heading: str) -> dict[str, list[str]]:
    """The rows of the table under the `## heading...` section, by their first cell."""
    section = text.split(f"\n## {heading}", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")][2:]  # no header
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return {row[0]: row[1:] for row in cells}


def test_each_case_gets_its_ratio_to_the_floor_and_the_goals_a_verdict():
    w2 = bench.workload_table("W2: MLP", {"litplate": 1.2, "floor": 1.0, "peer": 5.0}, True)
    w1 = bench.workload_table("W1: linear", {"litplate": 3.0, "floor": 1.0, "plain": 0.5}, False)
    slow = bench.workload_table("W2 slow", {"litplate": 1.5, "floor": 1.0, "peer": 5.0}, True)
    text = bench.markdown([w2, w1, slow], bench.Sizes(), "python benchmarks/run.py")
    assert table(text, "W2: MLP") == {
        LITPLATE: ["1.2", "1.20x", "≤ 1.25x floor", "met"],
        FLOOR: ["1", "1.00x", "", ""],
        PEER: ["5", "5.00x", "litplate ≥ 4x faster: 4.17x", "met"],
    }
    assert table(text, "W1")[LITPLATE] == ["3", "3.00x", "", ""]  # W1: no goal
    assert table(text, "W1")[PLAIN] == ["0.5", "0.50x", "", ""]
    assert [row[-1] for row in table(text, "W2 slow").values()] == ["**missed**", "", "**missed**"]
    machine = text.splitlines()[2]
    assert "cores" in machine and "torch 2" in machine and "lightning 2" in machine
    assert "medians of 3 rounds (after 1 warm-up)" in text
    assert 3 <= len(text.split("## How to read", 1)[1].strip().splitlines()) <= 5


def test_without_cuda_the_gpu_rows_say_not_measured(monkeypatch):
    monkeypatch.setattr(bench.torch.cuda, "is_available", lambda: False)
    text = bench.markdown(bench.bench_gpu(bench.QUICK), bench.QUICK, "python benchmarks/run.py")
    rows = table(text, "GPU")
    assert list(rows) == [f"{p}: {LITPLATE}" for p in bench.PRECISIONS]
    assert all(row[0] == "not measured (no CUDA)" for row in rows.values())


@pytest.mark.parametrize("make", [bench.w1, bench.w2])
def test_the_floor_and_the_peer_build_the_job_litplate_is_given(make, tmp_path: Path):
    job = make(bench.Sizes())
    cfg = bench.make_cfg(list(job.overrides), tmp_path)
    data, model = cfg.data, cfg.model
    assert round((data.end - data.start) / data.step) == job.points
    assert (data.batch_size, data.train_fraction) == (job.batch_size, job.train_fraction)
    assert (cfg.trainer.max_epochs, data.target == "sine") == (job.epochs, job.sine)
    assert list(model.get("hidden_sizes") or [None]) == [job.hidden]
    assert model.loss["_target_"] == f"torch.nn.{type(job.loss()).__name__}"
    ours = job.optimizers([torch.nn.Parameter(torch.zeros(1))])
    optimizer = ours["optimizer"] if isinstance(ours, dict) else ours
    assert model.optimizer["_target_"] == f"torch.optim.{type(optimizer).__name__}"
    for key in ("lr", "momentum"):
        assert model.optimizer.get(key, 0) == optimizer.defaults.get(key, 0), key
    assert (model.get("scheduler") is not None) == isinstance(ours, dict)  # W1: cosine


def test_unknown_section_is_refused(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--sections", "W3"])
    assert "unknown W3" in capsys.readouterr().err


def test_the_committed_report_is_short_and_has_every_table():
    text = (ROOT / "BENCHMARKS.md").read_text()
    assert len(text.splitlines()) <= 150
    for heading in ("W2", "W1", "Cold start", "GPU", "How to read"):
        assert f"\n## {heading}" in text, heading


@pytest.mark.slow
def test_a_quick_run_measures_every_case_in_a_fresh_process(tmp_path: Path):
    logs_before = sorted((ROOT / "logs").rglob("*"))
    output = tmp_path / "bench.md"
    args = [sys.executable, "benchmarks/run.py", "--quick", "--output", str(output)]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    text = output.read_text()
    assert result.stdout == text
    every = [LITPLATE, FLOOR, PEER, PLAIN]
    for heading, cases in (("W2", every), ("W1", every), ("Cold start", None)):
        rows = table(text, heading)
        assert cases is None or list(rows) == cases
        floor = next(float(row[0]) for case, row in rows.items() if "floor" in case)
        for seconds, ratio, *_ in rows.values():
            # Times shown to 3 significant figures (each up to 0.5% off), the ratio to 2 places.
            expected = pytest.approx(float(seconds) / floor, rel=0.02, abs=0.01)
            assert float(ratio.removesuffix("x")) == expected
    start = next(row for case, row in table(text, "Cold start").items() if "train.py" in case)
    verdicts = [table(text, "W2")[LITPLATE][3], table(text, "W2")[PEER][3], start[3]]
    assert set(verdicts) <= {"met", "**missed**"} and start[2] == "≤ 1.35x floor"
    assert sorted((ROOT / "logs").rglob("*")) == logs_before  # every run wrote to a temp dir


@pytest.mark.slow
def test_the_gpu_cases_run_in_the_precision_they_are_given():  # on the CPU here
    cases = ("litplate", "floor", "plain")
    times = bench.measure(bench.w2(bench.QUICK), bench.QUICK, cases, "cpu", "bf16-mixed")
    assert list(times) == list(cases) and min(times.values()) > 0
