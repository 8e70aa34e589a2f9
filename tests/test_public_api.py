"""The project uses only the public APIs of the packages under it (issue: stock Lightning).

A private member (`obj._name`), an import from a private module (`hydra._internal`) or of a
private name, a monkeypatch (assigning to an attribute of something imported) or a string naming
a private module of Lightning, Hydra, Optuna or torch can change in any release without notice.
The scan reads the source (AST) of everything the project runs; `self._name` and `cls._name` are
the class's own, and the standard library's documented underscore names (`os._exit`) are public.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from tests.helpers.project import ROOT

SCANNED = ("src", "scripts", "hooks")
PRIVATE_PATH = re.compile(r"\b(lightning|hydra|optuna|torch|torchmetrics)(\.\w+)*\._[a-z]\w*")
# (file, the private thing): each with why it cannot be avoided and a test that fails on a change.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("src/litplate/run/files.py", "monkeypatch threading.excepthook"): (
        "Python documents threading.excepthook as the hook to override for a thread's uncaught "
        "exception; set and restored around a run, so that TensorBoard's writer thread does not "
        "print a traceback for a full disk (test_expected_errors.py: "
        "test_a_full_disk_while_tensorboard_writes_names_its_events_file)"
    ),
}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def findings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    imported = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                imported.add((alias.asname or alias.name).split(".")[0])
                if any(_private(part) for part in alias.name.split(".")):
                    found.append(f"{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            imported.update(alias.asname or alias.name for alias in node.names)
            module = node.module or ""
            if any(_private(part) for part in module.split(".")):
                found.append(f"{node.lineno}: from {module} import ...")
            found += [f"{node.lineno}: import {a.name}" for a in node.names if _private(a.name)]
    # A standard-library module imported under its own name (not `import torch as os`).
    stdlib = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.asname is None and alias.name.split(".")[0] in sys.stdlib_module_names
    }
    # `self._name` is the class's own only where the class defines it: in a subclass of
    # Lightning's, `self._trainer` is Lightning's private attribute.
    own_names = {}
    for cls_node in ast.walk(tree):
        if isinstance(cls_node, ast.ClassDef):
            names = set()
            for inner in ast.walk(cls_node):
                if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(inner.name)
                elif isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Store):
                    names.add(inner.id)
                elif isinstance(inner, ast.Attribute) and isinstance(inner.ctx, ast.Store):
                    names.add(inner.attr)
            for inner in ast.walk(cls_node):
                own_names.setdefault(id(inner), names)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value
            own = (
                isinstance(owner, ast.Name)
                and owner.id in ("self", "cls")
                and node.attr in own_names.get(id(node), ())
            )
            from_stdlib = isinstance(owner, ast.Name) and owner.id in stdlib
            if not own and not from_stdlib:
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) >= 2
        ):
            # The same use through a name in a string: getattr(trainer, "_checkpoint_connector").
            owner, name = node.args[0], node.args[1]
            private = isinstance(name, ast.Constant) and isinstance(name.value, str)
            if private and _private(name.value):
                own = (
                    isinstance(owner, ast.Name)
                    and owner.id in ("self", "cls")
                    and name.value in own_names.get(id(node), ())
                )
                if not own:
                    found.append(f"{node.lineno}: {ast.unparse(node)}")
            base = owner
            while isinstance(base, ast.Attribute):
                base = base.value
            if node.func.id == "setattr" and isinstance(base, ast.Name) and base.id in imported:
                found.append(f"{node.lineno}: monkeypatch {ast.unparse(node)}")
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute):
                    base = target
                    while isinstance(base, ast.Attribute):
                        base = base.value
                    if isinstance(base, ast.Name) and base.id in imported:
                        found.append(f"{node.lineno}: monkeypatch {ast.unparse(target)}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            for match in PRIVATE_PATH.finditer(node.value):
                if not match.group(0).endswith("_"):  # Hydra's keys: _target_, _partial_, ...
                    found.append(f"{node.lineno}: names {match.group(0)}")
    return found


def scanned_files() -> list[Path]:
    return sorted(path for folder in SCANNED for path in (ROOT / folder).rglob("*.py"))


def test_no_private_member_of_another_package_is_used():
    problems = [
        f"{path.relative_to(ROOT)}:{finding}"
        for path in scanned_files()
        for finding in findings(path)
        if (str(path.relative_to(ROOT)), finding.split(": ", 1)[1]) not in EXCEPTIONS
    ]
    assert not problems, "private APIs used:\n" + "\n".join(problems)
    assert len(EXCEPTIONS) <= 3


@pytest.mark.parametrize(
    "source",
    [
        "from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultMetric",
        "from hydra._internal.utils import run_and_report",
        "trainer._checkpoint_connector.dump_checkpoint()",
        "import lightning.pytorch.strategies.launchers.subprocess_script as s\ns._X",
        "from lightning.pytorch.callbacks import ModelCheckpoint\nModelCheckpoint.state_key = 1",
        "x = 'hydra._internal.core_plugins.basic_sweeper.BasicSweeper'",
        "super()._save_checkpoint(trainer, path)",
        "getattr(trainer, '_checkpoint_connector').dump_checkpoint()",
        "import lightning as L\nclass M(L.LightningModule):\n    def f(self):\n"
        "        return self._trainer",
        "from lightning.pytorch.callbacks import ModelCheckpoint\n"
        "setattr(ModelCheckpoint, 'state_key', 1)",
        "import lightning.pytorch.core.saving as os\nos._ALLOWED_INSTANTIATORS.add('x')",
    ],
)
def test_the_scan_finds_each_kind(source: str, tmp_path: Path):
    path = tmp_path / "probe.py"
    path.write_text(source + "\n")
    assert findings(path)


def test_own_and_standard_library_names_pass(tmp_path: Path):
    path = tmp_path / "probe.py"
    path.write_text(
        "import os\nclass A:\n    def f(self):\n        self._x = 1\n        os._exit(0)\n"
    )
    assert findings(path) == []
