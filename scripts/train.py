"""Train a model: `python scripts/train.py experiment=linear` (see configs/train.yaml)."""

import hydra
from omegaconf import DictConfig

import litplate.run.config  # noqa: F401  (registers the config resolvers)


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    # Imported here so `--help` and `--cfg job` answer without loading torch.
    from litplate.run.sweep import run_task
    from litplate.train import train_and_score

    # In a multirun (-m) a failed job is recorded and the sweep goes on; a single run raises.
    return run_task(train_and_score, cfg)


if __name__ == "__main__":
    main()
