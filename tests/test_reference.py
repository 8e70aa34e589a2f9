"""The hand-written loop of reference.py and the Lightning run agree bit for bit."""

from __future__ import annotations

from pathlib import Path

import pytest

from litplate.reference import fit_reference
from litplate.train import train
from tests.helpers.runs import QUIET, lightning_epochs


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param([], id="full-batch"),
        pytest.param(["data.batch_size=8", "data.shuffle=true"], id="shuffled-mini-batch"),
        pytest.param(["model/optimizer=adam", "model/scheduler=plateau"], id="adam-plateau"),
    ],
)
def test_reference_loop_equals_lightning_bit_for_bit(cfg_factory, overrides):
    # experiment=linear: SGD with momentum and a cosine schedule stepped every epoch.
    common = ["experiment=linear", "trainer.max_epochs=60", *overrides]
    cfg = cfg_factory(overrides=[*common, *QUIET, "logger=csv"], name="lightning")
    train(cfg)
    logged = lightning_epochs(Path(cfg.paths.output_dir))

    reference = fit_reference(cfg_factory(overrides=common, name="reference"))

    assert len(reference.train_loss) == len(reference.test_loss) == 60
    assert logged["train/loss"] == reference.train_loss  # exact float equality, every epoch
    assert logged["val/loss"] == reference.test_loss
    # The parameters Lightning logged after the last epoch, and those the loop ended with.
    assert logged["weight"][-1] == reference.reported_values["weight"]
    assert logged["bias"][-1] == reference.reported_values["bias"]
    # Not trivially equal: training moved the loss.
    assert reference.train_loss[-1] < reference.train_loss[0] / 5


def test_reference_loop_trains_the_mlp_like_lightning(cfg_factory):
    common = ["experiment=mlp", "trainer.max_epochs=15", "data.batch_size=32", "data.shuffle=true"]
    cfg = cfg_factory(overrides=[*common, *QUIET, "logger=csv"], name="lightning")
    train(cfg)
    logged = lightning_epochs(Path(cfg.paths.output_dir))

    reference = fit_reference(cfg_factory(overrides=common, name="reference"))

    assert logged["train/loss"] == reference.train_loss
    assert logged["val/loss"] == reference.test_loss
    assert reference.reported_values == {}  # no line to report


def test_reference_loop_fine_tunes_with_frozen_weights(cfg_factory, linear_run: Path):
    pretrained = linear_run / "model.safetensors"
    overrides = [
        "experiment=linear_finetune",
        f"model.init_from={pretrained}",
        "model.freeze=[weights]",
        "trainer.max_epochs=10",
    ]
    reference = fit_reference(cfg_factory(overrides=overrides))
    from safetensors.torch import load_file

    assert reference.model.weights.item() == load_file(pretrained)["weights"].item()
    assert reference.model.bias.item() != load_file(pretrained)["bias"].item()
