"""litplate against Lightning's floor, the peer pipeline and the plain loop (issue 20).

    python benchmarks/run.py                      # everything; writes BENCHMARKS.md (minutes)
    python benchmarks/run.py --quick              # tiny sizes, one round: checks the harness
    python benchmarks/run.py --sections W2,start  # some of W1, W2, start, gpu (--output FILE)

litplate is driven only through its public entry points: `litplate.train.train(cfg)` on a config
composed as `scripts/train.py` composes it, `litplate.reference.fit_reference(cfg)`, and
`scripts/train.py` itself for the cold start. The floor and the peer are written here.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import logging
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset
from torchmetrics import MeanAbsoluteError, MeanMetric, MeanSquaredError, MinMetric

from litplate.reference import fit_reference
from litplate.train import train

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("W1", "W2", "start", "gpu")
PRECISIONS = ("32-true", "bf16-mixed")
CASES = {
    "litplate": "litplate `train()`, defaults",
    "floor": "Lightning's floor",
    "peer": "peer pipeline",
    "plain": "plain loop (`fit_reference`)",
}
Setup = Callable[[Path], Callable[[], Any]]
FLOOR_LIMIT, PEER_LIMIT, START_LIMIT = 1.25, 4.0, 1.35  # issue 20's goals


@dataclass(frozen=True)
class Sizes:
    points: int = 1_000_000  # W2's rows
    w1_epochs: int = 300  # experiment=linear's own
    rounds: int = 3  # timed, after `warmup` discarded ones
    warmup: int = 1


QUICK = Sizes(points=10_000, w1_epochs=3, rounds=1, warmup=0)


@dataclass(frozen=True)
class Workload:
    """One job in two spellings: litplate's overrides, and what the floor and the peer build."""

    title: str
    overrides: tuple[str, ...]
    points: int
    batch_size: int | None  # None: the whole split as one batch
    epochs: int
    train_fraction: float
    sine: bool  # y = sin(2πx) (MLP) or 0.7x + 0.3 (linear)
    hidden: int | None  # None: the linear model

    def net(self) -> nn.Module:
        if self.hidden is None:
            return nn.Linear(1, 1)
        return nn.Sequential(nn.Linear(1, self.hidden), nn.Tanh(), nn.Linear(self.hidden, 1))

    def loss(self) -> nn.Module:
        return nn.MSELoss() if self.sine else nn.L1Loss()

    def optimizers(self, params: Iterator[nn.Parameter]) -> Any:
        if self.sine:  # experiment=mlp
            return torch.optim.Adam(params, lr=0.03)
        sgd = torch.optim.SGD(params, lr=0.01, momentum=0.9)  # experiment=linear
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(sgd, T_max=self.epochs)
        return {"optimizer": sgd, "lr_scheduler": cosine}

    def data(self, device: str) -> tuple[TensorDataset, TensorDataset]:
        """Train and test splits of the same size and kind as litplate's (values may differ)."""
        X = torch.arange(0.0, 1.0, 1.0 / self.points).unsqueeze(1)
        y = torch.sin(2 * math.pi * X) if self.sine else 0.7 * X + 0.3
        rows = torch.randperm(len(X)) if self.sine else torch.arange(len(X))
        cut = round(self.train_fraction * len(X))
        X, y = X.to(device), y.to(device)
        return (
            TensorDataset(X[rows[:cut]], y[rows[:cut]]),
            TensorDataset(X[rows[cut:]], y[rows[cut:]]),
        )


def w1(sizes: Sizes) -> Workload:
    overrides = ("experiment=linear", f"trainer.max_epochs={sizes.w1_epochs}")
    title = f"W1: experiment=linear, the course's 40 points as one batch, {sizes.w1_epochs} epochs"
    return Workload(title, overrides, 50, None, sizes.w1_epochs, 0.8, False, None)


def w2(sizes: Sizes) -> Workload:
    overrides = (
        "experiment=mlp",
        "model.hidden_sizes=[64]",
        *("data.start=0", "data.end=1", f"data.step={1 / sizes.points}", "data.shuffle=true"),
        *("data.batch_size=1024", "data.train_fraction=0.99", "data.val_fraction=0"),
        *("data.test_fraction=0.01", "trainer.max_epochs=1"),
    )
    title = f"W2: MLP 1-64-1, {sizes.points:,} rows, batches of 1024, one epoch"
    return Workload(title, overrides, sizes.points, 1024, 1, 0.99, True, 64)


# ---------------------------------------------------------------------------------------------
# The cases


class Batches(Sampler):
    """One index tensor per batch: one `__getitem__` per batch, as litplate's own loader does."""

    def __init__(self, size: int, batch_size: int | None, shuffle: bool) -> None:
        self.size, self.batch_size, self.shuffle = size, batch_size or size, shuffle

    def __iter__(self) -> Iterator[torch.Tensor]:
        order = torch.randperm(self.size) if self.shuffle else torch.arange(self.size)
        return iter(order.split(self.batch_size))

    def __len__(self) -> int:
        return math.ceil(self.size / self.batch_size)


class Floor(L.LightningModule):
    """Lightning's own cost: steps that only compute the loss, nothing logged."""

    def __init__(self, workload: Workload) -> None:
        super().__init__()
        self.workload, self.net, self.loss = workload, workload.net(), workload.loss()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return self.loss(self.net(x), y)

    validation_step = test_step = training_step

    def configure_optimizers(self) -> Any:
        return self.workload.optimizers(self.net.parameters())


class Peer(Floor):
    """After ashleve/lightning-hydra-template's MNISTLitModule: torchmetrics logged every step."""

    def __init__(self, workload: Workload) -> None:
        super().__init__(workload)
        self.train_loss, self.val_loss, self.test_loss = MeanMetric(), MeanMetric(), MeanMetric()
        self.train_mae, self.val_mae, self.test_mae = (MeanAbsoluteError() for _ in range(3))
        self.val_mse, self.val_loss_best = MeanSquaredError(), MinMetric()

    def on_train_start(self) -> None:
        self.val_loss.reset()
        self.val_mae.reset()
        self.val_loss_best.reset()

    def model_step(self, batch: Any, stage: str) -> torch.Tensor:
        x, y = batch
        preds = self.net(x)
        loss = self.loss(preds, y)
        getattr(self, f"{stage}_loss")(loss)
        getattr(self, f"{stage}_mae")(preds, y)
        for metric in ("loss", "mae"):
            value = getattr(self, f"{stage}_{metric}")
            self.log(f"{stage}/{metric}", value, on_step=False, on_epoch=True, prog_bar=True)
        if stage == "val":
            self.val_mse(preds, y)
            self.log("val/mse", self.val_mse, on_step=False, on_epoch=True)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.model_step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.model_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.model_step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self.val_loss_best(self.val_loss.compute())
        self.log("val/loss_best", self.val_loss_best.compute(), prog_bar=True)


def fit_lightning(
    workload: Workload, out: Path, accelerator: str, precision: str, peer: bool = False
) -> None:
    """Fit, then test: the Floor with nothing else, or the peer pipeline: DataLoader(TensorDataset,
    shuffle=True), TensorBoard, ModelCheckpoint on val/loss + last, testing the best checkpoint."""
    train_set, test_set = workload.data("cuda" if accelerator == "gpu" else "cpu")
    size = workload.batch_size
    if peer:
        loaders = [DataLoader(s, batch_size=size or len(s), shuffle=shuffle)
                   for s, shuffle in ((train_set, True), (test_set, False))]  # fmt: skip
        checkpoint = ModelCheckpoint(out / "checkpoints", monitor="val/loss", save_last=True)
        extras = {"callbacks": [checkpoint], "logger": TensorBoardLogger(out, name="tensorboard")}
    else:
        loaders = [DataLoader(s, sampler=Batches(len(s), size, shuffle), batch_size=None)
                   for s, shuffle in ((train_set, True), (test_set, False))]  # fmt: skip
        off = ("enable_checkpointing", "enable_progress_bar", "enable_model_summary")
        extras = {"callbacks": [], "logger": False, **dict.fromkeys(off, False)}
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        precision=precision,
        max_epochs=workload.epochs,
        default_root_dir=out,
        **extras,
    )
    model = Peer(workload) if peer else Floor(workload)
    trainer.fit(model, *loaders)
    trainer.test(model, loaders[1], ckpt_path="best" if peer else None, verbose=False)


def make_cfg(overrides: list[str], out: Path) -> DictConfig:
    """The config `scripts/train.py OVERRIDES` runs, writing into `out`."""
    with initialize_config_dir(str(ROOT / "configs"), version_base="1.3"):
        return compose("train", overrides=[*overrides, f"paths.output_dir={out}"])


def setups(workload: Workload, accelerator: str, precision: str) -> dict[str, Setup]:
    """Each case's setup: given a scratch folder, what to time (configs composed beforehand)."""
    overrides = [*workload.overrides, f"trainer={accelerator}", f"trainer.precision={precision}"]
    device = "cuda" if accelerator == "gpu" else "cpu"
    return {
        "litplate": lambda out: partial(train, make_cfg(overrides, out)),
        "floor": lambda out: partial(fit_lightning, workload, out, accelerator, precision),
        "peer": lambda out: partial(fit_lightning, workload, out, accelerator, precision, True),
        "plain": lambda out: partial(fit_reference, make_cfg(overrides, out), device=device),
    }


_SHOWN: set[str] = set()


def timed(setup: Setup) -> Callable[[], float]:
    """Seconds of what `setup(scratch)` returns, its console output sent to /dev/null."""

    def case() -> float:
        out = Path(tempfile.mkdtemp(prefix="litplate-bench-"))
        try:
            fit = setup(out)
            gc.collect()
            with (
                open(os.devnull, "w") as null,
                contextlib.redirect_stdout(null),
                contextlib.redirect_stderr(null),
                warnings.catch_warnings(record=True) as caught,
            ):
                start = time.perf_counter()
                fit()
                if torch.cuda.is_available():
                    torch.cuda.synchronize()  # a CUDA fit's kernels may still run
                seconds = time.perf_counter() - start
        finally:
            shutil.rmtree(out, ignore_errors=True)
        for warning in caught:  # each warning once, not once a round
            text = warnings.formatwarning(warning.message, warning.category, warning.filename, 0)
            if text not in _SHOWN:
                _SHOWN.add(text)
                sys.stderr.write(text)
        return seconds

    return case


def command(args: list[str]) -> Callable[[], float]:
    """Wall seconds of a fresh process running `args` from the repository root."""

    def case() -> float:
        start = time.perf_counter()
        result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if result.returncode:
            raise RuntimeError(f"{' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return seconds

    return case


def interleaved(cases: dict[str, Callable[[], float]], sizes: Sizes) -> dict[str, float]:
    """Medians; each round runs every case once (A, B, A, B...), so drift hits them all alike."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for number in range(sizes.warmup + sizes.rounds):
        for name, case in cases.items():
            seconds = case()
            say(f"  round {number + 1}/{sizes.warmup + sizes.rounds}: {name} {seconds:.3g} s")
            if number >= sizes.warmup:
                times[name].append(seconds)
    return {name: statistics.median(samples) for name, samples in times.items()}


def measure(
    workload: Workload, sizes: Sizes, cases: tuple[str, ...], accelerator: str, precision: str
) -> dict[str, float]:
    every = setups(workload, accelerator, precision)
    return interleaved({name: timed(every[name]) for name in cases}, sizes)


# ---------------------------------------------------------------------------------------------
# The report


@dataclass
class Table:
    title: str
    rows: list[tuple[str, float | None, str, str]]  # case, median s (None: not measured), goal, ok
    floor: float | None = None

    def markdown(self) -> list[str]:
        lines = [f"## {self.title}", "", "| case | median s | vs floor | goal | verdict |"]
        lines.append("|---|---:|---:|---|---|")
        for case, seconds, goal, verdict in self.rows:
            if seconds is None:
                lines.append(f"| {case} | not measured (no CUDA) | | | |")
                continue
            ratio = f"{seconds / self.floor:.2f}x" if self.floor else ""
            lines.append(f"| {case} | {seconds:.3g} | {ratio} | {goal} | {verdict} |")
        return [*lines, ""]


def verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def workload_table(title: str, times: dict[str, float], goals: bool) -> Table:
    floor = times["floor"]
    rows = []
    for name, seconds in times.items():
        goal, ok = "", ""
        if goals and name == "litplate":
            goal, ok = f"≤ {FLOOR_LIMIT}x floor", verdict(seconds <= FLOOR_LIMIT * floor)
        elif goals and name == "peer" and "litplate" in times:
            faster = seconds / times["litplate"]
            goal = f"litplate ≥ {PEER_LIMIT:g}x faster: {faster:.2f}x"
            ok = verdict(faster >= PEER_LIMIT)
        rows.append((CASES[name], seconds, goal, ok))
    return Table(title, rows, floor)


def bench_workloads(sizes: Sizes, sections: list[str]) -> list[Table]:
    tables = []
    for section, workload in (("W2", w2(sizes)), ("W1", w1(sizes))):
        if section in sections:
            say(workload.title)
            times = measure(workload, sizes, tuple(CASES), "cpu", "32-true")
            tables.append(workload_table(workload.title, times, goals=section == "W2"))
    return tables


def bench_gpu(sizes: Sizes) -> list[Table]:
    """W2 on `trainer=gpu` in each precision: litplate, the floor, and the plain loop (float32)."""
    workload = w2(sizes)
    if not torch.cuda.is_available():
        say("gpu: no CUDA, not measured")
        rows = [(f"{p}: {CASES['litplate']}", None, "", "") for p in PRECISIONS]
        return [Table("GPU: W2 on `trainer=gpu`", rows)]
    tables = []
    for precision in PRECISIONS:
        say(f"gpu, {precision}")
        times = measure(workload, sizes, ("litplate", "floor", "plain"), "gpu", precision)
        title = f"GPU: W2 on `trainer=gpu`, {precision}, {torch.cuda.get_device_name()}"
        tables.append(workload_table(title, times, goals=False))
    return tables


def bench_start(sizes: Sizes) -> Table:
    """Fresh processes (the file cache warm): train.py end to end against `import lightning`."""
    python, runs = sys.executable, Path(tempfile.mkdtemp(prefix="litplate-bench-"))
    args = ["experiment=linear", "trainer.max_epochs=1"]
    script = [python, "scripts/train.py", *args]

    def train_run() -> float:
        return command([*script, f"hydra.run.dir={tempfile.mkdtemp(dir=runs)}"])()

    try:
        times = interleaved(
            {"train": train_run, "import": command([python, "-c", "import lightning"])}, sizes
        )
    finally:
        shutil.rmtree(runs, ignore_errors=True)
    ratio = times["train"] / times["import"]
    rows = [
        (f"`python scripts/train.py {' '.join(args)}`", times["train"],
         f"≤ {START_LIMIT}x floor", verdict(ratio <= START_LIMIT)),
        ("floor: `python -c \"import lightning\"`", times["import"], "", ""),
    ]  # fmt: skip
    return Table("Cold start: fresh processes", rows, times["import"])


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        found = re.findall(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = found[0].strip() if found else cpu
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    git = ["git", "describe", "--always", "--dirty"]
    commit = subprocess.run(git, cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return (
        f"{cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}; Python"
        f" {platform.python_version()}, torch {torch.__version__}, lightning {L.__version__};"
        f" litplate {commit or 'unknown'}; {now}; load average {os.getloadavg()[0]:.1f}"
    )


HOW_TO_READ = (
    "- Times are medians of {rounds} rounds (after {warmup} warm-up), the cases taking turns"
    " (A, B, A, B...) in one process; vs floor: a case's median over the floor's.",
    "- litplate: all of `train()` on the workload's config (fit, test of the best checkpoint,"
    " plots, exports); the floor: a LightningModule whose steps only compute the loss, fit then"
    " tested, with no callbacks, logger, checkpoints, progress bar or model summary.",
    "- The peer: the same job as ashleve/lightning-hydra-template writes it (DataLoader over a"
    " TensorDataset, torchmetrics logged every step, TensorBoard, ModelCheckpoint + last, fit"
    " then tested); the plain loop: `litplate.reference.fit_reference`, no Lightning, no test.",
    "- Cold start: fresh processes, the file cache warm; its floor is `import lightning`. On a GPU"
    " the plain loop runs in float32. Console output goes to /dev/null; torch's threads: its own.",
)


def markdown(tables: list[Table], sizes: Sizes, command_line: str) -> str:
    lines = ["# Benchmarks", "", f"`{command_line}` wrote this file on: {machine()}.", ""]
    for table in tables:
        lines += table.markdown()
    lines += ["## How to read", ""]
    lines += [line.format(rounds=sizes.rounds, warmup=sizes.warmup) for line in HOW_TO_READ]
    return "\n".join(lines) + "\n"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round, no warm-up")
    parser.add_argument("--sections", help=f"comma-separated, of {','.join(SECTIONS)}")
    parser.add_argument("--output", type=Path, help="default: BENCHMARKS.md for a full run")
    args = parser.parse_args(argv)
    sections = args.sections.split(",") if args.sections else list(SECTIONS)
    if unknown := set(sections) - set(SECTIONS):
        parser.error(f"--sections: unknown {', '.join(sorted(unknown))}; of {SECTIONS}")
    for name in ("lightning.pytorch", "lightning.fabric"):  # each fit's "GPU available: ..."
        logging.getLogger(name).setLevel(logging.WARNING)
    sizes = QUICK if args.quick else Sizes()
    tables = bench_workloads(sizes, sections)
    if "start" in sections:
        tables.append(bench_start(sizes))
    if "gpu" in sections:
        tables += bench_gpu(sizes)
    command_line = " ".join(["python benchmarks/run.py", *sys.argv[1:]] if argv is None else
                            ["python benchmarks/run.py", *argv])  # fmt: skip
    text = markdown(tables, sizes, command_line)
    print(text, end="")
    # Only a full run replaces the committed BENCHMARKS.md.
    output = args.output or (None if args.quick or args.sections else ROOT / "BENCHMARKS.md")
    if output:
        output.write_text(text, encoding="utf-8")
        say(f"written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
