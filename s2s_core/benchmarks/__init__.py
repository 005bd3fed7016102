"""Benchmarks: each compares our implementation against a baseline timed in the same run.

In the library, not in bench/, because the installed CLI runs them (`s2s bench decode|train`
in a worker image on a GPU host, where bench/ is not installed; bench/decode.py and
bench/train.py only call them). bench/ holds the service-level ones that need the checkout."""
