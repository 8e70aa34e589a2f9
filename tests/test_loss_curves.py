"""loss_curves.png: train and test loss per epoch, as the course plots them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from litplate.plotting import plot_loss_curves
from litplate.run.files import save_figure
from litplate.train import train
from tests.helpers.runs import QUIET, read_metrics

PNG = b"\x89PNG\r\n\x1a\n"


def test_plot_draws_both_curves(tmp_path: Path):
    figure = plot_loss_curves(([0, 1, 2], [0.9, 0.5, 0.2]), ([0, 1, 2], [1.0, 0.6, 0.3]))
    save_figure(figure, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG
    ax = figure.axes[0]
    assert [line.get_label() for line in ax.lines] == ["Train loss", "Test loss"]
    assert list(ax.lines[1].get_ydata()) == [1.0, 0.6, 0.3]
    assert ax.get_xlabel() == "Epochs" and ax.get_ylabel() == "Loss"


def test_run_writes_loss_curves_and_sends_them_to_tensorboard(trained_run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert (trained_run / "loss_curves.png").read_bytes()[:8] == PNG
    events = EventAccumulator(str(trained_run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    assert {"predictions", "loss_curves"} <= set(events.Tags()["images"])

    # The curve's numbers (kept in each checkpoint) are the losses Lightning logged, every epoch.
    best = torch.load(read_metrics(trained_run)["best_checkpoint"], weights_only=True)
    history = saved_history(best)
    for key in ("train/loss", "val/loss"):
        logged = {event.step: event.value for event in events.Scalars(key)}
        epochs, losses = curve(history, key)
        assert epochs == list(range(best["epoch"] + 1))
        steps = sorted(logged)
        for epoch, loss in zip(epochs, losses, strict=True):
            assert torch.tensor(loss, dtype=torch.float32).item() == logged[steps[epoch]]


def saved_history(checkpoint: dict) -> dict[str, list[list[float]]]:
    return checkpoint["loss_history"]


def curve(history: dict, key: str) -> tuple[list[int], list[float]]:
    epochs, losses = zip(*history[key], strict=True)
    return list(epochs), list(losses)


@pytest.fixture(scope="module")
def unscheduled(tiny_overrides: list[str]) -> list[str]:
    """The tiny run without an LR schedule (one may depend on max_epochs, which a resume
    changes here), quiet."""
    return [*tiny_overrides, "++model.scheduler=null", *QUIET]


# Resuming into a new run directory: Lightning says it keeps only best_model_path, as intended.
@pytest.mark.filterwarnings("ignore:The dirpath has changed from")
def test_resumed_run_keeps_the_whole_curve(cfg_factory, unscheduled):
    first = cfg_factory(overrides=[*unscheduled, "trainer.max_epochs=5"], name="a")
    train(first)
    last = Path(first.paths.output_dir) / "checkpoints" / "last.ckpt"
    overrides = [*unscheduled, "trainer.max_epochs=8", f"ckpt_path={last}"]
    resumed = cfg_factory(overrides=overrides, name="b")
    metrics = train(resumed)
    history = saved_history(torch.load(metrics["best_checkpoint"], weights_only=True))
    assert curve(history, "train/loss")[0] == list(range(8))
    assert curve(history, "val/loss")[0] == list(range(8))


@pytest.mark.filterwarnings("ignore:Experiment logs directory")
def test_a_fit_resumed_in_its_directory_keeps_the_csv_rows(cfg_factory, unscheduled):
    overrides = [*unscheduled, "logger=csv"]
    first = cfg_factory(overrides=[*overrides, "trainer.max_epochs=3"], name="run")
    train(first)
    csv = Path(first.paths.output_dir) / "csv" / "metrics.csv"
    last = Path(first.paths.output_dir) / "checkpoints" / "last.ckpt"
    resumed = [*overrides, "trainer.max_epochs=5", f"ckpt_path={last}"]
    train(cfg_factory(overrides=resumed, name="run"))
    rows = csv.read_text().splitlines()
    header = rows[0].split(",")
    epochs = {
        int(row.split(",")[header.index("epoch")])
        for row in rows[1:]
        if row.split(",")[header.index("train/loss")]
    }
    assert epochs == {0, 1, 2, 3, 4}  # Lightning's CSVLogger had deleted epochs 0-2


def test_resuming_a_finished_fit_adds_no_epoch_to_its_curves(
    cfg_factory, monkeypatch, short_overrides
):
    import litplate.train

    overrides = short_overrides
    train(cfg_factory(overrides=overrides, name="run"))
    drawn = {}
    plot = litplate.train.plot_loss_curves
    monkeypatch.setattr(
        litplate.train, "plot_loss_curves", lambda t, v: drawn.update(t=t, v=v) or plot(t, v)
    )
    last = cfg_factory(overrides=overrides, name="run").paths.output_dir + "/checkpoints/last.ckpt"
    train(cfg_factory(overrides=[*overrides, f"ckpt_path={last}"], name="run"))
    # Its validation is measured again, for metrics.json: not a fourth epoch of the curve.
    assert drawn["t"][0] == drawn["v"][0] == [0, 1, 2]
