"""The course's plots: predictions against the data, and the loss curves of training."""

from __future__ import annotations

from pathlib import Path

import torch


def plot_predictions(
    train_data: torch.Tensor,
    train_labels: torch.Tensor,
    test_data: torch.Tensor,
    test_labels: torch.Tensor,
    predictions: torch.Tensor | None = None,
    path: str | Path | None = None,
):
    """Plot like the course does and save a PNG if `path` is given; returns the figure.

    With several input features there is no single x axis: the predictions are then plotted
    against the true values, where a perfect model lies on the diagonal.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 7))
    if train_data.dim() > 1 and train_data.shape[-1] > 1:
        if predictions is not None:
            ax.scatter(test_labels, predictions, c="r", s=4, label="Predictions")
        low, high = float(test_labels.min()), float(test_labels.max())
        ax.plot([low, high], [low, high], c="g", label="Perfect predictions")
        ax.set_xlabel("True value")
        ax.set_ylabel("Predicted value")
        ax.legend(prop={"size": 14})
        return _save(fig, path)
    ax.scatter(train_data, train_labels, c="b", s=4, label="Training data")
    ax.scatter(test_data, test_labels, c="g", s=4, label="Testing data")
    if predictions is not None:
        ax.scatter(test_data, predictions, c="r", s=4, label="Predictions")
    ax.legend(prop={"size": 14})
    return _save(fig, path)


def plot_loss_curves(
    train_loss: tuple[list[int], list[float]],
    test_loss: tuple[list[int], list[float]],
    path: str | Path | None = None,
):
    """The course's loss curves: train and test loss per epoch, each as (epochs, losses)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 7))
    ax.plot(*train_loss, label="Train loss")
    ax.plot(*test_loss, label="Test loss")
    ax.set_title("Training and test loss curves")
    ax.set_ylabel("Loss")
    ax.set_xlabel("Epochs")
    ax.legend()
    return _save(fig, path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: works without a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path | None):
    """Write the PNG if asked, and free the figure (it can still be drawn, e.g. to TensorBoard)."""
    if path is not None:
        fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return fig
