"""Results appear whole or not at all: `litplate.run.files`, behind every result file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from litplate.export import FORMATS, export
from litplate.run.files import atomic_path, atomic_write
from tests.helpers.project import make_cfg


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path):
    path = tmp_path / "metrics.json"
    path.write_text("old\n")
    with pytest.raises(RuntimeError, match="crash"), atomic_write(path) as file:
        file.write("half of the new")
        raise RuntimeError("crash")
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_a_finished_write_replaces_the_file(tmp_path: Path):
    path = tmp_path / "predictions.csv"
    path.write_text("old\n")
    with atomic_write(path, newline="") as file:
        file.write("x,prediction\r\n")
    assert path.read_bytes() == b"x,prediction\r\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv"]


def test_keep_suffix_gives_writers_the_suffix_they_choose_the_format_by(tmp_path: Path):
    with atomic_path(tmp_path / "model.onnx", keep_suffix=True) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".onnx" and tmp.name.startswith(".")
        tmp.write_bytes(b"model")
    assert (tmp_path / "model.onnx").read_bytes() == b"model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def modes(directory: Path, names: list[str]) -> dict[str, str]:
    return {name: oct(stat.S_IMODE((directory / name).stat().st_mode)) for name in names}


def test_results_get_the_mode_a_plain_open_gives(trained_run: Path, tmp_path: Path):
    umask = os.umask(0o022)
    os.umask(umask)
    names = ["model.safetensors", "metrics.json", "checkpoints/best.ckpt", "checkpoints/last.ckpt"]
    assert modes(trained_run, names) == dict.fromkeys(names, oct(0o666 & ~umask))
    umask = os.umask(0o027)  # another umask is honoured too
    try:
        for fmt in FORMATS:
            ckpt = trained_run / "checkpoints" / "best.ckpt"
            export(make_cfg("export", tmp_path / fmt, [f"ckpt_path={ckpt}", f"format={fmt}"]))
    finally:
        os.umask(umask)
    names = [f"{fmt}/{name}" for fmt, name in FORMATS.items()]
    names += [f"{fmt}/export.json" for fmt in FORMATS]
    assert modes(tmp_path, names) == dict.fromkeys(names, oct(0o640))
