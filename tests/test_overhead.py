"""What keeps the per-epoch overhead low (issue 6) leaves results and files as they were."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest

from litplate.builders import build_data_and_model, build_trainer
from litplate.callbacks import NonFiniteLossError
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
        pytest.param(0, [(epoch, batch) for epoch in range(2) for batch in range(8)], id="every"),
        # An hour apart: the first batch, then only each epoch's last, so every epoch ends full.
        pytest.param(3600, [(0, 0), (0, 7), (1, 7)], id="throttled"),
    ],
)
def test_the_progress_bar_sees_each_epochs_last_batch_when_throttled(
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
            "trainer.max_epochs=2",
            "data.batch_size=5",  # 40 training points: 8 batches an epoch
            f"callbacks.progress_bar.min_interval_s={min_interval_s}",
            "~logger",
        ]
    )
    datamodule, model = build_data_and_model(cfg)
    build_trainer(cfg).fit(model, datamodule=datamodule)
    assert seen == expected
