"""Docs that cannot drift: every command block in README.md and docs/*.md is checked here.

A ```bash block is either checked or marked, on the line right above it, with
`<!-- needs: gpu -->` (or `mps`, `slurm`: hardware this machine lacks; its scripts' configs are
still composed) or `<!-- not run: REASON -->` (the network, a server, minutes of running).
Every line of an unmarked block must be one of:

- `python scripts/NAME.py ARGS`: the config composes (every group, option and key exists; each
  value of a `-m` sweep composes), as `python scripts/NAME.py ARGS --cfg job` would say; a few are
  also run for real, with their arguments as written, in the slow selection (REAL_RUNS);
- `make TARGET`: the target exists (`make -n`).

docs/make-it-yours.md is run block by block by tests/test_guide.py instead. The troubleshooting
table's quoted messages are triggered and compared with what the code prints.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from litplate.run.run_directory import lock_run_directory
from tests.helpers.markdown import broken_links
from tests.helpers.project import CONFIG_DIR, ROOT
from tests.helpers.runs import read_metrics

HARDWARE = {"gpu", "mps", "slurm"}
MARKER = re.compile(r"<!-- (needs: (?P<needs>\w+)|not run: (?P<reason>.+?)) -->")
FENCE = re.compile(r"^(?P<indent>[ \t]*)```bash\n(?P<body>.*?)^(?P=indent)```", re.S | re.M)
SCRIPT = re.compile(r"^python scripts/(\w+)\.py\b")


def doc_files() -> list[Path]:
    pages = sorted((ROOT / "docs").glob("*.md"))
    return [ROOT / "README.md", *(p for p in pages if p.name != "make-it-yours.md")]


def bash_blocks() -> list[tuple[str, str | None, str]]:
    """(where, marker or None, body) for every ```bash block."""
    blocks = []
    for path in doc_files():
        text = path.read_text()
        for fence in FENCE.finditer(text):
            above = text[: fence.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
            marker = MARKER.fullmatch(above)
            line = text.count("\n", 0, fence.start()) + 1
            where = f"{path.relative_to(ROOT)}:{line}"
            body = "\n".join(row.removeprefix(fence["indent"]) for row in fence["body"].split("\n"))
            blocks.append((where, marker and marker.group(1), body))
    return blocks


def commands(body: str) -> list[list[str]]:
    """The block's commands as argument lists (continuation lines joined, comments dropped)."""
    joined = body.replace("\\\n", " ")
    return [args for line in joined.splitlines() if (args := shlex.split(line, comments=True))]


def checked_commands() -> list[tuple[str, list[str]]]:
    """Every command of the unmarked blocks, and the scripts' commands of the blocks that need
    hardware (composing a config needs none; `srun` is SLURM's, the command after it ours)."""
    found = []
    for where, marker, body in bash_blocks():
        if marker is not None and not marker.startswith("needs: "):
            continue
        for args in commands(body):
            args = args[1:] if args[0] == "srun" else args
            if marker is None or SCRIPT.match(shlex.join(args)):
                found.append((where, args))
    return found


def test_readme_is_a_front_page():
    readme = (ROOT / "README.md").read_bytes()
    # The first line is the heading hooks/post_gen_project.py replaces in a generated project.
    assert readme.startswith(b"# ")
    assert len(readme) <= 15_000


def test_every_relative_link_resolves():
    assert broken_links(ROOT) == []


def test_docs_have_blocks_and_every_marker_is_known():
    blocks = bash_blocks()
    assert len(blocks) >= 15
    for where, marker, _ in blocks:
        if marker and marker.startswith("needs: "):
            assert marker.removeprefix("needs: ") in HARDWARE, where


def test_every_unmarked_command_is_one_this_test_checks():
    unchecked = [
        f"{where}: {shlex.join(args)}"
        for where, args in checked_commands()
        if not (SCRIPT.match(shlex.join(args)) or args[0] == "make")
    ]
    # Each needs a marker (<!-- needs: gpu -->, <!-- not run: REASON -->) or a check here.
    assert unchecked == []


# Composing is the dear part, so each choice of config groups is composed once.
_COMPOSED: dict[tuple[str, tuple[str, ...]], DictConfig] = {}


def compose_job(config_name: str, overrides: list[str]) -> None:
    """Compose the config groups the overrides choose; then every `key=value` must name a key of
    that config (what Hydra's "Could not override 'KEY'" checks), unless it adds one (`+KEY`)."""
    loader = GlobalHydra.instance().config_loader()
    parsed = OverridesParser.create().parse_overrides(overrides)
    is_group = [bool(loader.get_group_options(o.key_or_group)) for o in parsed]
    groups = tuple(o.input_line for o, group in zip(parsed, is_group, strict=True) if group)
    if (config_name, groups) not in _COMPOSED:
        cfg = loader.load_configuration(config_name, list(groups), run_mode=RunMode.RUN)
        _COMPOSED[config_name, groups] = cfg
    cfg = _COMPOSED[config_name, groups]
    for override, group in zip(parsed, is_group, strict=True):
        if not group and not override.is_add():
            assert has_key(cfg, override.key_or_group), (
                f"Could not override '{override.key_or_group}'"
            )


def has_key(cfg: DictConfig, key: str) -> bool:
    """Whether `key` (a.b.c) is in `cfg`, its value unresolved (`???` and `${...}` included)."""
    parent, _, last = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, throw_on_resolution_failure=False) if parent else cfg
    return isinstance(node, DictConfig) and last in list(node)  # `in node` skips `???` values


def first_job(overrides: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """A multirun's first job (each sweep at its first value; a search space such as `interval`
    at a number, as the sweeper would put one), and the values each sweep takes."""
    job, sweeps = [], {}
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.get_key_element()
        if override.is_discrete_sweep():
            sweeps[key] = list(override.sweep_string_iterator())
            job.append(f"{key}={sweeps[key][0]}")
        elif override.is_sweep_override():
            job.append(f"{key}=0.5")
        else:
            job.append(override.input_line)
    return job, sweeps


@pytest.mark.parametrize(("where", "args"), checked_commands(), ids=lambda x: str(x)[:60])
def test_command_composes(where: str, args: list[str]):
    line = shlex.join(args)
    if args[0] == "make":
        result = subprocess.run(["make", "-n", *args[1:]], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0 and result.stdout.strip(), (where, result.stderr)
        return
    name = SCRIPT.match(line).group(1)
    rest = args[2:]
    if "--help" in rest:
        return  # test_help_lists_every_config_group runs it
    overrides = [arg for arg in rest if arg != "-m"]
    job, sweeps = first_job(overrides) if "-m" in rest else (overrides, {})
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        try:
            compose_job(name, job)
        except Exception as error:
            pytest.fail(f"{where}: `{line}` does not compose ({job}): {error}")
        # The other values of a sweep over a config group must be options of it too.
        loader = GlobalHydra.instance().config_loader()
        for key, values in sweeps.items():
            options = loader.get_group_options(key.lstrip("+~"))
            assert not options or set(values) <= set(options), (where, key, values, options)


# The slow selection runs these as written, in a copy of the project; `RUN` becomes the directory of
# the first run.
REAL_RUNS = [
    "python scripts/train.py experiment=linear_tutorial",
    "python scripts/train.py experiment=linear debug=fdr",
    "python scripts/train.py experiment=linear data=csv",
    "python scripts/eval.py ckpt_path=logs/train/runs/RUN/checkpoints/last.ckpt",
    "python scripts/predict.py ckpt_path=logs/train/runs/RUN/checkpoints/last.ckpt",
]


def documented(line: str) -> bool:
    return any(shlex.join(args) == line for _, args in checked_commands())


def test_real_runs_are_documented_commands():
    for line in REAL_RUNS:
        assert documented(line), line


@pytest.mark.slow
def test_selected_commands_run_as_written(tmp_path: Path, entry_point, monkeypatch):
    """Each command with its arguments as written, from a fresh launch directory, in this process
    (the `entry_point` fixture: what `python scripts/NAME.py` runs, without a new interpreter)."""
    project = tmp_path
    monkeypatch.chdir(project)
    run_dir = None
    for line in REAL_RUNS:
        if run_dir is not None:
            line = line.replace("RUN", run_dir.name)
        script, *args = shlex.split(line.removeprefix("python scripts/"))
        result = entry_point(script, *args)
        assert result.returncode == 0, (line, result.stderr[-3000:])
        if run_dir is None:
            run_dir = next((project / "logs" / "train" / "runs").iterdir())
            metrics = json.loads((run_dir / "metrics.json").read_text())
            assert round(metrics["weight"], 4) == 0.5784 and round(metrics["bias"], 4) == 0.3513
    assert len(list((project / "logs" / "debug").rglob("*"))) > 0
    finished = [
        d for d in (project / "logs" / "train" / "runs").iterdir() if (d / "metrics.json").is_file()
    ]
    assert len(finished) == 2  # the tutorial and the CSV run
    eval_metrics = next((project / "logs" / "eval" / "runs").glob("*/metrics.json"))
    assert "test/loss" in json.loads(eval_metrics.read_text())
    predictions = next((project / "logs" / "predict" / "runs").glob("*/predictions.csv"))
    assert predictions.read_text().startswith("input,prediction,target\n")


# Messages quoted in docs/troubleshooting.md, and how to make the code print each.
TROUBLESHOOTING = ROOT / "docs" / "troubleshooting.md"


def quoted_messages() -> list[str]:
    section = TROUBLESHOOTING.read_text().split("## Messages", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"(?m)^\| `(.+?)` \|", section)


def pattern(quote: str) -> re.Pattern:
    """UPPER-CASE words and `...` stand for what varies; whitespace matches any whitespace."""
    regex = ""
    for part in re.split(r"(\.\.\.|\b[A-Z][A-Z_]*\b|\s+)", quote):
        if part == "..." or re.fullmatch(r"[A-Z][A-Z_]*", part):
            regex += ".*?"
        elif part.isspace():
            regex += r"\s+"
        else:
            regex += re.escape(part)
    return re.compile(regex, re.S)


class RunsCode:
    def __reduce__(self):
        return os.getcwd, ()  # harmless if it ever ran; the loader must refuse it unrun


def trigger(entry_point, tmp_path: Path, quote: str) -> str:
    run = ["hydra.run.dir=" + str(tmp_path / "run"), "callbacks.progress_bar=null"]
    if quote.startswith("Could not find"):
        args = ["train.py", "experiment=no_such_experiment"]
    elif quote.startswith("Could not override"):
        args = ["train.py", "no_such_key=1"]
    elif quote.startswith("invalid config: data:"):
        args = ["train.py", "data.step=0", *run]
    elif quote.startswith("invalid config"):
        args = ["train.py", "trainer.max_epochs=abc", *run]
    elif quote.startswith("checkpoint not found"):
        args = ["eval.py", f"ckpt_path={tmp_path / 'missing.ckpt'}", *run]
    elif quote.startswith("refused: it holds pickled code"):
        torch.save({"state_dict": RunsCode()}, tmp_path / "code.ckpt")
        args = ["eval.py", f"ckpt_path={tmp_path / 'code.ckpt'}", *run]
    elif quote.startswith("this run needs a value"):
        args = ["train.py", "experiment=linear_finetune", *run]
    elif quote.startswith("trainer=gpu"):
        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
        args = ["train.py", "trainer=gpu", *run]
    elif quote.startswith("the training loss became"):
        pytest.skip("a fit: test_nan_loss_message_as_quoted runs it (slow)")
    elif quote.startswith("DIR already holds a run"):
        (tmp_path / "run" / "checkpoints").mkdir(parents=True)
        (tmp_path / "run" / "metrics.json").write_text("{}")
        (tmp_path / "run" / "model.safetensors").write_text("")
        args = ["eval.py", f"ckpt_path={tmp_path / 'run' / 'last.ckpt'}", *run]
    elif quote.startswith("DIR is inside RUN"):
        (tmp_path / ".hydra").mkdir()
        (tmp_path / "metrics.json").write_text("{}")
        args = ["eval.py", f"ckpt_path={tmp_path / 'last.ckpt'}", *run]
    elif quote.startswith("study NAME in STORAGE optimizes"):
        import optuna

        storage = f"sqlite:///{tmp_path}/optuna.db"
        study = optuna.create_study(storage=storage, study_name="litplate")
        study.set_user_attr("optimized_metric", "no/such_metric")
        sweeper = ["hydra/sweeper=litplate_optuna", f"hydra.sweeper.storage={storage}"]
        args = ["train.py", "-m", *sweeper, "seed=choice(1,2)", f"hydra.sweep.dir={tmp_path}"]
    elif quote.startswith("DIR already holds a sweep"):
        (tmp_path / "sweep").mkdir()
        (tmp_path / "sweep" / "summary.csv").write_text("job\n")
        args = ["train.py", "-m", "seed=1,2", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    elif quote.startswith("DIR: another run is writing"):
        (tmp_path / "run").mkdir()
        lock = lock_run_directory(tmp_path / "run")  # noqa: F841 (held until this returns)
        args = ["train.py", *run]
    elif quote.startswith("ModuleNotFoundError"):
        # Outside the project's environment: no site-packages (-S), as a bare `python` has none.
        result = subprocess.run(
            [sys.executable, "-S", "scripts/train.py"], cwd=ROOT, capture_output=True, text=True
        )
        return result.stderr
    else:
        pytest.fail(f"no trigger for the quoted message {quote!r}: add one here")
    result = entry_point(*args)
    assert result.returncode == 1, (quote, result.stderr[-2000:])
    return result.stdout + result.stderr


@pytest.mark.parametrize("quote", quoted_messages())
def test_quoted_message_is_what_the_code_prints(entry_point, tmp_path: Path, quote: str):
    output = trigger(entry_point, tmp_path, quote)
    assert pattern(quote).search(output), (quote, output[-2000:])


def test_troubleshooting_quotes_messages():
    assert len(quoted_messages()) >= 8


@pytest.mark.slow
def test_nan_loss_message_as_quoted(entry_point, tmp_path: Path):
    (quote,) = [q for q in quoted_messages() if q.startswith("the training loss became")]
    result = entry_point(
        "train.py",
        "experiment=linear",
        "model.loss._target_=torch.nn.MSELoss",
        "model.optimizer.lr=1e6",
        "trainer.max_epochs=50",
        "callbacks.progress_bar=null",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 1
    assert pattern(quote).search(result.stdout + result.stderr), result.stderr[-2000:]


def test_pattern_treats_placeholders_as_wildcards():
    assert pattern("checkpoint not found: PATH").fullmatch("checkpoint not found: /a/b.ckpt")
    assert not pattern("checkpoint not found: PATH").search("weights file not found: /a")


# docs/sweeps.md's shared study: tests/test_shared_study.py runs its workers with these settings.
DOC_URL = "postgresql+psycopg://optuna@db.example.org/optuna"


def documented_with_url(prefix: str) -> list[str]:
    """The one command of docs/sweeps.md that starts with `prefix` and uses the documented URL."""
    found = [
        args
        for where, _, body in bash_blocks()
        if where.startswith("docs/sweeps.md:")
        for args in commands(body)
        if " ".join(args).startswith(prefix) and any(DOC_URL in arg for arg in args)
    ]
    assert len(found) == 1, (prefix, found)
    return found[0]


def test_the_shared_study_commands_use_the_documented_url():
    worker = documented_with_url(
        "python scripts/train.py -m hparams_search=linear_optuna hydra.sweeper.storage="
    )
    assert f"hydra.sweeper.storage={DOC_URL}" in worker and "hydra.sweeper.n_trials=4" in worker
    assert "hydra.sweeper.study_name=linear_shared" in worker
    assert documented_with_url("optuna-dashboard") == ["optuna-dashboard", DOC_URL]


@pytest.mark.slow
def test_the_docs_example_runs_in_a_plain_python_process(tmp_path: Path):
    page = (ROOT / "docs" / "python-api.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", page, re.S)
    # Run from a copy of the project root's configs, so the logs land in tmp_path.
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "weight=0.5784 bias=0.3513" in result.stdout
    (run_dir,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    test_loss = read_metrics(run_dir)["test/loss"]
    assert f"test/loss={test_loss:.4f}" in result.stdout
    (eval_dir,) = (tmp_path / "logs" / "eval" / "runs").iterdir()
    assert read_metrics(eval_dir)["test/loss"] == pytest.approx(test_loss, abs=1e-7)
