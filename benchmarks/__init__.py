"""Benchmarks of litplate against the plain PyTorch loop: `python benchmarks/run.py`."""
