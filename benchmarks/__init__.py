"""Benchmarks: quality on real and planted cohorts, speed/scaling/memory. Not part of `make test`."""
