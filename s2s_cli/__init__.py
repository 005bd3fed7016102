"""The ``s2s`` command line: the one place that wires the packages together."""
