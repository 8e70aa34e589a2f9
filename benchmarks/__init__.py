"""litplate against Lightning's floor, the peer pipeline and the plain loop: `benchmarks/run.py`."""
