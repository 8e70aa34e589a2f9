"""LinearRegression: the course's model, with plain-data hyper-parameters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from litplate.models import LinearRegression


def test_random_start_matches_the_course():
    torch.manual_seed(42)
    model = LinearRegression()
    assert isinstance(model.weights, nn.Parameter) and model.weights.requires_grad
    assert isinstance(model.bias, nn.Parameter) and model.bias.requires_grad
    assert round(model.weights.item(), 4) == 0.3367
    assert round(model.bias.item(), 4) == 0.1288
    assert list(model.state_dict()) == ["weights", "bias"]


def test_forward_is_weights_times_x_plus_bias():
    model = LinearRegression()
    x = torch.arange(0, 1, 0.1).unsqueeze(1)
    assert torch.equal(model(x), model.weights * x + model.bias)


def test_hyperparameters_are_plain_data():
    model = LinearRegression(
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.1}
    )
    hparams = dict(model.hparams)
    assert hparams["optimizer"]["lr"] == 0.1
    assert hparams["loss"] == {"_target_": "torch.nn.L1Loss"}

    def plain(value):
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return value is None or isinstance(value, (str, int, float, bool))

    assert plain(hparams)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)` but the `self.trainer`")
def test_training_step_returns_the_loss_with_a_gradient():
    model = LinearRegression()
    X = torch.arange(0, 1, 0.02).unsqueeze(1)
    y = 0.7 * X + 0.3
    loss = model.training_step((X, y), 0)
    assert torch.equal(loss, nn.L1Loss()(model(X), y))
    loss.backward()
    assert model.weights.grad is not None and model.bias.grad is not None


def test_optimizer_and_scheduler_come_from_config():
    model = LinearRegression(
        optimizer={"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.05, "momentum": 0.9},
        scheduler={
            "_target_": "torch.optim.lr_scheduler.StepLR",
            "_partial_": True,
            "step_size": 10,
        },
    )
    config = model.configure_optimizers()
    optimizer = config["optimizer"]
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.defaults["lr"] == 0.05 and optimizer.defaults["momentum"] == 0.9
    assert isinstance(config["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.StepLR)


@pytest.mark.parametrize("loss", ["torch.nn.MSELoss", "torch.nn.L1Loss"])
def test_loss_comes_from_config(loss):
    model = LinearRegression(loss={"_target_": loss})
    assert type(model.loss_fn).__name__ == loss.rsplit(".", 1)[1]
