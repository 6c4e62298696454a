"""Benchmarks (speed targets live here, not in the tests)."""
