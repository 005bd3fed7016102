"""Architecture switches vs the vanilla textbook model on the reverse task; prints JSON."""

import json
import sys

from s2s_core.benchmarks.variants import run

if __name__ == "__main__":
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
    print(json.dumps(run(steps=steps), indent=2))
