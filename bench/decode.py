"""Decoding throughput vs the textbook loops and the compute floor; prints JSON.
Same as `s2s bench decode`."""

import json
import sys

from s2s_core.benchmarks.decode import run

if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
