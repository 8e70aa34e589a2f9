"""Evaluate a checkpoint: `python scripts/eval.py ckpt_path=PATH` (see configs/eval.yaml)."""

import hydra
from omegaconf import DictConfig

import litplate.run.config  # noqa: F401  (registers the config resolvers)


@hydra.main(version_base="1.3", config_path="../configs", config_name="eval")
def main(cfg: DictConfig) -> None:
    from litplate.evaluate import evaluate  # lazily: `--help` needs no torch

    evaluate(cfg)


if __name__ == "__main__":
    main()
