"""litplate's Optuna sweeper for Hydra (optuna_sweeper.py), in Hydra's `hydra_plugins` namespace."""
