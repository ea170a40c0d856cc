"""Benchmark harness (issue 4): ``python -m bench.run``. See bench/README.md.

Not part of the worker and not run in CI; only ``bench.stats`` is unit-tested.
"""
