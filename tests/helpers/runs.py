"""Readers of what a run or a sweep leaves behind, and the overrides that keep a run quiet."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

QUIET = ["callbacks.progress_bar=null", "callbacks.model_summary=null"]


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def digests(directory: Path) -> dict[str, str]:
    """Every file under `directory` by its SHA-256 (the lock file of a live run aside)."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != ".run.lock"
    }


def read_summary(sweep_dir: Path) -> list[dict[str, str]]:
    """The rows of a sweep's summary.csv (written by the SweepSummary callback)."""
    with (sweep_dir / "summary.csv").open(newline="") as file:
        return list(csv.DictReader(file))


def lightning_epochs(run_dir: Path) -> dict[str, list[float]]:
    """Per-epoch values as Lightning's CSV logger wrote them (one row per epoch and key)."""
    columns: dict[str, list[float]] = {}
    with (run_dir / "csv" / "metrics.csv").open() as file:
        for row in csv.DictReader(file):
            for key, value in row.items():
                if value:
                    columns.setdefault(key, []).append(float(value))
    return columns


def job_statuses(sweep_dir: Path) -> dict[str, str]:
    """The sweep summary's status per job number."""
    return {row["job"]: row["status"] for row in read_summary(sweep_dir)}


def one_clear_error(result, *expected: str) -> None:
    """A script's run that stopped on a user's error: exit 1, no traceback, the texts in stderr."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr
