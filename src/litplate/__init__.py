"""litplate: the standard PyTorch workflow as a Lightning + Hydra project."""

__version__ = "0.1.0"
