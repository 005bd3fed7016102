"""Training throughput vs the textbook loop; prints JSON. Same as `s2s bench train`."""

import json
import sys

from s2s_core.benchmarks.train import run

if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
