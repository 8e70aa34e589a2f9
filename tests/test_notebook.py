"""notebooks/01_workflow.ipynb: stored clean, and run by a Jupyter kernel so that it cannot rot."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers.project import ROOT

NOTEBOOK = ROOT / "notebooks" / "01_workflow.ipynb"


def test_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    assert [cell.outputs for cell in code] == [[] for _ in code]
    assert [cell.execution_count for cell in code] == [None for _ in code]


@pytest.mark.slow
def test_notebook_runs_and_reproduces_the_course(tmp_path: Path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # As papermill does: a cell after the one tagged "parameters" overrides its values.
    (index,) = [
        i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])
    ]
    log_dir = tmp_path / "logs"
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(f"LOG_DIR = Path({str(log_dir)!r})"))

    # Run from a directory that is neither the project root nor notebooks/.
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()

    printed = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "stream" and output.name == "stdout"
    )
    # The course's random start, and its numbers after 100 epochs: with a Trainer, with train(cfg).
    assert "{'weights': [0.33669036626815796], 'bias': [0.12880940735340118]}" in printed
    assert printed.count("weight=0.5784 bias=0.3513") == 2
    assert "same predictions: True" in printed
    difference = re.search(r"largest difference from the model: (\S+)", printed)
    assert difference and float(difference.group(1)) <= 1e-6

    # The plots are shown inline: data, untrained and trained predictions, loss curves.
    images = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert len(images) == 4

    # The run of train(cfg) and the export landed in LOG_DIR.
    (run_dir,) = log_dir.iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert round(metrics["weight"], 4) == 0.5784 and round(metrics["bias"], 4) == 0.3513
    assert (run_dir / "model.safetensors").is_file()
    assert (run_dir / "export" / "model.onnx").is_file()
