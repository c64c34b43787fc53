"""Benchmarks of the items service: `python -m bench` (load) and `python -m bench.paging`."""
