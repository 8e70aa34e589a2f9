"""Export a checkpoint for serving: `python scripts/export.py ckpt_path=PATH format=onnx` (see
configs/export.yaml and docs/export.md)."""

import hydra
from omegaconf import DictConfig

import litplate.run.config  # noqa: F401  (registers the config resolvers)


@hydra.main(version_base="1.3", config_path="../configs", config_name="export")
def main(cfg: DictConfig) -> None:
    from litplate.export import export  # lazily: `--help` needs no torch

    export(cfg)


if __name__ == "__main__":
    main()
