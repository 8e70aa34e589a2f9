"""What keeps the per-epoch overhead low (issue 6) leaves results and files as they were."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from litplate.builders import build_data_and_model, build_trainer
from litplate.callbacks import BestCheckpoint, LastCheckpoint, NonFiniteLossError
from litplate.checkpoint import load_checkpoint
from litplate.train import train
from tests.helpers.runs import QUIET, lightning_epochs, read_metrics


class SavedEpochs(L.Callback):
    """The epoch of every checkpoint the Trainer writes."""

    def __init__(self) -> None:
        self.epochs: list[int] = []

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self.epochs.append(checkpoint["epoch"])


def saved_epochs(cfg) -> list[int]:
    datamodule, model = build_data_and_model(cfg)
    spy = SavedEpochs()
    build_trainer(cfg, callbacks=[spy]).fit(model, datamodule=datamodule)
    return spy.epochs


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param(["callbacks.last_checkpoint.min_interval_s=0"], [0, 1, 2, 3, 4], id="every"),
        # A file younger than an hour is not rewritten, but the final epoch's always is.
        pytest.param([], [0, 4], id="young-file"),
        pytest.param(["+trainer.max_steps=3"], [0, 2], id="max-steps"),
    ],
)
def test_last_checkpoint_skips_young_files_but_never_the_final_epoch(
    cfg_factory, overrides, expected
):
    common = ["experiment=linear_tutorial", "trainer.max_epochs=5", *QUIET, "~logger"]
    cfg = cfg_factory(
        overrides=[
            *common,
            "callbacks.model_checkpoint=null",
            "callbacks.last_checkpoint.min_interval_s=3600",
            *overrides,
        ]
    )
    assert saved_epochs(cfg) == expected
    last = load_checkpoint(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt")
    assert last["epoch"] == expected[-1]


def test_any_logged_metric_can_be_monitored_and_reaches_metrics_json(cfg_factory):
    cfg = cfg_factory(
        overrides=[
            "experiment=linear_tutorial",
            "trainer.max_epochs=8",
            *QUIET,
            "logger=csv",
            "callbacks.model_checkpoint.monitor=val/r2",
            "callbacks.model_checkpoint.mode=max",
        ]
    )
    metrics = train(cfg)
    logged = lightning_epochs(Path(cfg.paths.output_dir))
    assert len(logged["val/r2"]) == len(logged["val/mae"]) == len(logged["weight"]) == 8
    best = load_checkpoint(metrics["best_checkpoint"])
    (state,) = (v for k, v in best["callbacks"].items() if "val/r2" in k)
    assert float(state["best_model_score"]) == max(logged["val/r2"])
    # metrics.json has the last epoch's value of every metric the model logs.
    saved = read_metrics(Path(cfg.paths.output_dir))
    for key in ("val/r2", "val/mae", "val/mse", "weight", "bias"):
        assert saved[key] == pytest.approx(logged[key][-1], rel=1e-6), key


def test_checking_the_loss_once_per_epoch_names_the_same_step(cfg_factory):
    """The GPU way (no wait for the device per step), tried on the CPU, agrees with per step."""
    messages = []
    for every_step in ("true", "false"):
        cfg = cfg_factory(
            overrides=[
                "experiment=linear",
                "model.loss._target_=torch.nn.MSELoss",
                "model.optimizer.lr=1e6",
                *QUIET,
                f"+callbacks.finite_loss.every_step={every_step}",
            ],
            name=f"every_step_{every_step}",
        )
        with pytest.raises(NonFiniteLossError, match=r"at epoch \d+, step \d+") as info:
            train(cfg)
        messages.append(str(info.value).split(". Likely")[0])
        last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
        weights = load_checkpoint(last)["state_dict"]
        assert all(w.isfinite().all() for w in weights.values())  # written before the NaN
        assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()
    assert messages[0] == messages[1]


@pytest.mark.parametrize(
    ("min_interval_s", "expected"),
    [
        pytest.param(0, [(epoch, batch) for epoch in range(3) for batch in range(8)], id="every"),
        # An hour apart: the first epoch is drawn (its last batch), the second not at all, the
        # fit's final one is.
        pytest.param(3600, [(0, 7), (2, 7)], id="throttled"),
    ],
)
def test_the_progress_bar_sees_the_last_batch_of_each_epoch_it_draws(
    cfg_factory, monkeypatch, min_interval_s, expected
):
    from lightning.pytorch.callbacks import RichProgressBar

    seen: list[tuple[int, int]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        seen.append((trainer.current_epoch, batch_idx))

    monkeypatch.setattr(RichProgressBar, "on_train_batch_end", on_train_batch_end)
    cfg = cfg_factory(
        overrides=[
            "experiment=linear_tutorial",
            "trainer.max_epochs=3",
            "data.batch_size=5",  # 40 training points: 8 batches an epoch
            f"callbacks.progress_bar.min_interval_s={min_interval_s}",
            "~logger",
        ]
    )
    datamodule, model = build_data_and_model(cfg)
    build_trainer(cfg).fit(model, datamodule=datamodule)
    assert seen == expected


class StopAfter(L.Callback):
    """Stops the fit after `epoch`, as early stopping does (at the end of the epoch)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        trainer.should_stop = trainer.current_epoch >= self.epoch


@pytest.mark.parametrize(("stop_after", "final"), [(None, 19), (7, 7)], ids=["max", "stopped"])
def test_the_throttled_progress_bar_draws_few_epochs_and_ends_with_the_final_one(
    cfg_factory, stop_after, final
):
    from litplate.callbacks import ThrottledRichProgressBar

    cfg = cfg_factory(
        overrides=[
            "experiment=linear_tutorial", "trainer.max_epochs=20", "~logger",
            "callbacks.progress_bar.min_interval_s=3600",
        ]
    )  # fmt: skip
    datamodule, model = build_data_and_model(cfg)
    extra = [StopAfter(stop_after)] if stop_after is not None else []
    trainer = build_trainer(cfg, callbacks=extra)
    trainer.fit(model, datamodule=datamodule)
    bar = trainer.progress_bar_callback
    assert isinstance(bar, ThrottledRichProgressBar)
    # Each validation that goes through adds a bar: the sanity check's, epoch 0's and (when
    # the fit runs to max_epochs) the final epoch's; 20 without the throttle.
    tasks = bar.progress.tasks
    assert len(tasks) == (4 if stop_after is None else 3)
    train_bar = tasks[bar.train_progress_bar_id]
    assert train_bar.description.startswith(f"Epoch {final}/19")
    assert train_bar.completed == train_bar.total == 1
    shown = bar._metric_component._metrics
    assert set(shown) >= {"train/loss", "val/loss"}
    for key, value in trainer.progress_bar_metrics.items():
        assert shown[key] == pytest.approx(float(value)), key


def _fit_recording_writes(cfg) -> list[tuple[str, int]]:
    """Fit `cfg`; (file name, epoch) of every checkpoint written to disk, in order."""
    L.seed_everything(cfg.seed)
    datamodule, model = build_data_and_model(cfg)
    trainer = build_trainer(cfg)
    io = trainer.strategy.checkpoint_io
    written, save = [], io.save_checkpoint

    def spy(checkpoint, path, storage_options=None):
        written.append((Path(path).name, checkpoint["epoch"]))
        save(checkpoint, path, storage_options)

    io.save_checkpoint = spy
    trainer.fit(model, datamodule=datamodule)
    return written


def _same(a, b, run_a: str, run_b: str, where: str = "checkpoint") -> None:
    """a == b, tensors bit for bit, strings equal once each run's directory is renamed."""
    assert type(a) is type(b), where
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        _same(list(a), list(b), run_a, run_b, f"{where} keys")
        for (key, x), y in zip(a.items(), b.values(), strict=True):
            _same(x, y, run_a, run_b, f"{where}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, run_a, run_b, f"{where}[{i}]")
    elif isinstance(a, str):
        assert a.replace(run_a, "RUN") == b.replace(run_b, "RUN"), where
    else:
        assert a == b, where


def _kept_and_plain(cfg_factory, common: list[str]) -> tuple:
    """Two configs of `common`: BestCheckpoint keeping its bests in memory for an hour, and
    Lightning's ModelCheckpoint in its place."""
    kept = cfg_factory(overrides=[*common, "callbacks.model_checkpoint.min_interval_s=3600"])
    plain = cfg_factory(
        overrides=[
            *common,
            "callbacks.model_checkpoint._target_=lightning.pytorch.callbacks.ModelCheckpoint",
            "~callbacks.model_checkpoint.min_interval_s",
        ],
        name="plain",
    )
    return kept, plain


def test_best_checkpoint_in_memory_writes_what_model_checkpoint_writes(cfg_factory):
    # lr 0.1: val/loss is lowest at epoch 13 of 20, then oscillates.
    common = [
        "experiment=linear_tutorial", "trainer.max_epochs=20", "model.optimizer.lr=0.1",
        *QUIET, "~logger", "callbacks.last_checkpoint.min_interval_s=3600",
    ]  # fmt: skip
    kept, plain = _kept_and_plain(cfg_factory, common)
    # The first best is written at once (a best.ckpt exists from the first epoch on), the next
    # ones wait in memory; the best of epoch 13 is written just before the final last.ckpt.
    assert _fit_recording_writes(kept) == [
        ("best.ckpt", 0), ("last.ckpt", 0), ("best.ckpt", 13), ("last.ckpt", 19)
    ]  # fmt: skip
    plain_writes = _fit_recording_writes(plain)
    assert [w for w in plain_writes if w[0] == "best.ckpt"][-1] == ("best.ckpt", 13)
    assert len(plain_writes) > 6
    runs = [Path(cfg.paths.output_dir) for cfg in (kept, plain)]
    for name in ("best.ckpt", "last.ckpt"):
        a, b = (load_checkpoint(run / "checkpoints" / name) for run in runs)
        assert a["epoch"] == (13 if name == "best.ckpt" else 19)
        _same(a, b, *map(str, runs))  # weights, optimizer, loops, RNG and callback states


def test_best_checkpoint_is_written_when_the_fit_stops_on_an_exception(cfg_factory):
    class Failure(Exception):
        pass

    class FailAt(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch == 6:
                raise Failure  # Ctrl-C and SIGTERM end in the same hook (on_exception)

    cfg = cfg_factory(
        overrides=[
            "experiment=linear_tutorial", "trainer.max_epochs=20", *QUIET, "~logger",
            "callbacks.last_checkpoint.min_interval_s=3600",
            "callbacks.model_checkpoint.min_interval_s=3600",
        ]
    )  # fmt: skip
    L.seed_everything(cfg.seed)
    datamodule, model = build_data_and_model(cfg)
    trainer = build_trainer(cfg, callbacks=[FailAt()])
    with pytest.raises(Failure):
        trainer.fit(model, datamodule=datamodule)
    best = load_checkpoint(Path(cfg.paths.output_dir) / "checkpoints" / "best.ckpt")
    assert best["epoch"] == 5  # val/loss falls every epoch here: the last finished one


def _tensorboard_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """What TensorBoard shows: (step, value) of every scalar, per tag."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def _scalar_events(log_dir: Path) -> int:
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    files = sorted(log_dir.glob("events.out.tfevents.*"))
    return sum(1 for file in files for e in EventFileLoader(str(file)).Load() if e.summary.value)


def test_buffered_tensorboard_logger_writes_every_value_in_batches(cfg_factory):
    class EventsMidway(L.Callback):
        """The scalar events on disk when epoch 10 starts."""

        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch == 10:
                self.count = _scalar_events(Path(trainer.logger.log_dir))

    runs = {}
    for logger in ("litplate.buffered_tensorboard.BufferedTensorBoardLogger",
                   "lightning.pytorch.loggers.TensorBoardLogger"):  # fmt: skip
        buffered = "Buffered" in logger
        cfg = cfg_factory(
            overrides=[
                "experiment=linear_tutorial", "trainer.max_epochs=20", *QUIET,
                f"logger.tensorboard._target_={logger}",
                "logger.tensorboard.min_interval_s=3600" if buffered
                else "~logger.tensorboard.min_interval_s",
            ],
            name=logger,
        )  # fmt: skip
        L.seed_everything(cfg.seed)
        datamodule, model = build_data_and_model(cfg)
        midway = EventsMidway()
        build_trainer(cfg, callbacks=[midway]).fit(model, datamodule=datamodule)
        log_dir = Path(cfg.paths.output_dir) / "tensorboard"
        runs[buffered] = (_tensorboard_scalars(log_dir), _scalar_events(log_dir), midway.count)
    (scalars, events, midway), (plain, plain_events, plain_midway) = runs[True], runs[False]
    # Every epoch's value of every key, as Lightning's own logger writes them.
    assert set(scalars) >= {"train/loss", "val/loss", "val/mae", "weight", "bias"}
    assert scalars == plain
    assert [step for step, _ in scalars["val/loss"]] == [step for step, _ in plain["val/loss"]]
    assert len(scalars["val/loss"]) == 20
    # An hour's interval: nothing written before the fit's end; then one event per logged step.
    assert midway == 0 and plain_midway > 10 * 2
    assert events == 2 * 20 and plain_events > events * 2


def test_buffered_tensorboard_logger_writes_what_it_holds_when_the_fit_fails(cfg_factory):
    class Failure(Exception):
        pass

    class FailAt(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch == 6:
                raise Failure

    cfg = cfg_factory(
        overrides=[
            "experiment=linear_tutorial", "trainer.max_epochs=20", *QUIET,
            "logger.tensorboard.min_interval_s=3600",
        ]
    )  # fmt: skip
    datamodule, model = build_data_and_model(cfg)
    with pytest.raises(Failure):
        build_trainer(cfg, callbacks=[FailAt()]).fit(model, datamodule=datamodule)
    scalars = _tensorboard_scalars(Path(cfg.paths.output_dir) / "tensorboard")
    assert len(scalars["val/loss"]) == len(scalars["train/loss"]) == 6


def test_the_best_checkpoint_kept_in_memory_pickles_as_the_dumped_one():
    import io
    from collections import OrderedDict

    from litplate.callbacks.best_checkpoint import _cloned

    weights = OrderedDict(w=torch.ones(3), b=torch.zeros(1))
    weights._metadata = {"": {"version": 1}}  # what nn.Module.state_dict() attaches
    score = torch.tensor(0.25)
    dumped = {
        "state_dict": weights,
        "callbacks": {"best": {"best_model_score": score, "current_score": score}},
        "loops": [1, (2.0, "x"), None],
    }
    kept = _cloned(dumped)
    weights["w"].add_(1)  # training goes on
    dumped_bytes, kept_bytes = io.BytesIO(), io.BytesIO()
    torch.save(kept, kept_bytes)
    weights["w"].sub_(1)
    torch.save(dumped, dumped_bytes)
    assert kept_bytes.getvalue() == dumped_bytes.getvalue()
    assert kept["state_dict"]._metadata == weights._metadata


@pytest.mark.parametrize(
    "naming",
    [
        pytest.param(["callbacks.model_checkpoint.filename='{epoch}'"], id="epoch-in-name"),
        # best.ckpt, best-v1.ckpt, ...: a name kept in memory is taken, as a file on disk is.
        pytest.param(["callbacks.model_checkpoint.enable_version_counter=true"], id="versions"),
    ],
)
def test_best_checkpoint_keeps_the_top_k_files_model_checkpoint_keeps(cfg_factory, naming):
    common = [
        "experiment=linear_tutorial", "trainer.max_epochs=20", "model.optimizer.lr=0.1",
        *QUIET, "~logger", "callbacks.last_checkpoint=null",
        "callbacks.model_checkpoint.save_top_k=3", *naming,
    ]  # fmt: skip
    kept, plain = _kept_and_plain(cfg_factory, common)
    kept_writes, plain_writes = _fit_recording_writes(kept), _fit_recording_writes(plain)
    assert len(kept_writes) < len(plain_writes)
    runs = [Path(cfg.paths.output_dir) / "checkpoints" for cfg in (kept, plain)]
    names = sorted(path.name for path in runs[1].iterdir())
    assert len(names) == 3 and sorted(path.name for path in runs[0].iterdir()) == names
    for name in names:
        _same(*(load_checkpoint(run / name) for run in runs), *(str(run.parent) for run in runs))


def test_best_checkpoint_writes_the_checkpoint_saved_on_an_exception(cfg_factory):
    class Failure(Exception):
        pass

    class FailAt(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.current_epoch == 6:
                raise Failure  # after the step: save_on_exception has a new step to save

    common = [
        "experiment=linear_tutorial", "trainer.max_epochs=20", *QUIET, "~logger",
        "callbacks.last_checkpoint=null", "+callbacks.model_checkpoint.save_on_exception=true",
        "callbacks.model_checkpoint.filename='{epoch}-{step}'",
    ]  # fmt: skip
    runs = []
    for cfg in _kept_and_plain(cfg_factory, common):
        L.seed_everything(cfg.seed)
        datamodule, model = build_data_and_model(cfg)
        with pytest.raises(Failure):
            build_trainer(cfg, callbacks=[FailAt()]).fit(model, datamodule=datamodule)
        runs.append(Path(cfg.paths.output_dir) / "checkpoints")
    names = sorted(path.name for path in runs[1].iterdir())
    assert names == ["epoch=5-step=6.ckpt", "epoch=6-step=7.ckpt"]
    assert sorted(path.name for path in runs[0].iterdir()) == names
    for name in names:
        _same(*(load_checkpoint(run / name) for run in runs), *(str(run.parent) for run in runs))


def test_buffered_tensorboard_logger_writes_the_values_as_they_were_when_logged(tmp_path: Path):
    from litplate.buffered_tensorboard import BufferedTensorBoardLogger

    logger = BufferedTensorBoardLogger(tmp_path, name="", version="", min_interval_s=3600)
    total, group = torch.zeros(()), {}
    for step in range(3):
        total += 1  # a running tensor, changed in place after it is logged
        group["a"] = float(step)  # a dict the caller reuses
        logger.log_metrics({"total": total, "group": group}, step)
    with pytest.raises(ValueError, match="bad='x'"):
        logger.log_metrics({"bad": "x"}, 3)  # refused when logged, as TensorBoardLogger does
    logger.finalize("success")
    assert _tensorboard_scalars(tmp_path)["total"] == [(0, 1.0), (1, 2.0), (2, 3.0)]
    assert _tensorboard_scalars(tmp_path / "group_a")["group"] == [(0, 0.0), (1, 1.0), (2, 2.0)]


def test_best_checkpoint_still_saves_every_n_train_steps_as_model_checkpoint_does(cfg_factory):
    # The per-step check is skipped only when nothing saves at steps (litplate's configs).
    common = [
        "experiment=linear_tutorial", "trainer.max_epochs=3", "data.batch_size=16", *QUIET,
        "~logger", "callbacks.last_checkpoint=null", "callbacks.model_checkpoint.save_top_k=-1",
        "+callbacks.model_checkpoint.every_n_train_steps=2",
        "callbacks.model_checkpoint.filename='{step}'",
    ]  # fmt: skip
    kept, plain = _kept_and_plain(cfg_factory, common)
    _fit_recording_writes(kept), _fit_recording_writes(plain)
    names = [sorted(p.name for p in (Path(c.paths.output_dir) / "checkpoints").iterdir())
             for c in (kept, plain)]  # fmt: skip
    assert names[0] == names[1] and "step=4.ckpt" in names[0], names  # mid-epoch: 3 steps each


def test_checkpoint_callbacks_keep_their_state_keys():
    # The keys their state has in every checkpoint written so far: resume must find it.
    from lightning.pytorch.callbacks import ModelCheckpoint

    best = {"dirpath": "d", "filename": "best", "monitor": "val/loss", "mode": "min"}
    assert BestCheckpoint(**best).state_key == ModelCheckpoint(**best).state_key
    key = ModelCheckpoint(dirpath="d", filename="last").state_key
    assert key.startswith("ModelCheckpoint{")
    last = LastCheckpoint(dirpath="d", filename="last")
    assert last.state_key == last.state_key == key.replace("ModelCheckpoint", "LastCheckpoint", 1)
