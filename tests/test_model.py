"""LitModel, the base of every model: plain-data hyper-parameters, loss, optimizer and scheduler
from config, and a training step that returns a loss with a gradient."""

from __future__ import annotations

import pytest
import torch

from litplate.models import LitModel
from litplate.run.validation import ConfigError


def plain(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def test_hyperparameters_are_plain_data(tiny_parts):
    _, model = tiny_parts("model/optimizer=adam", "model.optimizer.lr=0.1")
    hparams = dict(model.hparams)
    assert hparams["optimizer"]["_target_"] == "torch.optim.Adam"
    assert hparams["optimizer"]["lr"] == 0.1 and hparams["loss"]["_target_"].startswith("torch.nn.")
    assert plain(hparams)


def test_the_defaults_are_l1_and_sgd():
    hparams = LitModel().hparams
    assert hparams["loss"] == {"_target_": "torch.nn.L1Loss"}
    assert hparams["optimizer"] == {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.01}
    assert hparams["scheduler"] is None and hparams["freeze"] == []


def test_training_step_returns_the_loss_with_a_gradient(tiny_parts):
    datamodule, model = tiny_parts()
    batch = next(iter(datamodule.train_dataloader()))
    loss = model.training_step(batch, 0)
    assert loss.requires_grad and loss.ndim == 0
    assert torch.equal(loss.detach(), model.model_step(batch)[0].detach())
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_optimizer_and_scheduler_come_from_config(tiny_parts):
    _, model = tiny_parts()
    # The model's class built from its hyper-parameters, as Lightning's load_from_checkpoint does.
    model = type(model)(
        **{
            **model.hparams,
            "optimizer": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.05,
                          "momentum": 0.9},
            "scheduler": {"_target_": "torch.optim.lr_scheduler.StepLR", "_partial_": True,
                          "step_size": 10},
        }
    )  # fmt: skip
    config = model.configure_optimizers()
    optimizer = config["optimizer"]
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.defaults["lr"] == 0.05 and optimizer.defaults["momentum"] == 0.9
    scheduler = config["lr_scheduler"]["scheduler"]
    assert isinstance(scheduler, torch.optim.lr_scheduler.StepLR) and scheduler.step_size == 10


@pytest.mark.parametrize("loss", ["torch.nn.MSELoss", "torch.nn.HuberLoss"])
def test_loss_comes_from_config(tiny_parts, loss):
    _, model = tiny_parts(f"++model.loss._target_={loss}")
    assert type(model.loss_fn).__name__ == loss.rsplit(".", 1)[1]


def test_an_unknown_model_argument_is_one_error_naming_it(tiny_parts):
    with pytest.raises(ConfigError, match=r"model: .* got an unexpected keyword argument 'lossfn'"):
        tiny_parts("+model.lossfn={_target_:torch.nn.MSELoss}")


def test_a_nan_batch_loss_makes_the_epochs_loss_nan_not_the_mean_of_the_rest(tiny_parts):
    datamodule, model = tiny_parts()
    X, y = next(iter(datamodule.val_dataloader()))
    poisoned = X.clone()
    poisoned[0] = float("nan")  # its outputs, so its loss, are NaN for any task
    with torch.inference_mode():
        model.validation_step((X, y), 0)
        assert torch.isfinite(model.val_loss.compute())
        model.validation_step((poisoned, y), 1)
        assert torch.isnan(model.val_loss.compute())
