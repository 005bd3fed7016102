"""Scores readers' consistency labels: the bot turns each reader marked C, the ones every
reader marked, and their share of all bot turns; prints JSON.

    python bench/consistency/score.py REPLIES_JSON LABELS [LABELS ...] [--key KEY_JSON]

With ``--key`` (from blind.py) the counts are also given per system.

A label line reads `2: 2.7=C (why), 2.15=C (why)` or `2: none`; other lines are ignored.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

LINE = re.compile(r"^\s*(\d+)\s*:\s*(.*)$")
MARK = re.compile(r"\b(\d+)\.(\d+)\s*=\s*C\b")


def marked(text: str) -> set[tuple[int, int]]:
    """The (conversation, turn) pairs a reader marked C."""
    found = set()
    for line in text.splitlines():
        match = LINE.match(line.replace("*", "").replace("`", ""))
        if match:
            found |= {(int(c), int(t)) for c, t in MARK.findall(match.group(2))}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("replies", type=Path, help="run.py's replies.json")
    parser.add_argument("labels", type=Path, nargs="+")
    parser.add_argument("--key", type=Path, help="blind.py's key: conversation -> system")
    args = parser.parse_args()
    conversations = json.loads(args.replies.read_text(encoding="utf-8"))
    turns = sum(len(c["bot"]) for c in conversations)
    readers = {path.name: marked(path.read_text(encoding="utf-8")) for path in args.labels}
    every = set.intersection(*readers.values())
    result = {
        "bot_turns": turns,
        "marked": {name: sorted(f"{c}.{t}" for c, t in m) for name, m in readers.items()},
        "marked_by_every_reader": sorted(f"{c}.{t}" for c, t in every),
        "share_marked_by_every_reader": round(len(every) / max(turns, 1), 3),
    }
    if args.key:
        key = json.loads(args.key.read_text(encoding="utf-8"))
        systems: dict[str, dict[str, int]] = {}
        for n, conversation in enumerate(conversations, 1):
            counts = systems.setdefault(key[str(n)]["system"], {"bot_turns": 0})
            counts["bot_turns"] += len(conversation["bot"])
            for name, m in readers.items():
                counts[name] = counts.get(name, 0) + sum(c == n for c, _ in m)
            counts["every_reader"] = counts.get("every_reader", 0) + sum(c == n for c, _ in every)
        result["per_system"] = systems
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
