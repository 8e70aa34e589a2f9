"""docs/make-it-yours.md, the guide: its blocks are whole files and commands.

The template's tests/test_template.py runs every block, as written, in a generated project.
"""

from __future__ import annotations

from tests.helpers.markdown import guide_blocks
from tests.helpers.project import ROOT

GUIDE = ROOT / "docs" / "make-it-yours.md"


def test_guide_has_files_commands_and_the_removal():
    blocks = guide_blocks(GUIDE)
    kinds = [kind for _, kind, _ in blocks]
    assert kinds.count("bash") == 4 and kinds.count("python") == 2 and kinds.count("yaml") == 3
    assert [path for path, _, _ in blocks if path] == [
        "configs/data/flowers.yaml",
        "src/litplate/models/softmax.py",
        "configs/model/softmax.yaml",
        "configs/experiment/flowers.yaml",
        "tests/test_flowers.py",
    ]
    removal = blocks[-2][2]
    assert "make remove-examples" in removal and "python -m pytest -n auto" in removal


def test_file_blocks_paste_whole():
    """A block is the whole file: nothing of the guide's (such as its path) sits inside it, so an
    experiment's `# @package _global_` stays the first line, where Hydra reads it."""
    for path, _, body in guide_blocks(GUIDE):
        assert "# file:" not in body, path
        if path.startswith("configs/experiment/"):
            assert body.startswith("# @package _global_\n"), path
