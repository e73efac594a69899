"""Benchmarks (not tests). `python -m bench.crl` or `make bench-crl`."""
