"""Code the test modules share: paths, config composition, script runs, run-output readers.

Fixtures live in tests/conftest.py; no test module imports from another test module.
"""
