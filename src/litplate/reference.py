"""The training that Lightning runs for us, written out in plain PyTorch as the course does: the
same model and data as `train(cfg)`, to bit-identical losses and parameters (test_reference.py)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.optim.lr_scheduler import ReduceLROnPlateau

from litplate.run.builders import build_data_and_model


@dataclass
class ReferenceRun:
    """The trained model and its loss per epoch (the mean over the epoch's samples)."""

    model: torch.nn.Module
    train_loss: list[float]
    test_loss: list[float]

    @property
    def reported_values(self) -> dict[str, float]:
        return self.model.reported_values()


def fit_reference(cfg: DictConfig, device: torch.device | str = "cpu") -> ReferenceRun:
    """Train `cfg.model` on `cfg.data` for `cfg.trainer.max_epochs` epochs without Lightning, on
    `device` (e.g. "cuda") in float32; the returned model is back on the CPU, as Lightning's."""
    # Lightning's seed_everything also seeds `random` and numpy; only torch's RNG is used here.
    if cfg.get("seed") is not None:
        torch.manual_seed(cfg.seed)

    # 1. Get data ready: the same data module; its loaders are plain torch DataLoaders.
    # 2. Build the model (random weights and bias), as train.py does.
    datamodule, model = build_data_and_model(cfg)
    datamodule.place(device)  # the data on the device once, as the course's X.to(device)
    train_loader = datamodule.train_dataloader()
    # The course tests on the test points every epoch: Lightning's validation split, which is the
    # test split unless data.val_fraction > 0.
    test_loader = datamodule.val_dataloader()

    # 2.1 Pick the loss function and optimizer.
    model.prepare_fine_tuning()  # model.init_from / model.freeze, when set (Lightning: setup())
    model.to(device)  # the course's device-agnostic code: the model on the device, once
    loss_fn = model.loss_fn
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = instantiate(model.hparams.optimizer)(params=trainable)
    scheduler = None
    if model.hparams.scheduler:
        scheduler = instantiate(model.hparams.scheduler)(optimizer=optimizer)

    train_losses, test_losses = [], []
    for epoch in range(cfg.trainer.max_epochs):
        # 2.2 The training loop.
        model.train()
        train_loader.sampler.set_epoch(epoch)  # this epoch's shuffle (Lightning does this too)
        train_loss = torch.tensor(0.0, device=device)
        for X, y in train_loader:
            y_pred = model(X)  # 1. forward pass
            loss = loss_fn(y_pred, y)  # 2. calculate the loss
            optimizer.zero_grad()  # 3. zero the gradients, so they don't accumulate
            loss.backward()  # 4. backpropagation: the gradient of every parameter
            optimizer.step()  # 5. gradient descent: adjust the parameters
            # Lightning logs the epoch's loss as the mean over samples: each batch weighs its size.
            train_loss = train_loss + loss.detach() * len(X)
        train_losses.append((train_loss / len(train_loader.dataset)).item())

        # The testing loop.
        model.eval()
        with torch.inference_mode():
            test_loss = torch.tensor(0.0, device=device)
            for X, y in test_loader:
                test_pred = model(X)  # forward pass
                test_loss = test_loss + loss_fn(test_pred, y) * len(X)  # the loss
            test_losses.append((test_loss / len(test_loader.dataset)).item())

        # Lightning steps an epoch-wise scheduler after the epoch's validation, as here.
        if isinstance(scheduler, ReduceLROnPlateau):
            scheduler.step(test_losses[-1])
        elif scheduler is not None:
            scheduler.step()

    datamodule.place(None)
    return ReferenceRun(model.cpu(), train_losses, test_losses)
