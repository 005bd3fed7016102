"""A blind packet of the scripted conversations as two (or more) systems played them:
every system's five conversations, shuffled with a fixed seed, numbered 1..N, no system
named; the key that says which conversation is whose is written apart, for score.py.

    python bench/consistency/blind.py OUT_DIR NAME=REPLIES_JSON [NAME=REPLIES_JSON ...]

Writes OUT_DIR/packet.md (for readers), OUT_DIR/replies.json (the conversations in packet
order) and OUT_DIR/key.json (keep it from readers until their labels are in).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from run import packet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("systems", nargs="+", help="NAME=REPLIES_JSON (run.py's replies.json)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    shown = []
    for spec in args.systems:
        name, _, path = spec.partition("=")
        if not name or not path:
            raise SystemExit(f"want NAME=REPLIES_JSON, got {spec!r}")
        for script, conversation in enumerate(json.loads(Path(path).read_text("utf-8")), 1):
            shown.append((name, script, conversation))
    random.Random(args.seed).shuffle(shown)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    conversations = [c for _, _, c in shown]
    (args.out_dir / "packet.md").write_text(
        packet([c["user"] for c in conversations], [c["bot"] for c in conversations]),
        encoding="utf-8",
    )
    (args.out_dir / "replies.json").write_text(
        json.dumps(conversations, indent=1, ensure_ascii=False), encoding="utf-8"
    )
    key = {str(n): {"system": name, "script": s} for n, (name, s, _) in enumerate(shown, 1)}
    (args.out_dir / "key.json").write_text(json.dumps(key, indent=1), encoding="utf-8")
    print(json.dumps({"conversations": len(shown), "out": str(args.out_dir)}))


if __name__ == "__main__":
    main()
