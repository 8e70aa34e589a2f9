"""litplate's Optuna sweeper for Hydra: `hydra/sweeper=litplate_optuna` (see optuna_sweeper.py).

`hydra_plugins` above this package is a namespace package (no __init__.py), the place where Hydra
looks for plugins.
"""
