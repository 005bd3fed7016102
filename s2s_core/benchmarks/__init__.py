"""Benchmarks: each compares our implementation against a baseline timed in the same run."""
