"""data.on_device: in-memory data is copied to a GPU once, in setup, and batches are gathered there.

No GPU here: the meta device stands in for it (tensors that have a device and a shape but no
values), and a fake accelerator check makes the CPU count as the GPU for a real Lightning fit.
What only a GPU can show: that a CUDA fit's batches need no host-to-device copy per step.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from litplate.data import tensors
from litplate.data.tensors import BatchIndexSampler
from tests.helpers.data import Ramp

META = torch.device("meta")


def fake_trainer(device: str) -> SimpleNamespace:
    return SimpleNamespace(
        strategy=SimpleNamespace(root_device=torch.device(device)),
        current_epoch=0,
        world_size=1,
        global_rank=0,
        overfit_batches=0,
    )


@pytest.mark.parametrize(
    ("device", "expected"), [("cuda:1", "cuda:1"), ("mps", "mps"), ("cpu", None)]
)
def test_only_a_gpu_trainer_gets_the_data(device, expected):
    got = tensors.gpu_device(fake_trainer(device))
    assert got == (torch.device(expected) if expected else None)


def on_gpu(monkeypatch: pytest.MonkeyPatch, datamodule: tensors.TensorDataModule) -> None:
    """A trainer on a "GPU" (the meta device) attached to `datamodule`."""
    monkeypatch.setattr(tensors, "gpu_device", lambda trainer: META)
    datamodule.trainer = fake_trainer("cpu")


def test_setup_on_a_gpu_moves_the_data_once_and_batches_are_gathered_there(monkeypatch):
    dm = Ramp(batch_size=8, shuffle=True, split_seed=0)
    host_X, host_y = dm.X, dm.y
    on_gpu(monkeypatch, dm)
    dm.setup("fit")
    assert (dm.X.device, dm.y.device) == (META, META)
    loader = dm.train_dataloader()
    assert loader.sampler.device == META and loader.sampler.order().device == META
    batches = list(loader)
    assert [len(X) for X, _ in batches] == [8] * 5  # 40 training points
    assert {X.device for X, _ in batches} | {y.device for _, y in batches} == {META}
    assert {batch[0].device for batch in dm.test_dataloader()} == {META}

    # After the stage: the host tensors themselves again (no copy back), batches on the CPU.
    dm.teardown("fit")
    assert dm.X is host_X and dm.y is host_y
    loader = dm.train_dataloader()
    indices = next(iter(loader.sampler))
    X, _ = next(iter(loader))
    assert indices.device.type == "cpu" and X.device.type == "cpu"
    assert torch.equal(X, dm.split("train")[0][indices])


@pytest.mark.parametrize("kwargs", [{"on_device": False}, {"num_workers": 1}])
def test_the_data_stays_on_the_host_when_off_or_with_worker_processes(monkeypatch, kwargs):
    dm = Ramp(batch_size=8, **kwargs)
    host_X = dm.X
    on_gpu(monkeypatch, dm)
    dm.setup("fit")
    assert dm.X is host_X


def test_placing_twice_copies_from_the_host_tensors():
    dm = Ramp()
    host_X = dm.X
    dm.place(META)
    dm.place(META)
    dm.place(None)
    assert dm.X is host_X
    dm.place(None)  # already on the host: nothing to do
    assert dm.X is host_X


def test_ddp_shares_of_device_rows_stay_on_the_device():
    shares = [
        list(BatchIndexSampler(10, 3, True, 1, device=META, num_replicas=2, rank=rank))
        for rank in (0, 1)
    ]
    assert [[len(batch) for batch in share] for share in shares] == [[3, 2], [3, 2]]
    assert {batch.device for share in shares for batch in share} == {META}


class Batches(L.Callback):
    """Records the device of every training batch."""

    def __init__(self) -> None:
        self.devices: list[torch.device] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.devices.append(batch[0].device)


def test_lightning_places_the_data_before_its_loaders_and_takes_it_back_after(
    monkeypatch, tiny_parts
):
    # The CPU stands in for the GPU: Lightning calls setup, then builds the loaders, then teardown.
    calls = []
    place = tensors.TensorDataModule.place

    def spy(self, device):
        calls.append(str(device))
        place(self, device)

    monkeypatch.setattr(tensors.TensorDataModule, "place", spy)
    monkeypatch.setattr(tensors, "gpu_device", lambda trainer: torch.device("cpu"))
    made = []
    loader = tensors.TensorDataModule._loader
    monkeypatch.setattr(
        tensors.TensorDataModule,
        "_loader",
        lambda self, *a, **k: made.append((a[0], list(calls))) or loader(self, *a, **k),
    )
    batches = Batches()
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[batches],
    )
    datamodule, model = tiny_parts("data.batch_size=8")
    trainer.fit(model, datamodule=datamodule)
    assert calls == ["cpu", "None"]  # setup("fit") placed it, teardown("fit") took it back
    assert made and all(placed == ["cpu"] for _, placed in made)  # every loader after setup
    assert {name for name, _ in made} == {"train", "val"}
    steps = math.ceil(len(datamodule.split("train")[0]) / 8)
    assert batches.devices == [torch.device("cpu")] * steps
