"""A checkpoint is data, never code: stored configs that would run code are refused unrun.

Each payload below is plain data that `torch.load(weights_only=True)` accepts, and each would
create a file if it were ever instantiated (the first test proves they are live).
"""

from __future__ import annotations

import copy
import http.server
import os
import pickle
import re
import threading
from pathlib import Path

import pytest
import torch
from hydra.utils import get_class, instantiate

from litplate.data import CSVDataModule
from litplate.run.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_state_dict,
    load_weights,
    model_from_checkpoint,
)
from litplate.run.targets import UnsafeConfigError, check_run_config, check_stored
from litplate.train import train


def _open(marker: Path) -> dict:
    return {"_target_": "builtins.open", "_args_": [str(marker), "w"]}


def _file_handler(marker: Path) -> dict:
    return {"_target_": "logging.FileHandler", "_args_": [str(marker)]}


class Touches:
    """Pickled code: unpickling it runs `touch MARKER`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _mlflow(marker: Path) -> dict:
    return {
        "_target_": "lightning.pytorch.loggers.MLFlowLogger",
        "tracking_uri": f"sqlite:///{marker}",
    }


def _writer(marker: Path) -> dict:
    return {
        "_target_": "lightning.pytorch.loggers.csv_logs.ExperimentWriter",
        "log_dir": str(marker),
    }


def _put(checkpoint: dict, where: str, marker: Path) -> None:
    """Plant a payload at one of the places a stored config is turned into objects."""
    run, hparams = checkpoint["run_config"], checkpoint["hyper_parameters"]
    if where == "data target":
        run["data"] = {**_file_handler(marker), "delay": False}
    elif where == "model target":
        run["model"] = _file_handler(marker)
    elif where == "nested data key":  # instantiate(data) is recursive
        run["data"]["extra"] = {"_target_": "torch.nn.Identity", "_args_": [_open(marker)]}
    elif where == "argument default":  # inside an allowed class's arguments
        run["model"]["optimizer"]["foreach"] = _open(marker)
    elif where == "loss":
        run["model"]["loss"] = _open(marker)
    elif where == "stored hparams":  # what LightningModule.load_from_checkpoint instantiates
        hparams["loss"] = _open(marker)
    elif where == "re-export":  # an allowed name's module leading on to torch.save
        run["model"]["loss"] = {
            "_target_": "torch.nn.modules.module.torch.save",
            "_args_": [{}, str(marker)],
        }
    elif where == "logger as loss":  # a class whose constructor writes files
        run["model"]["loss"] = hparams["loss"] = _mlflow(marker)
    elif where == "interpolation":
        run["data"]["extra"] = "${oc.create:{_target_: builtins.open}}"
    else:
        raise AssertionError(where)


PLACES = [
    "data target",
    "model target",
    "nested data key",
    "argument default",
    "loss",
    "stored hparams",
    "re-export",
    "logger as loss",
    "interpolation",
]


@pytest.fixture
def honest_checkpoint(short_run: Path) -> dict:
    return load_checkpoint(short_run / "checkpoints" / "last.ckpt")


def model_class(checkpoint: dict) -> type:
    """The class of the run's model (an allowed one: the run's own)."""
    return get_class(checkpoint["run_config"]["model"]["_target_"])


def _crafted(honest: dict, where: str, tmp_path: Path) -> tuple[Path, Path]:
    checkpoint = copy.deepcopy(honest)
    marker = tmp_path / "payload_ran"
    _put(checkpoint, where, marker)
    path = tmp_path / "crafted.ckpt"
    torch.save(checkpoint, path)
    return path, marker


def test_the_payloads_are_live_when_instantiated_without_the_check(tmp_path: Path):
    marker = tmp_path / "ran"
    handler = instantiate(_file_handler(marker))
    handler.close()
    assert marker.exists()
    marker.unlink()
    instantiate(_open(marker)).close()
    assert marker.exists()
    marker.unlink()
    instantiate(_writer(marker))
    assert marker.is_dir()
    pytest.importorskip("mlflow")
    instantiate(_mlflow(tmp_path / "mlflow.db")).experiment  # noqa: B018  (its store is made here)
    assert (tmp_path / "mlflow.db").is_file()


@pytest.mark.parametrize("where", PLACES)
def test_eval_and_predict_refuse_a_crafted_checkpoint(
    honest_checkpoint, where, tmp_path: Path, entry_point
):
    path, marker = _crafted(honest_checkpoint, where, tmp_path)
    for script in ("eval.py", "predict.py"):
        result = entry_point(script, f"ckpt_path={path}", f"hydra.run.dir={tmp_path}/{script}")
        assert result.returncode == 1, result.stderr
        assert f"{path}" in result.stderr and "refused" in result.stderr
        assert "Traceback" not in result.stderr
        assert not marker.exists()
        assert not (tmp_path / script / "metrics.json").exists()
        assert not (tmp_path / script / "predictions.csv").exists()


@pytest.mark.parametrize("where", ["loss", "stored hparams", "model target"])
def test_every_loading_path_refuses_it(
    honest_checkpoint, where, tmp_path: Path, cfg_factory, short_overrides
):
    path, marker = _crafted(honest_checkpoint, where, tmp_path)
    with pytest.raises(CheckpointError, match="refused"):
        model_from_checkpoint(path)
    with pytest.raises(CheckpointError, match="refused"):
        load_state_dict(path)  # what model.init_from reads
    with pytest.raises(CheckpointError, match="refused"):  # resuming a fit
        train(cfg_factory(overrides=[*short_overrides, f"ckpt_path={path}"], name="resume"))
    with pytest.raises(CheckpointError, match="refused"):  # fine-tuning from it
        train(cfg_factory(overrides=[*short_overrides, f"++model.init_from={path}"], name="tune"))
    assert not marker.exists()


def test_lightning_load_from_checkpoint_refuses_stored_hparams(honest_checkpoint, tmp_path: Path):
    path, marker = _crafted(honest_checkpoint, "stored hparams", tmp_path)
    with pytest.raises(Exception, match=r"\[hyper_parameters\]: refused model\.loss\._target_"):
        model_class(honest_checkpoint).load_from_checkpoint(path, weights_only=True)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("role", "target"),
    [("data", "torch.nn.L1Loss"), ("model", "litplate.data.CSVDataModule"),
     ("model.loss", "torch.optim.SGD"), ("model.optimizer", "torch.nn.MSELoss"),
     ("model.scheduler", "torch.optim.Adam"), ("model.loss", "torch.nn.modules.loss.L1Loss"),
     ("model.loss", "lightning.pytorch.loggers.MLFlowLogger"), ("trainer", "lightning.Trainer"),
     ("model.loss", "os.system"), ("model.loss", ["torch.nn.L1Loss"])],
)  # fmt: skip
def test_a_role_refuses_every_class_not_listed_for_it(role, target):
    with pytest.raises(UnsafeConfigError, match=rf"refused {re.escape(role)}\._target_="):
        check_stored({"_target_": target}, role, "some.ckpt")


@pytest.mark.parametrize(
    ("role", "target"),
    [("model.loss", "torch.nn.L1Loss"), ("model.optimizer", "torch.optim.SGD"),
     ("model.scheduler", "torch.optim.lr_scheduler.StepLR"),
     ("data", "litplate.data.CSVDataModule"), ("model.activation", "torch.nn.Tanh")],
)  # fmt: skip
def test_what_a_run_uses_is_allowed_in_its_role(role, target):
    check_stored({"_target_": target}, role, "some.ckpt")


def test_the_runs_own_config_passes_the_check(honest_checkpoint):
    check_run_config(honest_checkpoint["run_config"], "some.ckpt")


def test_the_error_names_source_key_path_and_target():
    config = {"model": {"loss": {"_target_": "torch.nn.L1Loss", "_args_": [{"_target_": "x.y"}]}}}
    with pytest.raises(UnsafeConfigError) as info:
        check_run_config(config, "some.ckpt")
    assert "some.ckpt: refused model.loss._args_[0]._target_='x.y'" in str(info.value)
    assert "builds nothing at model.loss._args_[0]" in str(info.value)


def test_a_model_built_from_unsafe_hparams_is_refused(honest_checkpoint, tmp_path: Path):
    marker = tmp_path / "ran"
    model = model_class(honest_checkpoint)
    with pytest.raises(UnsafeConfigError, match=f"{model.__name__} hyper-parameters: refused"):
        model(loss=_open(marker))
    assert not marker.exists()


def test_pickled_code_names_the_global_and_never_advises_unsafe_loading(tmp_path: Path):
    path = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, "x": Touches(tmp_path / "ran")}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "refused: it holds pickled code (it would call posix.system)" in message
    assert "weights_only=False" not in message
    assert not (tmp_path / "ran").exists()


def test_random_bytes_are_not_a_checkpoint(tmp_path: Path):
    path = tmp_path / "noise.ckpt"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(CheckpointError, match=r"noise\.ckpt: not a checkpoint") as info:
        load_checkpoint(path)
    assert "weights_only=False" not in str(info.value)
    assert "more than weights" not in str(info.value)


def test_a_url_in_init_from_is_refused_as_remote(cfg_factory, short_overrides):
    url = "https://example.com/model.safetensors"
    with pytest.raises(CheckpointError, match=f"{url}: remote weights files are not loaded"):
        train(cfg_factory(overrides=[*short_overrides, f"++model.init_from={url}"]))


def test_safetensors_of_another_dtype_is_converted_with_a_warning(short_run: Path, tmp_path):
    from safetensors.torch import save_file

    model, _ = model_from_checkpoint(short_run / "checkpoints" / "last.ckpt")
    weights = {key: value.clone() for key, value in model.state_dict().items()}
    first = next(iter(weights))
    path = tmp_path / "double.safetensors"
    save_file({**weights, first: torch.full_like(weights[first], 0.5, dtype=torch.float64)}, path)
    with pytest.warns(UserWarning, match=f"converted to the model's dtype: {first} torch.float64"):
        load_weights(model, load_state_dict(path), path)
    loaded = model.state_dict()[first]
    assert loaded.dtype == torch.float32 and torch.equal(loaded, torch.full_like(loaded, 0.5))
    save_file({**weights, first: torch.ones_like(weights[first], dtype=torch.int64)}, path)
    with pytest.raises(CheckpointError, match=rf"other dtype: {first} torch\.int64 vs model"):
        load_weights(model, load_state_dict(path), path)


# Every role of a stored config, given a class of another role and a class that writes files.
OTHER_ROLE = {
    "data": "torch.nn.L1Loss",
    "model": "litplate.data.CSVDataModule",
    "model.loss": "torch.optim.SGD",
    "model.optimizer": "torch.nn.MSELoss",
    "model.scheduler": "torch.optim.Adam",
}
EXPORTS = ("onnx", "torchscript", "pt2", "safetensors")


def _plant(checkpoint: dict, role: str, payload: dict) -> None:
    run, hparams = checkpoint["run_config"], checkpoint["hyper_parameters"]
    if role in ("data", "model"):
        run[role] = {**run[role], **payload}
        return
    key = role.split(".", 1)[1]
    run["model"][key] = hparams[key] = {**payload, "_partial_": True}


@pytest.mark.slow
@pytest.mark.parametrize("payload", ["other role", "writes files"])
@pytest.mark.parametrize("role", list(OTHER_ROLE))
def test_every_role_refuses_through_every_path(
    honest_checkpoint, role, payload, tmp_path: Path, entry_point, cfg_factory, short_overrides
):
    marker = tmp_path / "marker"
    planted = {"_target_": OTHER_ROLE[role]} if payload == "other role" else _writer(marker)
    if payload == "writes files" and role.startswith("model."):
        planted = _mlflow(marker)
    checkpoint = copy.deepcopy(honest_checkpoint)
    _plant(checkpoint, role, planted)
    path = tmp_path / "crafted.ckpt"
    torch.save(checkpoint, path)
    refusal = f"{path} [run_config]: refused {role}._target_='{planted['_target_']}'"
    # export.py loads the checkpoint before its format matters: one format per role, each in turn.
    fmt = EXPORTS[list(OTHER_ROLE).index(role) % len(EXPORTS)]
    runs = [("eval.py", []), ("predict.py", []), ("export.py", [f"format={fmt}"])]
    for script, extra in runs:
        out = tmp_path / "_".join([script[:-3], *(e.split("=")[1] for e in extra)])
        result = entry_point(script, f"ckpt_path={path}", *extra, f"hydra.run.dir={out}")
        assert result.returncode == 1, (script, extra, result.stderr)
        assert refusal in result.stderr, (script, extra, result.stderr)
        assert "Traceback" not in result.stderr
        assert not [f for f in out.iterdir() if f.name not in (".hydra", f"{script[:-3]}.log")]
    for name, loading in (("resume", f"ckpt_path={path}"), ("tune", f"++model.init_from={path}")):
        with pytest.raises(CheckpointError, match=re.escape(refusal)):
            train(cfg_factory(overrides=[*short_overrides, loading], name=name))
    assert not marker.exists()


def test_the_documented_python_loading_refuses_a_pickle_served_over_http(
    honest_checkpoint, tmp_path: Path
):
    served = tmp_path / "served"
    served.mkdir()
    torch.save({"state_dict": {}, "x": Touches(tmp_path / "ran")}, served / "model.ckpt")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=served)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/model.ckpt"
    try:
        with pytest.raises(CheckpointError, match="remote checkpoints are not loaded"):
            model_from_checkpoint(url)
        with pytest.raises(CheckpointError, match="remote checkpoints are not loaded"):
            model_class(honest_checkpoint).load_from_checkpoint(url)
        run_data = get_class(honest_checkpoint["run_config"]["data"]["_target_"])
        for data_module in (run_data, CSVDataModule):  # Lightning's own would unpickle
            with pytest.raises(CheckpointError, match="remote checkpoints are not loaded"):
                data_module.load_from_checkpoint(url)
    finally:
        server.shutdown()
    assert not (tmp_path / "ran").exists()
    # The payload is live: unpickled without weights_only's checks (as Lightning loads a URL), it
    # runs.
    pickle.loads(pickle.dumps(Touches(tmp_path / "ran")))
    assert (tmp_path / "ran").exists()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda c: c["run_config"].pop("model"), "no model config"),
        (lambda c: c["run_config"].update(model=None), "no model config"),
        (lambda c: c["run_config"].update(model="litplate.models.LitModel"), "no model"),
        (lambda c: c["run_config"]["model"].pop("_target_"), "no model config"),
        (lambda c: c["run_config"].pop("data"), "no data config"),
        (lambda c: c["run_config"].update(data=[1]), "no data config"),
        (lambda c: c.update(state_dict=[1]), "'state_dict' is not a mapping"),
        (lambda c: c["state_dict"].update(extra=3), "'state_dict' is not a mapping"),
        (lambda c: c["run_config"]["model"].update(_partial_=True), "refused model._partial_"),
        (lambda c: c["run_config"]["data"].update(_partial_=True), "refused data._partial_"),
    ],
)
def test_a_malformed_checkpoint_is_one_clear_error(
    honest_checkpoint, change, named, tmp_path: Path, entry_point
):
    checkpoint = copy.deepcopy(honest_checkpoint)
    change(checkpoint)
    path = tmp_path / "malformed.ckpt"
    torch.save(checkpoint, path)
    result = entry_point("eval.py", f"ckpt_path={path}", f"hydra.run.dir={tmp_path}/eval")
    assert result.returncode == 1, result.stderr
    assert named in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("key", ["best_model_path", "kth_best_model_path", "best_k_models"])
@pytest.mark.parametrize(
    "form", ["{run}/checkpoints/../../victim", "local://{victim}", "simplecache::{victim}"]
)
def test_a_callback_state_pointing_outside_its_directory_is_refused(
    honest_checkpoint, key, form, tmp_path: Path, cfg_factory, short_overrides
):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("kept")
    checkpoint = copy.deepcopy(honest_checkpoint)
    # `local://` and `x::` are fsspec protocols Lightning removes recursively, unchecked.
    outside = form.format(run=tmp_path / "run", victim=victim)
    for state in checkpoint["callbacks"].values():
        state.pop("dirpath", None)  # Lightning then takes the state as its own directory's
        state[key] = {outside: torch.tensor(0.0)} if key == "best_k_models" else outside
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    torch.save(checkpoint, path)
    # One more epoch than the honest run's: a resume that trains (and would save, and delete).
    more = f"trainer.max_epochs={honest_checkpoint['epoch'] + 2}"
    cfg = cfg_factory(overrides=[*short_overrides, more, f"ckpt_path={path}"], name="run")
    with pytest.raises(CheckpointError, match="not a plain path inside its directory"):
        train(cfg)
    assert (victim / "precious.txt").read_text() == "kept"
