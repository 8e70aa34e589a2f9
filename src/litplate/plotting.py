"""The course's plots: predictions against the data, and the loss curves of training."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torchmetrics.classification import MulticlassConfusionMatrix

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_POINTS = 2000  # per series: more look the same and take seconds to draw


def plot_predictions(
    train_data: torch.Tensor,
    train_labels: torch.Tensor,
    test_data: torch.Tensor,
    test_labels: torch.Tensor,
    predictions: torch.Tensor | None = None,
) -> Figure:
    """Plot like the course does. With several input features, the predictions against the true
    values instead (a perfect model lies on the diagonal)."""
    train_data, train_labels = _thinned(train_data), _thinned(train_labels)
    test_data, test_labels = _thinned(test_data), _thinned(test_labels)
    predictions = None if predictions is None else _thinned(predictions)
    fig, ax = _subplots(figsize=(10, 7))
    if train_data.ndim > 1 and train_data.shape[-1] > 1:
        if predictions is not None:
            ax.scatter(test_labels, predictions, c="r", s=4, label="Predictions")
        low, high = float(test_labels.min()), float(test_labels.max())
        ax.plot([low, high], [low, high], c="g", label="Perfect predictions")
        ax.set(xlabel="True value", ylabel="Predicted value")
    else:
        ax.scatter(train_data, train_labels, c="b", s=4, label="Training data")
        ax.scatter(test_data, test_labels, c="g", s=4, label="Testing data")
        if predictions is not None:
            ax.scatter(test_data, predictions, c="r", s=4, label="Predictions")
    ax.legend(prop={"size": 14})
    return fig


def _thinned(values: torch.Tensor) -> Any:
    """At most MAX_POINTS evenly spaced rows, as numpy (which matplotlib draws fast)."""
    step = max(1, -(-len(values) // MAX_POINTS))
    return values[::step].detach().cpu().numpy()


def plot_loss_curves(
    train_loss: tuple[list[int], list[float]], test_loss: tuple[list[int], list[float]]
) -> Figure:
    """The course's loss curves: train and test loss per epoch, each as (epochs, losses)."""
    fig, ax = _subplots(figsize=(10, 7))
    ax.plot(*train_loss, label="Train loss")
    ax.plot(*test_loss, label="Test loss")
    ax.set(title="Training and test loss curves", xlabel="Epochs", ylabel="Loss")
    ax.legend()
    return fig


def plot_confusion_matrix(targets: torch.Tensor, predicted: torch.Tensor, n_classes: int) -> Figure:
    """Counts of each (true, predicted) pair of labels: a perfect model fills the diagonal only."""
    matrix = MulticlassConfusionMatrix(n_classes)
    matrix.update(predicted.cpu(), targets.cpu())
    fig, ax = _subplots(figsize=(8, 7))
    matrix.plot(ax=ax, cmap="Blues")
    ax.set_title(f"Confusion matrix: {int(matrix.compute().trace())} of {len(targets)} right")
    return fig


def _subplots(figsize: tuple[float, float]) -> Any:
    """A figure and its axes, drawn off-screen: works without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Screen resolution: the course's layout with half the pixels of matplotlib's 100 dpi to draw
    # and encode (its PNG, then TensorBoard's), on every run.
    return plt.subplots(figsize=figsize, dpi=72)
