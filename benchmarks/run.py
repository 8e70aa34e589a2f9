"""litplate against the plain PyTorch loop (issue 6): one process, interleaved rounds, medians.

    python benchmarks/run.py                # every benchmark (about 5 minutes on 2 cores)
    python benchmarks/run.py --suite        # ... and the wall time of the whole test suite
    python benchmarks/run.py --only W1,W2   # some of: W1, W2, start, memory, csv
    python benchmarks/run.py --profile W1   # only where litplate's time goes in W1 (or W2)
    python benchmarks/run.py --quick        # tiny sizes, one round: checks that every path runs

Prints the results and writes them to BENCHMARKS.md (`--output`). The plain side is
`litplate.reference.fit_reference`, the documented plain-PyTorch loop that tests/test_reference.py
proves bit-identical to the Lightning run, on the same config and data.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime
import gc
import json
import os
import platform
import pstats
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

import litplate
from litplate import lightning_output
from litplate.builders import build_data_and_model, build_trainer
from litplate.callbacks import LossHistory, StoreRunConfig
from litplate.config import to_plain
from litplate.data import LinearDataModule
from litplate.reference import fit_reference

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("W1", "W2", "start", "memory", "csv")
DEFAULTS = "litplate, defaults"
FLOOR = "Lightning's floor: steps that only compute the loss, no callbacks/logging"
QUIETED = "litplate, logger/checkpoints/progress bar/summary off"
# Logger, checkpoints, progress bar and model summary off: the anchor Trainer.
QUIET = [
    "~logger",
    "callbacks.model_checkpoint=null",
    "callbacks.last_checkpoint=null",
    "callbacks.progress_bar=null",
    "callbacks.model_summary=null",
    "++trainer.enable_checkpointing=false",
    "++trainer.enable_progress_bar=false",
    "++trainer.enable_model_summary=false",
]


@dataclass(frozen=True)
class Sizes:
    """How big and how often; `--quick` shrinks everything to check the code paths."""

    w1_epochs: int = 1000
    mlp_step: float = 1e-6  # data.end=1: 1,000,000 points
    linear_step: float = 1e-7  # 10,000,000 points
    batch_size: int = 1024
    repeats: int = 3  # timed rounds per benchmark, after `warmup` discarded ones
    warmup: int = 1
    start_overrides: tuple[str, ...] = ()  # extra overrides of the cold-start train.py run
    csv_rows: int = 2_000_000  # data=csv: rows of the generated file (issue 12: about 30 MB)


QUICK = Sizes(
    w1_epochs=20,
    mlp_step=1e-4,
    linear_step=1e-4,
    repeats=1,
    warmup=0,
    start_overrides=("trainer.max_epochs=2",),
    csv_rows=20_000,
)


def w1(epochs: int) -> list[str]:
    """The course's run (40 points, full batch, evaluation every epoch) for `epochs` epochs."""
    return ["experiment=linear_tutorial", f"trainer.max_epochs={epochs}"]


def w2_mlp(sizes: Sizes) -> list[str]:
    """MLP 1-64-1 on the sine data; 99 % of the points train, 1 % are evaluated after the epoch."""
    return ["experiment=mlp", "model.hidden_sizes=[64]", *_one_big_epoch(sizes.mlp_step, sizes)]


def w2_linear(sizes: Sizes) -> list[str]:
    """The linear model of experiment=linear on the straight line, one epoch."""
    return ["experiment=linear", *_one_big_epoch(sizes.linear_step, sizes)]


def _one_big_epoch(step: float, sizes: Sizes) -> list[str]:
    return [
        "data.start=0",
        "data.end=1",
        f"data.step={step}",
        f"data.batch_size={sizes.batch_size}",
        "data.shuffle=true",
        "data.train_fraction=0.99",
        "data.val_fraction=0",
        "data.test_fraction=0.01",
        "trainer.max_epochs=1",
    ]


# ---------------------------------------------------------------------------------------------
# What is timed


def make_cfg(overrides: list[str], output_dir: Path) -> DictConfig:
    """The config `scripts/train.py OVERRIDES` would run, writing into `output_dir`."""
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        return compose("train", overrides=[*overrides, f"paths.output_dir={output_dir}"])


def fit_litplate(cfg: DictConfig) -> L.Trainer:
    """What `litplate.train.train` does up to and including `trainer.fit` (no test, no plots)."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    datamodule, model = build_data_and_model(cfg)
    trainer = build_trainer(cfg, callbacks=[StoreRunConfig(to_plain(cfg)), LossHistory()])
    trainer.fit(model, datamodule=datamodule)
    return trainer


class LossOnly(L.LightningModule):
    """Lightning's own cost: a litplate network whose steps only compute the loss (no logging)."""

    def __init__(self, model: L.LightningModule) -> None:
        super().__init__()
        self.model = model

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> Any:
        X, y = batch
        return self.model.loss_fn(self.model(X), y)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        X, y = batch
        self.model.loss_fn(self.model(X), y)

    def configure_optimizers(self) -> Any:
        return self.model.configure_optimizers()


def fit_floor(cfg: DictConfig) -> L.Trainer:
    """The least Lightning can do: LossOnly, no callbacks, logger, checkpoints, bar or summary."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    datamodule, model = build_data_and_model(cfg)
    off = dict.fromkeys(
        ("enable_checkpointing", "enable_progress_bar", "enable_model_summary"), False
    )
    trainer = instantiate(cfg.trainer, callbacks=[], logger=False, **off)
    trainer.fit(LossOnly(model), datamodule=datamodule)
    return trainer


class _Reshuffled(RandomSampler):
    def set_epoch(self, epoch: int) -> None:
        """fit_reference calls this; a RandomSampler draws a new order every epoch by itself."""


class PerSampleData(LinearDataModule):
    """The issue's anchor loading: DataLoader(TensorDataset(X, y), batch_size, shuffle=True).

    One __getitem__ per sample and a collate per batch, instead of one index tensor per batch.
    """

    def train_dataloader(self) -> DataLoader:
        dataset = TensorDataset(*self.split("train"))
        return DataLoader(dataset, batch_size=self.batch_size, sampler=_Reshuffled(dataset))


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="litplate-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def litplate_case(
    overrides: list[str], fit: Callable[[DictConfig], L.Trainer] = fit_litplate
) -> Callable[[], float]:
    """Seconds of one fit_litplate (or `fit`) run; the config is composed outside the timing."""

    def case() -> float:
        with scratch() as out:
            cfg = make_cfg(overrides, out)
            gc.collect()
            start = time.perf_counter()
            fit(cfg)
            return time.perf_counter() - start

    return case


def plain_case(overrides: list[str], data_target: str | None = None) -> Callable[[], float]:
    """Seconds of one fit_reference run; `data_target` swaps in another data module class."""

    def case() -> float:
        with scratch() as out:
            cfg = make_cfg(overrides, out)
            if data_target:
                cfg.data._target_ = data_target
            gc.collect()
            start = time.perf_counter()
            fit_reference(cfg)
            return time.perf_counter() - start

    return case


def command_case(args: list[str]) -> Callable[[], float]:
    """Wall seconds of a fresh process running `args` from the repository root."""

    def case() -> float:
        start = time.perf_counter()
        result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return seconds

    return case


def interleaved(cases: dict[str, Callable[[], float]], sizes: Sizes) -> dict[str, list[float]]:
    """Each case once per round, A, B, A, B, ...; the first `sizes.warmup` rounds are dropped."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    rounds = sizes.warmup + sizes.repeats
    for number in range(rounds):
        label = "warm-up" if number < sizes.warmup else "timed"
        for name, case in cases.items():
            _say(f"  round {number + 1}/{rounds} ({label}): {name}")
            seconds = case()
            if number >= sizes.warmup:
                times[name].append(seconds)
    return times


# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class Row:
    """One line of the timing table: litplate's median against the plain one."""

    name: str
    unit: str  # "ms/epoch" or "s"
    scale: float  # seconds -> unit
    samples: list[float]
    plain_samples: list[float]
    goal: float | None = None  # the largest ratio the issue accepts
    anchor: str = ""
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples) * self.scale

    @property
    def plain(self) -> float:
        return statistics.median(self.plain_samples) * self.scale

    @property
    def ratio(self) -> float:
        return self.median / self.plain

    @property
    def status(self) -> str:
        if self.goal is None:
            return ""
        return f"≤ {self.goal:g}x " + ("met" if self.ratio <= self.goal else "**missed**")


@dataclass
class Report:
    sizes: Sizes
    sections: list[str]
    rows: list[Row] = field(default_factory=list)
    commands: list[tuple[str, float, bool]] = field(default_factory=list)  # (cmd, s, imports torch)
    startup_imports: list[tuple[str, float]] = field(default_factory=list)
    memory: list[dict[str, float | str]] = field(default_factory=list)
    csv: list[dict[str, float | str]] = field(default_factory=list)
    suite: tuple[float, str, list[tuple[str, str]]] | None = None  # seconds, result, slowest
    profiles: dict[str, str] = field(default_factory=dict)

    def missed(self, prefix: str) -> bool:
        return any(r.name.startswith(prefix) and r.goal and r.ratio > r.goal for r in self.rows)


# What each default costs per epoch in W1: the defaults without one of them at a time.
WITHOUT = {
    "the TensorBoard logger": ["~logger"],
    "best.ckpt": ["callbacks.model_checkpoint=null"],
    "last.ckpt": ["callbacks.last_checkpoint=null"],
    "the progress bar": ["callbacks.progress_bar=null", "++trainer.enable_progress_bar=false"],
}


def bench_w1(report: Report) -> None:
    epochs = report.sizes.w1_epochs
    _say(f"W1: experiment=linear_tutorial, {epochs} epochs")
    without = {name: f"litplate, defaults without {name}" for name in WITHOUT}
    cases = {
        "plain": plain_case(w1(epochs)),
        DEFAULTS: litplate_case(w1(epochs)),
        QUIETED: litplate_case(w1(epochs) + QUIET),
        FLOOR: litplate_case(w1(epochs), fit_floor),
        **{case: litplate_case(w1(epochs) + WITHOUT[name]) for name, case in without.items()},
    }
    times = interleaved(cases, report.sizes)
    anchor = "9.4x (3.17 vs 0.34 ms/epoch; Trainer with logger, checkpoints, progress bar off)"

    def row(case: str, goal: float | None = None) -> Row:
        name = f"W1, {epochs} epochs: {case}"
        return Row(name, "ms/epoch", 1000 / epochs, times[case], times["plain"], goal)

    defaults = row(DEFAULTS, 3)
    report.rows += [replace(defaults, anchor=anchor), replace(row(QUIETED, 3), anchor=anchor)]
    report.rows.append(row(FLOOR))
    for name, case in without.items():
        less = row(case)
        cost = defaults.median - less.median
        report.rows.append(replace(less, note=f"{name} costs {cost:.2f} ms/epoch"))


def bench_w2(report: Report) -> None:
    sizes = report.sizes
    mlp, linear = w2_mlp(sizes), w2_linear(sizes)
    (mlp_points, mlp_steps), (linear_points, linear_steps) = _size(mlp), _size(linear)
    _say(f"W2: MLP 1-64-1, {mlp_points:,} points, {mlp_steps} training batches")
    per_sample = "plain loop fed by DataLoader(TensorDataset(X, y), shuffle=True)"
    cases = {
        "plain": plain_case(mlp),
        DEFAULTS: litplate_case(mlp),
        QUIETED: litplate_case(mlp + QUIET),
        FLOOR: litplate_case(mlp, fit_floor),
        per_sample: plain_case(mlp, f"{__name__}.{PerSampleData.__name__}"),
    }
    times = interleaved(cases, sizes)
    anchor = "12.5x (7.3 vs 0.6 s; Lightning fed by a TensorDataset DataLoader)"
    goals = {DEFAULTS: 1.5, QUIETED: 1.5, FLOOR: None, per_sample: None}
    rows = [
        Row(
            f"W2 MLP 1-64-1, {mlp_points:,} points: {case}",
            "s",
            1,
            times[case],
            times["plain"],
            goal,
            anchor if case != FLOOR else "",
            _per_step(times[case], times["plain"], mlp_steps),
        )
        for case, goal in goals.items()
    ]
    _say(f"W2: linear model, {linear_points:,} points, {linear_steps} training batches")
    cases = {
        "plain": plain_case(linear),
        DEFAULTS: litplate_case(linear),
        FLOOR: litplate_case(linear, fit_floor),
    }
    times = interleaved(cases, sizes)
    rows += [
        Row(
            f"W2 linear, {linear_points:,} points: {case}",
            "s",
            1,
            times[case],
            times["plain"],
            goal,
            "",
            _per_step(times[case], times["plain"], linear_steps),
        )
        for case, goal in ((DEFAULTS, 1.5), (FLOOR, None))
    ]
    report.rows += rows


def _per_step(samples: list[float], plain: list[float], steps: int) -> str:
    extra = statistics.median(samples) - statistics.median(plain)
    return f"{steps} steps: {extra / steps * 1e6:+.0f} µs/step over plain"


def _size(overrides: list[str]) -> tuple[int, int]:
    """(points, training batches) of a config's data."""
    with scratch() as out:
        datamodule, _ = build_data_and_model(make_cfg(overrides, out))
        return len(datamodule.X), len(datamodule.train_dataloader())


def bench_start(report: Report) -> None:
    """Fresh processes (the OS file cache is warm): train.py end to end against importing."""
    python, train = sys.executable, str(ROOT / "scripts" / "train.py")
    with scratch() as out:

        def train_run() -> float:
            run_dir = tempfile.mkdtemp(dir=out)
            start = [*report.sizes.start_overrides, f"hydra.run.dir={run_dir}"]
            return command_case([python, train, "experiment=linear", *start])()

        _say("start: train.py experiment=linear against python -c 'import lightning'")
        times = interleaved(
            {
                "train.py": train_run,
                "import lightning": command_case([python, "-c", "import lightning"]),
                "--help": command_case([python, train, "--help"]),
                "--cfg job": command_case([python, train, "--cfg", "job"]),
                # Where train.py's time beyond the import goes: its fit, timed in this process.
                "fit": litplate_case(["experiment=linear", *report.sizes.start_overrides]),
            },
            report.sizes,
        )
        train_s, import_s, fit_s = (
            statistics.median(times[name]) for name in ("train.py", "import lightning", "fit")
        )
        report.rows.append(
            Row(
                "Cold start: train.py experiment=linear vs python -c 'import lightning'",
                "s",
                1,
                times["train.py"],
                times["import lightning"],
                1.5,
                "import torch 1.9 s, import lightning 5.7 s",
                note=" ".join(
                    [
                        "end to end: fit, test, plots, exports",
                        *report.sizes.start_overrides,
                        f"(of which the fit, timed in-process: {fit_s:.2f} s; the rest beyond"
                        f" the import: {train_s - import_s - fit_s:.2f} s)",
                    ]
                ),
            )
        )
        for name in ("--help", "--cfg job"):
            imported = _imports([python, "-X", "importtime", train, *name.split()])
            report.commands.append(
                (f"train.py {name}", statistics.median(times[name]), "torch" in imported)
            )
        imported = _imports(
            [
                python,
                "-X",
                "importtime",
                train,
                "experiment=linear",
                "trainer.max_epochs=1",
                f"hydra.run.dir={out / 'importtime'}",
            ]
        )
        report.startup_imports = sorted(imported.items(), key=lambda kv: -kv[1])[:12]


def _imports(args: list[str]) -> dict[str, float]:
    """The packages a command imports, with the seconds of each one's first import (-X importtime).

    Cumulative: a package's time includes the packages it was first to import (lightning: torch).
    """
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stderr[-3000:]}")
    packages = {}
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| +([\w]+)$", line)  # no dot: a package
        if match:
            packages[match[2]] = int(match[1]) / 1e6
    return packages


def bench_memory(report: Report) -> None:
    """Peak RSS of a process running the W2 litplate fit, against the same fit on 40 points."""
    _say("memory: peak RSS of the W2 fits in their own processes")
    baseline = _child_memory(w1(1))
    for name, overrides in (("MLP", w2_mlp(report.sizes)), ("linear", w2_linear(report.sizes))):
        fit = _child_memory(overrides)
        data_mb = fit["data_bytes"] / 2**20
        report.memory.append(
            {
                "workload": f"W2 {name}, {fit['points']:,} points",
                "data_mb": data_mb,
                "peak_mb": fit["maxrss_mb"],
                "baseline_mb": baseline["maxrss_mb"],
                "ratio": (fit["maxrss_mb"] - baseline["maxrss_mb"]) / data_mb,
            }
        )


def _child_memory(overrides: list[str]) -> dict[str, float]:
    return _child(["--memory-child", json.dumps(overrides)])


def _child(args: list[str]) -> dict[str, Any]:
    """This script run with `args` in a fresh process; the JSON of its last line of output."""
    command = [sys.executable, str(Path(__file__)), *args]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{args[0]} child failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def memory_child(overrides: list[str]) -> None:
    """Run in a fresh process: one fit_litplate, then print its peak RSS and data size as JSON."""
    with scratch() as out:
        trainer = fit_litplate(make_cfg(overrides, out))
    datamodule = trainer.datamodule
    data_bytes = datamodule.X.nbytes + datamodule.y.nbytes
    print(
        json.dumps(
            {"maxrss_mb": peak_rss_mb(), "data_bytes": data_bytes, "points": len(datamodule.X)}
        )
    )


def peak_rss_mb() -> float:
    """This process's peak resident memory.

    Linux: VmHWM of /proc/self/status. Not ru_maxrss: exec() carries the parent's peak into it
    when subprocess starts the child with vfork, so every child would report the parent's peak.
    """
    with contextlib.suppress(OSError):
        match = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
        if match:
            return int(match[1]) / 1024
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024  # bytes on macOS


# data=csv: reading a large CSV file (issue 12: at most 3 s and baseline + 4x the file's size).
CSV_GOAL_S, CSV_GOAL_MEMORY = 3.0, 4.0
CSV_CASES = {
    "read_csv": "read_csv(path, [area, rooms], price): parse and check every cell",
    "CSVDataModule": "CSVDataModule (data=csv defaults): read, shuffle, split, standardize",
    "bad cell": "a bad cell on the last line: time until the error names it",
}


def write_csv(path: Path, rows: int) -> Path:
    """houses.csv's columns, `rows` rows, from a fixed seed (about 15 bytes a row)."""
    import numpy as np

    rng = np.random.default_rng(0)
    area = rng.uniform(0.5, 3.0, rows).round(3)
    rooms = rng.integers(1, 6, rows)
    price = (0.8 * area + 0.15 * rooms + 0.2 + rng.normal(0, 0.02, rows)).round(4)
    with path.open("w") as file:
        file.write("area,rooms,price\n")
        file.writelines(
            f"{a},{r},{p}\n"
            for a, r, p in zip(area.tolist(), rooms.tolist(), price.tolist(), strict=True)
        )
    return path


def bench_csv(report: Report) -> None:
    """Each case in a fresh process: wall time, and peak RSS above the process before reading."""
    rows = report.sizes.csv_rows
    _say(f"csv: reading a {rows:,}-row CSV file in fresh processes")
    with scratch() as folder:
        path = write_csv(folder / "big.csv", rows)
        bad = folder / "bad.csv"
        bad.write_bytes(path.read_bytes() + b"1.5,x,2.0\n")
        size_mb = path.stat().st_size / 2**20
        for case in CSV_CASES:
            runs = [
                _child(["--csv-child", case, str(bad if case == "bad cell" else path)])
                for _ in range(1 if case == "bad cell" else report.sizes.repeats)
            ]
            peak = max(run["maxrss_mb"] - run["baseline_mb"] for run in runs)
            report.csv.append(
                {
                    "case": case,
                    "rows": rows,
                    "file_mb": size_mb,
                    "seconds": statistics.median(run["seconds"] for run in runs),
                    "peak_mb": peak,
                    "baseline_mb": runs[0]["baseline_mb"],
                    "ratio": peak / size_mb,
                    "error": runs[0].get("error", ""),
                }
            )


def csv_child(case: str, path: str) -> None:
    """In a fresh process: read `path` as `case` says, then print seconds and peak RSS as JSON."""
    from litplate.data import CSVDataModule
    from litplate.data.csv import CSVDataError, read_csv

    cfg = make_cfg(["data=csv", f"data.path={path}"], Path(tempfile.gettempdir()))
    error = ""
    gc.collect()
    baseline = peak_rss_mb()
    start = time.perf_counter()
    if case == "read_csv":
        read_csv(path, ["area", "rooms"], "price")
    elif case == "CSVDataModule":
        instantiate(cfg.data, _convert_="all")
    else:
        try:
            CSVDataModule(path, ["area", "rooms"], "price")
        except CSVDataError as err:
            error = str(err).removeprefix(f"{path}, ")
        else:
            raise RuntimeError(f"{path}: the bad cell was not found")
    seconds = time.perf_counter() - start
    result = {"seconds": seconds, "maxrss_mb": peak_rss_mb(), "baseline_mb": baseline}
    print(json.dumps({**result, "error": error}))


# `make test`'s command, quiet and without a cache.
SUITE = ["-m", "pytest", "-m", "", "-n", "auto", "--dist", "worksteal"]
SUITE += ["-q", "-p", "no:cacheprovider"]


def bench_suite(report: Report) -> None:
    """The wall time of `make test`'s command: every test, one pytest-xdist worker per core."""
    _say(f"suite: python {shlex.join(SUITE)}")
    args = [sys.executable, *SUITE, "--durations=12"]
    start = time.perf_counter()
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    lines = result.stdout.strip().splitlines()
    failed = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    slowest = [
        (match[1], match[2])
        for match in map(re.compile(r"([\d.]+s) (?:call|setup|teardown) +(\S+)$").match, lines)
        if match
    ]
    report.suite = (
        seconds,
        "; ".join([*failed, lines[-1] if lines else f"exit {result.returncode}"]),
        slowest,
    )


# ---------------------------------------------------------------------------------------------
# Where the time goes


def profile(workload: str, sizes: Sizes, warm: bool = False, top: int = 40) -> str:
    """cProfile of one litplate fit (defaults) of W1 or W2 MLP; first an unprofiled one if cold."""
    overrides = {"W1": w1(sizes.w1_epochs), "W2": w2_mlp(sizes)}[workload]
    if not warm:
        litplate_case(overrides)()
    with scratch() as out:
        cfg = make_cfg(overrides, out)
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.runcall(fit_litplate, cfg)
        total = time.perf_counter() - start
    stats = pstats.Stats(profiler).stats  # {(file, line, function): (cc, calls, own, cum, callers)}
    title = {"W1": f"W1, {sizes.w1_epochs} epochs", "W2": "W2 MLP, one epoch"}[workload]
    lines = [
        f"cProfile of litplate (defaults), {title}: {total:.2f} s under the profiler "
        "(which slows many small calls, so shares matter more than seconds).",
        "",
        "Own time by package:",
    ]
    packages: dict[str, float] = {}
    for (file, _, function), (_, _, own, _, _) in stats.items():
        package = _package(file, function)
        packages[package] = packages.get(package, 0.0) + own
    for package, own in sorted(packages.items(), key=lambda kv: -kv[1])[:10]:
        lines.append(f"  {own:7.2f} s {100 * own / total:5.1f} %  {package}")

    def table(entries: list[tuple[tuple[str, int, str], tuple]], column: int) -> list[str]:
        seconds_label = "cum s" if column == 3 else "own s"
        out = [f"  {seconds_label:>7} {'%':>5} {'calls':>8} {'µs/call':>9}  function"]
        for (file, line, function), values in entries:
            seconds, calls = values[column], values[1]
            out.append(
                f"  {seconds:7.2f} {100 * seconds / total:5.1f} {calls:8d} "
                f"{1e6 * seconds / calls:9.1f}  {_where(file, line, function)}"
            )
        return out

    interesting = [
        item
        for item in stats.items()
        if _package(*item[0][::2]) not in ("python", "built-in", "benchmarks")
        and item[1][3] >= 0.01 * total
    ]
    lines += ["", "Top library frames by cumulative time:"]
    lines += table(sorted(interesting, key=lambda kv: -kv[1][3])[:top], 3)
    lines += ["", "Top frames by own time:"]
    lines += table(sorted(stats.items(), key=lambda kv: -kv[1][2])[: top // 2], 2)
    return "\n".join(lines)


STDLIB = sysconfig.get_paths()["stdlib"]
PACKAGE_DIR = str(Path(litplate.__file__).parent)


def _package(file: str, function: str) -> str:
    if file == "~":
        return "torch (C)" if "torch" in function else "built-in"
    if "site-packages" in file:
        return re.split(r"[/\\]", file.split("site-packages", 1)[1])[1].removesuffix(".py")
    if file.startswith(PACKAGE_DIR):
        return litplate.__name__
    if file.startswith(str(ROOT / "benchmarks")):
        return "benchmarks"
    return "python" if file.startswith(STDLIB) or file.startswith("<") else "other"


def _where(file: str, line: int, function: str) -> str:
    if file == "~":
        return function
    for root in (f"site-packages{os.sep}", str(Path(PACKAGE_DIR).parent) + os.sep, STDLIB + os.sep):
        if root in file:
            file = file.split(root, 1)[1]
            break
    return f"{file}:{line}({function})"


# ---------------------------------------------------------------------------------------------
# Output


def machine() -> dict[str, str]:
    import hydra
    import torchmetrics

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        models = re.findall(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = models[0].strip() if models else cpu
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "CPU": f"{cpu}, {os.cpu_count()} cores; torch threads: {torch.get_num_threads()}",
        "RAM": f"{ram:.1f} GiB",
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "torch / lightning / torchmetrics / hydra": " / ".join(
            m.__version__ for m in (torch, L, torchmetrics, hydra)
        ),
        "commit": commit or "unknown",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="minutes"),
        "load average (1 min) at start": f"{os.getloadavg()[0]:.2f}",
        "stdout a terminal": "yes" if sys.stdout.isatty() else "no (rich draws no live bar)",
    }


def markdown(report: Report, command: str, host: dict[str, str]) -> str:
    sizes = report.sizes
    out = [
        "# Benchmarks",
        "",
        f"`{command}` (`make bench`), written by [benchmarks/run.py](benchmarks/run.py). Each"
        " benchmark runs its cases in turn (A, B, A, B, ...) in one process:"
        f" {sizes.warmup} warm-up round(s) discarded, then {sizes.repeats} timed round(s); the"
        " numbers are medians and the ratio is litplate / plain. The plain side is"
        " `litplate.reference.fit_reference(cfg)` on the same config and data (the loop"
        " tests/test_reference.py proves bit-identical to Lightning).",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in host.items()),
        "",
    ]
    if report.rows:
        out += [
            "## Time",
            "",
            "| benchmark | litplate | plain | ratio | goal | issue 6 anchor | |",
            "|---|---:|---:|---:|---|---|---|",
        ]
        for row in report.rows:
            out.append(
                f"| {row.name} | {row.median:.3g} {row.unit} | {row.plain:.3g} {row.unit} | "
                f"{row.ratio:.3g}x | {row.status} | {row.anchor} | {row.note} |"
            )
        out += ["", *_reading(report.rows), *_what_is_timed(report), ""]
    if report.commands:
        out += [
            "## Entry points that must not import torch",
            "",
            "| command | median | imports torch (`python -X importtime`) |",
            "|---|---:|---|",
        ]
        for command_name, seconds, torch_imported in report.commands:
            verdict = "**yes**" if torch_imported else "no"
            out.append(f"| `{command_name}` | {seconds:.2f} s | {verdict} |")
        out += [
            "",
            "The slowest packages to import in `train.py experiment=linear` (-X importtime; each"
            " includes the packages it was first to import, e.g. lightning includes torch):",
            "",
            "| package | s |",
            "|---|---:|",
        ]
        out += [f"| {name} | {seconds:.2f} |" for name, seconds in report.startup_imports]
        out.append("")
    if report.memory:
        out += [
            "## Peak memory of W2",
            "",
            "Peak RSS (VmHWM) of a fresh process running the W2 litplate fit (defaults),",
            "against the baseline: the same modules imported and the same fit on the course's 40",
            "points (W1 for one epoch). Data = the bytes of the X and y tensors.",
            "",
            "| workload | data (X, y) | peak RSS | baseline | (peak - baseline) / data |",
            "|---|---:|---:|---:|---:|",
        ]
        for m in report.memory:
            out.append(
                f"| {m['workload']} | {m['data_mb']:.1f} MB | {m['peak_mb']:.0f} MB | "
                f"{m['baseline_mb']:.0f} MB | {m['ratio']:.1f}x |"
            )
        out.append("")
    if report.csv:
        out += [
            "## Reading a CSV file (data=csv)",
            "",
            f"A generated file with houses.csv's columns (`area,rooms,price`), each case in a"
            f" fresh process (median of {sizes.repeats} run(s); the bad cell: one run). Peak ="
            " peak RSS (VmHWM) above the process's own just before reading. Goal (issue 12):"
            f" ≤ {CSV_GOAL_S:g} s and ≤ {CSV_GOAL_MEMORY:g}x the file's size.",
            "",
            "| case | rows | file | time | peak - baseline | / file | goal |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for c in report.csv:
            goal = ""  # the goal is for the file: fixed costs dominate a small one
            if c["case"] != "bad cell" and c["rows"] >= Sizes.csv_rows:
                met = c["seconds"] <= CSV_GOAL_S and c["ratio"] <= CSV_GOAL_MEMORY
                goal = "met" if met else "**missed**"
            name = CSV_CASES[c["case"]] + (f" (`{c['error']}`)" if c["error"] else "")
            out.append(
                f"| {name} | {c['rows']:,} | {c['file_mb']:.1f} MB | {_seconds(c['seconds'])} | "
                f"{c['peak_mb']:.0f} MB | {c['ratio']:.1f}x | {goal} |"
            )
        out.append("")
    if report.suite:
        seconds, summary, slowest = report.suite
        verdict = "met" if seconds <= 180 else "**missed**"
        out += [
            "## Test suite",
            "",
            f"`python {shlex.join(SUITE)}` ({os.cpu_count()} workers): {seconds:.0f} s"
            f" (goal ≤ 180 s: {verdict}); {summary}",
            "",
            "The slowest tests (pytest's `--durations`, each on its worker while the others ran):",
            "",
            "| test | s |",
            "|---|---:|",
            *(f"| `{test}` | {duration.removesuffix('s')} |" for duration, test in slowest),
            "",
        ]
    for workload, text in report.profiles.items():
        out += [
            f"## Where the time goes: {workload}",
            "",
            f"`python benchmarks/run.py --profile {workload}`:",
            "",
            "```text",
            text,
            "```",
            "",
        ]
    return "\n".join(out).rstrip() + "\n"


def _reading(rows: list[Row]) -> list[str]:
    """Where a goal is below Lightning's own floor on that workload, say so: patching Lightning
    (which the issue rules out) would be the only way to meet it."""
    lines = []
    for floor in (row for row in rows if row.name.endswith(FLOOR)):
        workload = floor.name.removesuffix(FLOOR)
        goals = [row for row in rows if row.name.startswith(workload) and row.goal is not None]
        if goals and floor.ratio > goals[0].goal:
            name = workload.rstrip(": ")
            lines.append(
                f"- {name}: Lightning's floor alone is {floor.ratio:.3g}x the plain loop, above"
                f" the {goals[0].goal:g}x goal, which no LightningModule or callback can meet"
                " without patching Lightning."
            )
    return ["Reading the table:", *lines, ""] if lines else []


def _what_is_timed(report: Report) -> list[str]:
    sizes = report.sizes
    mlp_points, linear_points = round(1 / sizes.mlp_step), round(1 / sizes.linear_step)
    by_section = {
        "W1": f"- W1: `experiment=linear_tutorial trainer.max_epochs={sizes.w1_epochs}`: 40 points"
        " as one batch, the 10 test points evaluated every epoch.",
        "W2": f"- W2: {mlp_points:,} points (`data.end=1 data.step={sizes.mlp_step:g}`), batches"
        f" of {sizes.batch_size}, shuffled, one epoch; 99 % train and 1 % are evaluated once after"
        " the epoch (`data.train_fraction=0.99 data.test_fraction=0.01`), so evaluation is a small"
        " part. MLP: `experiment=mlp model.hidden_sizes=[64]` (1-64-1, Adam, sine data); linear:"
        f" `experiment=linear`, {linear_points:,} points.",
        "start": "- Cold start: fresh processes; `train.py` runs the whole experiment (fit, test,"
        " plots, exports) with its output captured (not a terminal), the OS file cache warm.",
    }
    return [
        "What is timed:",
        "- litplate: what `train()` does up to `trainer.fit` — seed, build the data module, model"
        " and Trainer from the config (its default callbacks and TensorBoard logger, or with"
        f" `{' '.join(QUIET)}`), then `trainer.fit`; no test, plots or exports. plain:"
        " `fit_reference(cfg)`, which also builds the data and model. Composing the config is not"
        " timed.",
        "- Lightning's floor: the same network and data in a LightningModule whose steps only"
        " compute the loss (`LossOnly`), fitted by a Trainer of the same config without callbacks,"
        " logger, checkpoints, progress bar or summary: what litplate cannot go below without"
        " patching Lightning.",
        *(text for section, text in by_section.items() if section in report.sections),
        f"- torch ran on {torch.get_num_threads()} thread(s) (`--threads`; the default, 1, because"
        " on a shared machine two OpenMP threads stall for milliseconds per operation whenever"
        " another process holds a core, and these small models gain nothing from a second one).",
    ]


def _seconds(seconds: float) -> str:
    """Two decimals in seconds, or milliseconds where that would round a small file's time to 0."""
    return f"{seconds:.2f} s" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round, no warm-up")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--suite", action="store_true", help="also time the whole test suite")
    parser.add_argument("--profile", choices=("W1", "W2"), help="only print this cProfile")
    parser.add_argument(
        "--no-profile",
        action="store_true",
        help="no profiles in BENCHMARKS.md even where a goal is missed",
    )
    parser.add_argument("--repeats", type=int, help="timed rounds per benchmark")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads, here and in the subprocesses (default 1; 0: torch's own default)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the report (default: BENCHMARKS.md for a full run)",
    )
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--csv-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    lightning_output.quiet()  # as every litplate entry point does

    if args.memory_child:
        memory_child(json.loads(args.memory_child))
        return 0
    if args.csv_child:
        csv_child(*args.csv_child)
        return 0
    if args.threads:
        # One thread: on a shared machine, two OpenMP threads stall for milliseconds per operation
        # whenever another process holds a core (the plain MLP epoch went from 0.4 s to 2-12 s),
        # and these small models gain nothing from a second thread when the machine is quiet.
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    sizes = QUICK if args.quick else Sizes()
    if args.repeats:
        sizes = replace(sizes, repeats=args.repeats)
    if args.profile:
        print(profile(args.profile, sizes))
        return 0
    sections = args.only.split(",") if args.only else list(SECTIONS)
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"--only: unknown {', '.join(sorted(unknown))}; choose from {SECTIONS}")

    host = machine()
    report = Report(sizes, sections)
    started = time.perf_counter()
    benches = {
        "W1": bench_w1,
        "W2": bench_w2,
        "start": bench_start,
        "memory": bench_memory,
        "csv": bench_csv,
    }
    for name in sections:
        benches[name](report)
    if args.suite:
        bench_suite(report)
    if not args.no_profile:
        for workload in ("W1", "W2"):
            if workload in sections and report.missed(workload):
                _say(f"profile: {workload} missed its goal")
                report.profiles[workload] = profile(workload, sizes, warm=True)
    host["load average (1 min) at end"] = f"{os.getloadavg()[0]:.2f}"
    host["benchmark wall time"] = f"{time.perf_counter() - started:.0f} s"
    command = " ".join(["python benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])])
    text = markdown(report, command, host)
    print(text, end="")
    # Only a full run replaces the committed BENCHMARKS.md; a partial one goes where it is told.
    output = args.output or (None if args.quick or args.only else ROOT / "BENCHMARKS.md")
    if output:
        output.write_text(text, encoding="utf-8")
        _say(f"written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
