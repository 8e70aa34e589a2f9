"""litplate against Lightning's floor, the peer pipeline and the plain PyTorch loop (issue 15).

    python benchmarks/run.py                # every benchmark (about 7 minutes on 2 cores)
    python benchmarks/run.py --suite        # ... and the wall time of the whole test suite
    python benchmarks/run.py --only W1,W2   # some of: W1, W2, gpu, start, memory, csv
    python benchmarks/run.py --profile W1   # only where litplate's time goes (W1, W2, W2-linear)
    python benchmarks/run.py --quick        # tiny sizes, one round, no import tables

Prints the results and writes them to BENCHMARKS.md (`--output`). Every workload is timed in one
process, its cases interleaved: litplate's defaults; Lightning's floor (`LossOnly`: steps that only
compute the loss, no callbacks or logging); the peer pipeline (`Peer`: the same model as a typical
Lightning + Hydra template writes it); and the plain loop, `litplate.reference.fit_reference`,
which tests/test_reference.py proves bit-identical to the Lightning run.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime
import functools
import gc
import json
import logging
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
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import MeanAbsoluteError, MeanMetric, MeanSquaredError, MinMetric

import litplate
from litplate.data import TensorDataModule
from litplate.reference import fit_reference
from litplate.run import lightning_output
from litplate.run.builders import build_data_and_model, build_trainer
from litplate.run.callbacks import LossHistory, StoreRunConfig
from litplate.run.config import to_plain

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("W1", "W2", "gpu", "start", "memory", "csv")
DEFAULTS = "litplate, defaults"
FLOOR = "Lightning's floor: steps that only compute the loss, no callbacks/logging"
PEER = (
    "peer pipeline: DataLoader(TensorDataset, shuffle=True), torchmetrics logged every step,"
    " TensorBoard, ModelCheckpoint(val/loss) + last, default progress bar"
)
PLAIN = "plain loop: litplate.reference.fit_reference"
QUIETED = "litplate, logger/checkpoints/progress bar/summary off"
# Logger, checkpoints, progress bar and model summary off.
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
# torch's own default, read before main() sets the benchmark's: what users of train.py get.
TORCH_DEFAULT_THREADS = torch.get_num_threads()
PRECISIONS = ("32-true", "bf16-mixed")  # the GPU section's trainer.precision


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
    import_tables: bool = True  # what train.py imports: two more full runs under -X importtime


QUICK = Sizes(
    w1_epochs=20,
    mlp_step=1e-4,
    linear_step=1e-4,
    repeats=1,
    warmup=0,
    start_overrides=("trainer.max_epochs=2",),
    csv_rows=20_000,
    import_tables=False,
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


def _bare_trainer(cfg: DictConfig, **kwargs: Any) -> L.Trainer:
    """The Trainer of `cfg.trainer` with Lightning's defaults where `kwargs` leave them."""
    return instantiate(cfg.trainer, plugins=None, **kwargs)


def fit_floor(cfg: DictConfig) -> L.Trainer:
    """The least Lightning can do: LossOnly, no callbacks, logger, checkpoints, bar or summary."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    datamodule, model = build_data_and_model(cfg)
    off = dict.fromkeys(
        ("enable_checkpointing", "enable_progress_bar", "enable_model_summary"), False
    )
    trainer = _bare_trainer(cfg, callbacks=[], logger=False, **off)
    trainer.fit(LossOnly(model), datamodule=datamodule)
    return trainer


class Peer(L.LightningModule):
    """The same network as a typical Lightning + Hydra template writes its module.

    As ashleve/lightning-hydra-template's MNISTLitModule, for regression: MeanMetric objects for
    the losses and an error metric per stage, called (forward: the batch's value, and the
    epoch's state) and logged with `self.log(..., on_step=False, on_epoch=True)` every step, and
    the best validation loss so far in a MinMetric.
    """

    def __init__(self, model: L.LightningModule) -> None:
        super().__init__()
        self.net = model
        self.criterion = model.loss_fn
        self.train_loss, self.val_loss, self.test_loss = MeanMetric(), MeanMetric(), MeanMetric()
        self.train_mae, self.val_mae, self.test_mae = (MeanAbsoluteError() for _ in range(3))
        self.val_mse = MeanSquaredError()
        self.val_loss_best = MinMetric()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def on_train_start(self) -> None:
        self.val_loss.reset()
        self.val_mae.reset()
        self.val_loss_best.reset()

    def model_step(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y = batch
        preds = self.forward(x)
        return self.criterion(preds, y), preds, y

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss, preds, targets = self.model_step(batch)
        self.train_loss(loss)
        self.train_mae(preds, targets)
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train/mae", self.train_mae, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        loss, preds, targets = self.model_step(batch)
        self.val_loss(loss)
        self.val_mae(preds, targets)
        self.val_mse(preds, targets)
        self.log("val/loss", self.val_loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("val/mae", self.val_mae, on_step=False, on_epoch=True, prog_bar=True)
        self.log("val/mse", self.val_mse, on_step=False, on_epoch=True)

    def on_validation_epoch_end(self) -> None:
        self.val_loss_best(self.val_loss.compute())
        self.log("val/loss_best", self.val_loss_best.compute(), sync_dist=True, prog_bar=True)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        loss, preds, targets = self.model_step(batch)
        self.test_loss(loss)
        self.test_mae(preds, targets)
        self.log("test/loss", self.test_loss, on_step=False, on_epoch=True)
        self.log("test/mae", self.test_mae, on_step=False, on_epoch=True)

    def configure_optimizers(self) -> Any:
        return self.net.configure_optimizers()


class PeerData(L.LightningDataModule):
    """A template's data module over litplate's splits: DataLoader(TensorDataset(X, y), ...)."""

    def __init__(self, data: TensorDataModule) -> None:
        super().__init__()
        self.data = data

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        X, y = self.data.split(split)
        return DataLoader(
            TensorDataset(X, y), batch_size=self.data.batch_size or len(X), shuffle=shuffle
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")


def fit_peer(cfg: DictConfig) -> L.Trainer:
    """The peer pipeline: Peer and PeerData, TensorBoard, ModelCheckpoint on val/loss + last,
    Lightning's default progress bar and model summary."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    datamodule, model = build_data_and_model(cfg)
    out = Path(cfg.paths.output_dir)
    checkpoint = ModelCheckpoint(
        dirpath=out / "checkpoints",
        filename="epoch_{epoch:03d}",
        monitor="val/loss",
        mode="min",
        save_top_k=1,
        save_last=True,
        auto_insert_metric_name=False,
    )
    logger = TensorBoardLogger(save_dir=out / "tensorboard", name=None)
    trainer = _bare_trainer(cfg, callbacks=[checkpoint], logger=logger)
    trainer.fit(Peer(model), datamodule=PeerData(datamodule))
    return trainer


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="litplate-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


_SHOWN: set[str] = set()


@contextlib.contextmanager
def console_off() -> Iterator[None]:
    """The fits' console output (progress bars, summaries) to /dev/null, as a non-terminal sees
    it; their warnings are recorded and each shown once, after the fit."""
    with (
        open(os.devnull, "w") as null,
        warnings.catch_warnings(record=True) as caught,
        contextlib.redirect_stdout(null),
        contextlib.redirect_stderr(null),
    ):
        yield
    for warning in caught:
        text = warnings.formatwarning(
            warning.message, warning.category, warning.filename, warning.lineno
        )
        if text not in _SHOWN:
            _SHOWN.add(text)
            sys.stderr.write(text)


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # a CUDA fit's kernels may still run when fit() returns


def litplate_case(
    overrides: list[str], fit: Callable[[DictConfig], Any] = fit_litplate
) -> Callable[[], float]:
    """Seconds of one fit_litplate (or `fit`) run; the config is composed outside the timing."""

    def case() -> float:
        with scratch() as out:
            cfg = make_cfg(overrides, out)
            gc.collect()
            with console_off():
                start = time.perf_counter()
                fit(cfg)
                _synchronize()
                return time.perf_counter() - start

    return case


def plain_case(overrides: list[str], device: str = "cpu") -> Callable[[], float]:
    """Seconds of one fit_reference run on `device`."""
    return litplate_case(overrides, functools.partial(fit_reference, device=device))


def with_threads(threads: int, case: Callable[[], float]) -> Callable[[], float]:
    """`case` with torch on `threads` threads, then the benchmark's setting again."""

    def run() -> float:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return case()
        finally:
            torch.set_num_threads(before)

    return run


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


def interleaved(
    cases: dict[str, Callable[[], float]], sizes: Sizes, once: frozenset[str] = frozenset()
) -> dict[str, list[float]]:
    """Each case once per round, A, B, A, B, ...; the first `sizes.warmup` rounds are dropped.

    A case in `once` (a slow one) runs in the last round only: one timed run.
    """
    times: dict[str, list[float]] = {name: [] for name in cases}
    rounds = sizes.warmup + sizes.repeats
    for number in range(rounds):
        label = "warm-up" if number < sizes.warmup else "timed"
        for name, case in cases.items():
            if name in once and number < rounds - 1:
                continue
            _say(f"  round {number + 1}/{rounds} ({label}): {name}")
            seconds = case()
            if number >= sizes.warmup:
                times[name].append(seconds)
    return times


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Goal:
    """The issue's bound on one row: at most `limit` x the floor (or plain), or at least `limit`
    times faster than the peer."""

    against: str  # "floor", "plain" or "peer"
    limit: float
    label: str = ""  # how the anchor reads in the table (default: its name)

    def ratio(self, row: Row) -> float:
        if self.against == "peer":
            return row.anchor("peer") / row.median
        return row.median / row.anchor(self.against)

    def met(self, row: Row) -> bool:
        ratio = self.ratio(row)
        return ratio >= self.limit if self.against == "peer" else ratio <= self.limit

    def text(self, row: Row) -> str:
        verdict = "met" if self.met(row) else "**missed**"
        if self.against == "peer":
            bound = f"≥ {self.limit:g}x faster than the peer"
        else:
            bound = f"≤ {self.limit:g}x {self.label or self.against}"
        return f"{bound}: {self.ratio(row):.3g}x {verdict}"


@dataclass
class Row:
    """One case of a workload: its median, and its ratios to the workload's anchors."""

    workload: str
    case: str
    unit: str  # "ms/epoch" or "s"
    scale: float  # seconds -> unit
    samples: list[float]
    anchors: dict[str, list[float]]  # "plain", "floor", "peer": their samples on this workload
    goals: tuple[Goal, ...] = ()
    note: str = ""

    @property
    def name(self) -> str:
        return f"{self.workload}: {self.case}"

    @property
    def median(self) -> float:
        return statistics.median(self.samples) * self.scale

    def anchor(self, name: str) -> float:
        return statistics.median(self.anchors[name]) * self.scale

    def versus(self, name: str) -> str:
        """The ratio to an anchor as a cell ("" without that anchor)."""
        if not self.anchors.get(name):
            return ""
        return f"{self.median / self.anchor(name):.3g}x"

    @property
    def missed(self) -> bool:
        return not all(goal.met(self) for goal in self.goals)

    @property
    def status(self) -> str:
        return "; ".join(goal.text(self) for goal in self.goals)


@dataclass
class Report:
    sizes: Sizes
    sections: list[str]
    rows: list[Row] = field(default_factory=list)
    gpu: list[Row] | None = None  # None: no CUDA GPU, not measured
    start: list[Row] = field(default_factory=list)
    phases: list[tuple[str, float]] = field(default_factory=list)  # train() in a fresh process
    beyond_lightning: list[tuple[str, float]] = field(default_factory=list)
    commands: list[tuple[str, float, bool]] = field(default_factory=list)  # (cmd, s, imports torch)
    startup_imports: list[tuple[str, float]] = field(default_factory=list)
    memory: list[dict[str, float | str]] = field(default_factory=list)
    csv: list[dict[str, float | str]] = field(default_factory=list)
    suite: tuple[float, str, list[tuple[str, str]]] | None = None  # seconds, result, slowest
    profiles: dict[str, str] = field(default_factory=dict)

    def missed(self, prefix: str) -> bool:
        return any(row.name.startswith(prefix) and row.missed for row in self.rows + self.start)


# What each default costs per epoch in W1: the defaults without one of them at a time.
WITHOUT = {
    "the TensorBoard logger": ["~logger"],
    "best.ckpt": ["callbacks.model_checkpoint=null"],
    "last.ckpt": ["callbacks.last_checkpoint=null"],
    "the progress bar": ["callbacks.progress_bar=null", "++trainer.enable_progress_bar=false"],
}
# The goals (2-core CPU).
W1_GOAL = (Goal("floor", 2.0),)
W2_MLP_GOAL = (Goal("floor", 1.2), Goal("peer", 4.0))
W2_LINEAR_GOAL = (Goal("floor", 1.2),)
START_GOAL = (Goal("plain", 1.35, "`import lightning`"),)
MEMORY_GOAL = 3.0  # peak RSS of W2 at most baseline + 3x the data


def _anchors(times: dict[str, list[float]]) -> dict[str, list[float]]:
    names = {PLAIN: "plain", FLOOR: "floor", PEER: "peer"}
    return {short: times[case] for case, short in names.items() if case in times}


def bench_w1(report: Report) -> None:
    epochs = report.sizes.w1_epochs
    _say(f"W1: experiment=linear_tutorial, {epochs} epochs")
    without = {name: f"litplate, defaults without {name}" for name in WITHOUT}
    cases = {
        PLAIN: plain_case(w1(epochs)),
        DEFAULTS: litplate_case(w1(epochs)),
        QUIETED: litplate_case(w1(epochs) + QUIET),
        FLOOR: litplate_case(w1(epochs), fit_floor),
        PEER: litplate_case(w1(epochs), fit_peer),
        **{case: litplate_case(w1(epochs) + WITHOUT[name]) for name, case in without.items()},
    }
    times = interleaved(cases, report.sizes)
    anchors = _anchors(times)

    def row(case: str, goals: tuple[Goal, ...] = ()) -> Row:
        workload = f"W1, {epochs} epochs"
        return Row(workload, case, "ms/epoch", 1000 / epochs, times[case], anchors, goals)

    defaults = row(DEFAULTS, W1_GOAL)
    report.rows += [defaults, row(QUIETED), row(FLOOR), row(PEER), row(PLAIN)]
    for name, case in without.items():
        less = row(case)
        cost = defaults.median - less.median
        report.rows.append(replace(less, note=f"{name} costs {cost:.2f} ms/epoch"))


def bench_w2(report: Report) -> None:
    sizes = report.sizes
    mlp, linear = w2_mlp(sizes), w2_linear(sizes)
    (mlp_points, mlp_steps), (linear_points, linear_steps) = _size(mlp), _size(linear)
    _say(f"W2: MLP 1-64-1, {mlp_points:,} points, {mlp_steps} training batches")
    threads = f"torch's default threads ({TORCH_DEFAULT_THREADS})"
    defaults_threads, floor_threads = f"{DEFAULTS}, {threads}", f"{FLOOR}, {threads}"
    cases = {
        PLAIN: plain_case(mlp),
        DEFAULTS: litplate_case(mlp),
        QUIETED: litplate_case(mlp + QUIET),
        FLOOR: litplate_case(mlp, fit_floor),
        PEER: litplate_case(mlp, fit_peer),
        defaults_threads: with_threads(TORCH_DEFAULT_THREADS, litplate_case(mlp)),
        floor_threads: with_threads(TORCH_DEFAULT_THREADS, litplate_case(mlp, fit_floor)),
    }
    times = interleaved(cases, sizes)
    anchors = _anchors(times)
    workload = f"W2 MLP 1-64-1, {mlp_points:,} points"
    goals = {DEFAULTS: W2_MLP_GOAL, QUIETED: (), FLOOR: (), PEER: (), PLAIN: ()}
    for case, case_goals in goals.items():
        note = _per_step(times[case], times[FLOOR], mlp_steps)
        report.rows.append(Row(workload, case, "s", 1, times[case], anchors, case_goals, note))
    threaded = {"floor": times[floor_threads]}  # the floor on the same threads
    report.rows.append(
        Row(workload, defaults_threads, "s", 1, times[defaults_threads], threaded, W2_MLP_GOAL[:1])
    )
    report.rows.append(Row(workload, floor_threads, "s", 1, times[floor_threads], threaded))

    _say(f"W2: linear model, {linear_points:,} points, {linear_steps} training batches")
    cases = {
        PLAIN: plain_case(linear),
        DEFAULTS: litplate_case(linear),
        FLOOR: litplate_case(linear, fit_floor),
        PEER: litplate_case(linear, fit_peer),
    }
    # The peer takes about a minute here (one Python __getitem__ per point): one run.
    times = interleaved(cases, sizes, once=frozenset({PEER}))
    anchors = _anchors(times)
    workload = f"W2 linear, {linear_points:,} points"
    for case, case_goals in ((DEFAULTS, W2_LINEAR_GOAL), (FLOOR, ()), (PEER, ()), (PLAIN, ())):
        note = _per_step(times[case], times[FLOOR], linear_steps)
        if case == PEER:
            note += "; one run"
        report.rows.append(Row(workload, case, "s", 1, times[case], anchors, case_goals, note))


def bench_gpu(report: Report, preset: str = "gpu", device: str = "cuda") -> None:
    """W2 (MLP and linear) on one GPU, `trainer=gpu`, in each of PRECISIONS: litplate's defaults
    and the floor, against the plain loop in float32 on the same GPU.

    `preset` and `device` let the tests run this on the CPU.
    """
    if device == "cuda" and not torch.cuda.is_available():
        _say("gpu: no CUDA GPU, not measured")
        report.gpu = None
        return
    sizes, rows = report.sizes, []
    for name, overrides in (("MLP 1-64-1", w2_mlp(sizes)), ("linear", w2_linear(sizes))):
        base = [*overrides, f"trainer={preset}"]
        points, steps = _size(base)
        workload = f"W2 {name}, {points:,} points, {device}"
        _say(f"gpu: {workload}")
        cases = {PLAIN: plain_case(base, device)}
        for precision in PRECISIONS:
            with_precision = [*base, f"trainer.precision={precision}"]
            cases[f"{FLOOR} ({precision})"] = litplate_case(with_precision, fit_floor)
            cases[f"{DEFAULTS} ({precision})"] = litplate_case(with_precision)
        off = f"{DEFAULTS} ({PRECISIONS[0]}), data.on_device=false: batches copied per step"
        cases[off] = litplate_case([*base, "data.on_device=false"])
        times = interleaved(cases, sizes)
        for case, samples in times.items():
            precision = next((p for p in PRECISIONS if f"({p})" in case), PRECISIONS[0])
            anchors = {"plain": times[PLAIN], "floor": times[f"{FLOOR} ({precision})"]}
            note = _per_step(samples, anchors["floor"], steps)
            rows.append(Row(workload, case, "s", 1, samples, anchors, (), note))
    report.gpu = rows


def _per_step(samples: list[float], anchor: list[float], steps: int) -> str:
    extra = statistics.median(samples) - statistics.median(anchor)
    return f"{steps} steps: {extra / steps * 1e6:+.0f} µs/step over the floor"


def _size(overrides: list[str]) -> tuple[int, int]:
    """(points, training batches) of a config's data."""
    with scratch() as out:
        datamodule, _ = build_data_and_model(make_cfg(overrides, out))
        return len(datamodule.X), len(datamodule.train_dataloader())


def bench_start(report: Report) -> None:
    """Fresh processes (the OS file cache is warm): train.py end to end against importing."""
    python, train = sys.executable, str(ROOT / "scripts" / "train.py")
    overrides = ["experiment=linear", *report.sizes.start_overrides]
    with scratch() as out:

        def train_run() -> float:
            run_dir = tempfile.mkdtemp(dir=out)
            return command_case([python, train, *overrides, f"hydra.run.dir={run_dir}"])()

        _say("start: train.py experiment=linear against python -c 'import lightning'")
        times = interleaved(
            {
                "train.py": train_run,
                "import lightning": command_case([python, "-c", "import lightning"]),
                "--help": command_case([python, train, "--help"]),
                "--cfg job": command_case([python, train, "--cfg", "job"]),
            },
            report.sizes,
        )
        report.start.append(
            Row(
                "Cold start",
                f"`train.py {' '.join(overrides)}`, end to end (fit, test, plots, exports)",
                "s",
                1,
                times["train.py"],
                {"plain": times["import lightning"]},
                START_GOAL,
            )
        )
        imported_only = times["import lightning"]
        report.start.append(
            Row(
                "Cold start",
                "`python -c 'import lightning'`",
                "s",
                1,
                imported_only,
                {"plain": imported_only},
            )
        )
        report.phases = _child(["--phases-child", json.dumps(overrides)])["phases"]
        for name in ("--help", "--cfg job"):
            imported = _imports([python, "-X", "importtime", train, *name.split()])
            report.commands.append(
                (f"train.py {name}", statistics.median(times[name]), "torch" in imported)
            )
        if not report.sizes.import_tables:
            return
        imported = _imports(
            [python, "-X", "importtime", train, *overrides, f"hydra.run.dir={out / 'importtime'}"]
        )
        report.startup_imports = sorted(imported.items(), key=lambda kv: -kv[1])[:12]
        by_lightning = _imports([python, "-X", "importtime", "-c", "import lightning"])
        beyond = {name: s for name, s in imported.items() if name not in by_lightning}
        report.beyond_lightning = sorted(beyond.items(), key=lambda kv: -kv[1])[:10]


# train()'s steps, timed in a fresh process: (module, attribute, label), in the order they run.
PHASES = (
    ("litplate.train", "_start", "check the config, print it, make the run directory"),
    ("litplate.train", "build_data_and_model", "build the data and the model"),
    ("litplate.train", "build_trainer", "build the Trainer, its callbacks and logger"),
    ("litplate.train", "_fit", "trainer.fit"),
    ("lightning.pytorch.trainer.trainer", "Trainer.test", "trainer.test"),
    ("litplate.train", "predict", "predict the test points"),
    ("litplate.train", "plot_predictions", "plot predictions.png"),
    ("litplate.train", "plot_loss_curves", "plot loss_curves.png"),
    ("litplate.run.trackers", "log_figure", "the figures into TensorBoard"),
    ("litplate.train", "save_weights", "write model.safetensors"),
    ("litplate.run.trackers", "log_run", "hyper-parameters and metrics into TensorBoard"),
    ("litplate.train", "write_json", "write metrics.json"),
)


def phases_child(overrides: list[str]) -> None:
    """In a fresh process: `train()` with each of PHASES timed; print the seconds as JSON.

    Composing the config and importing are not in it: the cold start's table has them.
    """
    import importlib

    from litplate.train import train

    spent: dict[str, float] = {}
    for module_name, attribute, label in PHASES:
        owner: Any = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, name, _timed(getattr(owner, name), label, spent))
    with scratch() as out:
        cfg = make_cfg(overrides, out)
        start = time.perf_counter()
        train(cfg)
        total = time.perf_counter() - start
    phases = [(label, spent.get(label, 0.0)) for *_, label in PHASES]
    phases.append(("the rest of train()", total - sum(spent.values())))
    print(json.dumps({"phases": [*phases, ("train(), in all", total)]}))


def _timed(function: Callable, label: str, spent: dict[str, float]) -> Callable:
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[label] = spent.get(label, 0.0) + time.perf_counter() - start

    return timed


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
    with scratch() as out, console_off():
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


# --profile NAME: the workload, where its rows start in the table, its title.
PROFILED = {
    "W1": (lambda sizes: w1(sizes.w1_epochs), "W1,", lambda sizes: f"W1, {sizes.w1_epochs} epochs"),
    "W2": (w2_mlp, "W2 MLP", lambda sizes: "W2 MLP, one epoch"),
    "W2-linear": (w2_linear, "W2 linear", lambda sizes: "W2 linear, one epoch"),
}


def profile(workload: str, sizes: Sizes, warm: bool = False, top: int = 40) -> str:
    """cProfile of one litplate fit (defaults) of a PROFILED workload; first an unprofiled one if
    cold."""
    make_overrides, _, title_of = PROFILED[workload]
    overrides = make_overrides(sizes)
    if not warm:
        litplate_case(overrides)()
    with scratch() as out:
        cfg = make_cfg(overrides, out)
        profiler = cProfile.Profile()
        with console_off():
            start = time.perf_counter()
            profiler.runcall(fit_litplate, cfg)
            total = time.perf_counter() - start
    stats = pstats.Stats(profiler).stats  # {(file, line, function): (cc, calls, own, cum, callers)}
    title = title_of(sizes)
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


TABLE = [
    "| benchmark | time | vs plain | vs floor | vs peer | goal | |",
    "|---|---:|---:|---:|---:|---|---|",
]


def _table_row(row: Row) -> str:
    cells = [row.name, f"{row.median:.3g} {row.unit}"]
    cells += [row.versus(anchor) for anchor in ("plain", "floor", "peer")]
    return "| " + " | ".join([*cells, row.status, row.note]) + " |"


# Where a goal is missed, a paragraph written by hand says why; kept when the file is rewritten.
WHY = re.compile(r"<!-- why: (?P<key>[\w-]+) -->\n(?P<text>.*?)\n<!-- /why -->", re.DOTALL)
WHY_PLACEHOLDER = "_Why it is missed, in one paragraph: to be written after reading the profile._"


def kept_paragraphs(path: Path | None) -> dict[str, str]:
    """The hand-written why-paragraphs of an earlier BENCHMARKS.md, by key."""
    if path is None or not path.is_file():
        return {}
    found = WHY.finditer(path.read_text(encoding="utf-8"))
    return {m["key"]: m["text"] for m in found if m["text"].strip() != WHY_PLACEHOLDER}


def _why(key: str, title: str, paragraphs: dict[str, str]) -> list[str]:
    text = paragraphs.get(key, WHY_PLACEHOLDER)
    heading = f"### Why {title} misses its goal"
    return [heading, "", f"<!-- why: {key} -->", text, "<!-- /why -->", ""]


def markdown(
    report: Report, command: str, host: dict[str, str], paragraphs: dict[str, str] | None = None
) -> str:
    sizes, paragraphs = report.sizes, paragraphs or {}
    out = [
        "# Benchmarks",
        "",
        f"`{command}` (`make bench`), written by [benchmarks/run.py](benchmarks/run.py). Each"
        " workload runs its cases in turn (A, B, A, B, ...) in one process:"
        f" {sizes.warmup} warm-up round(s) discarded, then {sizes.repeats} timed round(s); the"
        " numbers are medians, and each ratio is a case's median over an anchor's on the same"
        " workload: the plain loop, Lightning's floor, the peer pipeline (below).",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in host.items()),
        "",
    ]
    if report.rows:
        out += ["## Time", "", *TABLE, *map(_table_row, report.rows), ""]
        out += [*_what_is_timed(report), ""]
        for key, (_, prefix, title_of) in PROFILED.items():
            if report.missed(prefix):
                out += _why(key, title_of(sizes), paragraphs)
    if "gpu" in report.sections:
        out += ["## GPU", ""]
        if report.gpu is None:
            out += [
                "W2 (MLP and linear) with `trainer=gpu` in `trainer.precision=32-true` and"
                " `bf16-mixed`, against the plain loop and the floor on the same GPU: not measured"
                " (no CUDA GPU).",
                "",
            ]
        else:
            device = torch.cuda.get_device_name() if torch.cuda.is_available() else "the CPU"
            out += [
                f"On {device}, one process, as above. vs plain: the plain loop in float32 on the"
                " same device (model and data moved there once); vs floor: the floor in the same"
                " precision. `data.on_device=false` keeps the data on the host and copies each"
                " batch per step, as a DataLoader would.",
                "",
                *TABLE,
                *map(_table_row, report.gpu),
                "",
            ]
    if report.start:
        out += [
            "## Cold start",
            "",
            "Fresh processes, the OS file cache warm, output captured (not a terminal).",
            "",
            "| run | median | vs `import lightning` | goal |",
            "|---|---:|---:|---|",
        ]
        out += [
            f"| {row.case} | {row.median:.2f} s | {row.versus('plain')} | {row.status} |"
            for row in report.start
        ]
        out += [
            "",
            "Where `train()` spends its time after the imports and the config (in a fresh process"
            " of its own, each step timed where train() calls it):",
            "",
            "| step | s |",
            "|---|---:|",
            *(f"| {label} | {seconds:.3f} |" for label, seconds in report.phases),
            "",
        ]
        if any(row.missed for row in report.start):
            out += _why("start", "the cold start", paragraphs)
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
        if not report.startup_imports:
            out.append("")
    if report.startup_imports:
        out += [
            "",
            "The slowest packages to import in `train.py experiment=linear` (-X importtime; each"
            " includes the packages it was first to import, e.g. lightning includes torch):",
            "",
            "| package | s |",
            "|---|---:|",
        ]
        out += [f"| {name} | {seconds:.2f} |" for name, seconds in report.startup_imports]
        out += [
            "",
            "What it imports that `python -c 'import lightning'` does not (torchmetrics imports"
            " matplotlib and scipy whenever they are installed, so they come with lightning):",
            "",
            "| package | s |",
            "|---|---:|",
        ]
        out += [f"| {name} | {seconds:.2f} |" for name, seconds in report.beyond_lightning]
        out.append("")
    if report.memory:
        out += [
            "## Peak memory of W2",
            "",
            "Peak RSS (VmHWM) of a fresh process running the W2 litplate fit (defaults),",
            "against the baseline: the same modules imported and the same fit on the course's 40",
            "points (W1 for one epoch). Data = the bytes of the X and y tensors.",
            "",
            "| workload | data (X, y) | peak RSS | baseline | (peak - baseline) / data | goal |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for m in report.memory:
            verdict = "met" if m["ratio"] <= MEMORY_GOAL else "**missed**"
            out.append(
                f"| {m['workload']} | {m['data_mb']:.1f} MB | {m['peak_mb']:.0f} MB | "
                f"{m['baseline_mb']:.0f} MB | {m['ratio']:.1f}x | ≤ {MEMORY_GOAL:g}x: {verdict} |"
            )
        out.append("")
        if any(m["ratio"] > MEMORY_GOAL for m in report.memory):
            out += _why("memory", "the peak memory of W2", paragraphs)
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
        f" `experiment=linear`, {linear_points:,} points, where the peer runs once (about a"
        " minute: one Python `__getitem__` per point).",
    }
    threads = torch.get_num_threads()
    return [
        "What is timed:",
        "- litplate, defaults: what `train()` does up to `trainer.fit` — seed, build the data"
        " module, model and Trainer from the config (its default callbacks and TensorBoard logger),"
        " then `trainer.fit`; no test, plots or exports. Composing the config is not timed. Off:"
        f" `{' '.join(QUIET)}`.",
        "- Lightning's floor: the same network and data in a LightningModule whose steps only"
        " compute the loss (`LossOnly`), fitted by a Trainer of the same config without callbacks,"
        " logger, checkpoints, progress bar or summary: what no Lightning run can go below.",
        "- The peer pipeline: the same network as a typical Lightning + Hydra template writes it"
        " (`Peer`, after ashleve/lightning-hydra-template's MNISTLitModule): a DataLoader over a"
        " TensorDataset with `shuffle=True`, torchmetrics objects (MeanMetric, MeanAbsoluteError,"
        " MeanSquaredError, MinMetric) called and logged with `self.log(..., on_step=False,"
        " on_epoch=True)` every step, a TensorBoardLogger, ModelCheckpoint on `val/loss` with"
        " `save_last=True`, Lightning's default progress bar and model summary.",
        "- The plain loop: `litplate.reference.fit_reference(cfg)`, the course's loop written out"
        " (tests/test_reference.py proves it bit-identical to the Lightning run).",
        *(text for section, text in by_section.items() if section in report.sections),
        "- The fits' console output (progress bars, model summaries) goes to /dev/null, which"
        " rich and tqdm see as no terminal: no live bar is drawn. Warnings are shown once each.",
        f"- torch ran on {threads} thread(s) (`--threads`); users of `train.py` get torch's"
        f" default, {TORCH_DEFAULT_THREADS} here (one per core), because litplate sets none: on a"
        " machine of their own the default is right for larger models. The benchmark pins 1"
        " because on a shared 2-core machine two OpenMP threads stall for milliseconds per"
        " operation whenever another process holds a core, and these small models gain nothing"
        " from a second thread; the W2 MLP rows at torch's default threads show what users get.",
    ]


def _seconds(seconds: float) -> str:
    """Two decimals in seconds, or milliseconds where that would round a small file's time to 0."""
    return f"{seconds:.2f} s" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, one round, no warm-up, no import tables"
    )
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--suite", action="store_true", help="also time the whole test suite")
    parser.add_argument("--profile", choices=tuple(PROFILED), help="only print this cProfile")
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
    parser.add_argument("--phases-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    lightning_output.quiet()  # as every litplate entry point does
    # Each fit's "GPU available", "Seed set": a wall of lines in a benchmark; warnings still show.
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)

    if args.memory_child:
        memory_child(json.loads(args.memory_child))
        return 0
    if args.csv_child:
        csv_child(*args.csv_child)
        return 0
    if args.phases_child:
        phases_child(json.loads(args.phases_child))
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
        "gpu": bench_gpu,
        "start": bench_start,
        "memory": bench_memory,
        "csv": bench_csv,
    }
    for name in sections:
        benches[name](report)
    if args.suite:
        bench_suite(report)
    if not args.no_profile:
        for workload, (_, prefix, _) in PROFILED.items():
            if report.missed(prefix):
                _say(f"profile: {workload} missed its goal")
                report.profiles[workload] = profile(workload, sizes, warm=True)
    host["load average (1 min) at end"] = f"{os.getloadavg()[0]:.2f}"
    host["benchmark wall time"] = f"{time.perf_counter() - started:.0f} s"
    command = " ".join(["python benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])])
    # Only a full run replaces the committed BENCHMARKS.md; a partial one goes where it is told.
    output = args.output or (None if args.quick or args.only else ROOT / "BENCHMARKS.md")
    text = markdown(report, command, host, kept_paragraphs(output))
    print(text, end="")
    if output:
        output.write_text(text, encoding="utf-8")
        _say(f"written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
