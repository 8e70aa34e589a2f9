"""The course's plots: predictions against the data, and the loss curves of training."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 7))
    if train_data.ndim > 1 and train_data.shape[-1] > 1:
        if predictions is not None:
            ax.scatter(test_labels, predictions, c="r", s=4, label="Predictions")
        low, high = float(test_labels.min()), float(test_labels.max())
        ax.plot([low, high], [low, high], c="g", label="Perfect predictions")
        ax.set_xlabel("True value")
        ax.set_ylabel("Predicted value")
        ax.legend(prop={"size": 14})
        return fig
    ax.scatter(train_data, train_labels, c="b", s=4, label="Training data")
    ax.scatter(test_data, test_labels, c="g", s=4, label="Testing data")
    if predictions is not None:
        ax.scatter(test_data, predictions, c="r", s=4, label="Predictions")
    ax.legend(prop={"size": 14})
    return fig


MAX_POINTS = 2000  # per series: more look the same and take seconds to draw


def _thinned(values: torch.Tensor) -> torch.Tensor:
    """At most MAX_POINTS evenly spaced rows, as numpy (which matplotlib draws fast)."""
    step = max(1, -(-len(values) // MAX_POINTS))
    return values[::step].detach().cpu().numpy()


def plot_loss_curves(
    train_loss: tuple[list[int], list[float]], test_loss: tuple[list[int], list[float]]
) -> Figure:
    """The course's loss curves: train and test loss per epoch, each as (epochs, losses)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 7))
    ax.plot(*train_loss, label="Train loss")
    ax.plot(*test_loss, label="Test loss")
    ax.set_title("Training and test loss curves")
    ax.set_ylabel("Loss")
    ax.set_xlabel("Epochs")
    ax.legend()
    return fig


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: works without a display
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_matrix(targets: torch.Tensor, predicted: torch.Tensor, n_classes: int) -> Figure:
    """Counts of each (true, predicted) pair of labels: a perfect model fills the diagonal only."""
    counts = torch.zeros(n_classes, n_classes, dtype=torch.long)
    counts.index_put_((targets, predicted), torch.ones_like(targets), accumulate=True)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 7))
    ax.imshow(counts, cmap="Blues")
    for (row, column), count in zip(
        counts.nonzero().tolist(), counts[counts > 0].tolist(), strict=True
    ):
        ax.text(column, row, count, ha="center", va="center")
    ax.set_xticks(range(n_classes))
    ax.set_yticks(range(n_classes))
    ax.set_xlabel("Predicted label")
    ax.set_ylabel("True label")
    ax.set_title(f"Confusion matrix: {int(counts.trace())} of {len(targets)} right")
    return fig
