"""The course's plot_predictions: training data, test data and the model's predictions."""

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
    """Plot like the course does and save a PNG if `path` is given; returns the figure."""
    import matplotlib

    matplotlib.use("Agg")  # files only: works without a display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 7))
    ax.scatter(train_data, train_labels, c="b", s=4, label="Training data")
    ax.scatter(test_data, test_labels, c="g", s=4, label="Testing data")
    if predictions is not None:
        ax.scatter(test_data, predictions, c="r", s=4, label="Predictions")
    ax.legend(prop={"size": 14})
    if path is not None:
        fig.savefig(path, dpi=100)
    plt.close(fig)
    return fig
