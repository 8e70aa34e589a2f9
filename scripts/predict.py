"""Predict with a checkpoint: `python scripts/predict.py ckpt_path=PATH` (configs/predict.yaml)."""

import hydra
from omegaconf import DictConfig

import litplate.run.config  # noqa: F401  (registers the config resolvers)


@hydra.main(version_base="1.3", config_path="../configs", config_name="predict")
def main(cfg: DictConfig) -> None:
    from litplate.predict import predict_to_csv  # lazily: `--help` needs no torch

    predict_to_csv(cfg)


if __name__ == "__main__":
    main()
