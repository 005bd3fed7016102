"""Scores blind-reading labels against the key of `build_packets.py`: per system, the share
of its replies labelled relevant (R), generic (G) and off-topic (O), and how often its reply
was the one a person would most like to get; prints JSON.

    python bench/judging/score.py KEY_FILE LABELS_FILE [LABELS_FILE ...]

A label line reads `12 A=R B=G C=O best=A`; other lines are ignored. An item's labels
count once for every system that gave that reply. An item without labels, or with a letter
unlabelled, is reported as missing, never guessed.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

LINE = re.compile(r"^\s*(\d+)\s+((?:[A-Z]=[RGO]\s*)+)(?:best=([A-Z]))?\s*$")


def parse_labels(text: str) -> dict[int, tuple[dict[str, str], str | None]]:
    found = {}
    for line in text.splitlines():
        match = LINE.match(line.replace("*", "").replace("`", ""))
        if match:
            pairs = dict(p.split("=") for p in match.group(2).split())
            found[int(match.group(1))] = (pairs, match.group(3))
    return found


def score(key: dict[str, Any], labels: dict[int, tuple[dict[str, str], str | None]]) -> dict:
    names = [*key["systems"], *(["human"] if key["human"] else [])]
    counts = {n: {"R": 0, "G": 0, "O": 0, "best": 0, "n": 0} for n in names}
    missing = []
    for entry in key["items"]:
        item, letters = entry["item"], entry["key"]
        if item not in labels or set(labels[item][0]) < set(letters):
            missing.append(item)
            continue
        marks, best = labels[item]
        for letter, systems in letters.items():
            for name in systems:
                counts[name][marks[letter]] += 1
                counts[name]["n"] += 1
                counts[name]["best"] += best == letter
    shares = {
        name: {
            **{k: round(c[k] / c["n"], 3) for k in ("R", "G", "O", "best")},
            "replies": c["n"],
        }
        for name, c in counts.items()
        if c["n"]
    }
    return {
        "set": key["set"],
        "scored_items": len(key["items"]) - len(missing),
        "missing_items": missing,
        "shares": shares,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("key_file", type=Path)
    parser.add_argument("labels", type=Path, nargs="+")
    args = parser.parse_args()
    key = json.loads(args.key_file.read_text(encoding="utf-8"))
    labels: dict[int, tuple[dict[str, str], str | None]] = {}
    for path in args.labels:
        labels.update(parse_labels(path.read_text(encoding="utf-8")))
    print(json.dumps(score(key, labels), indent=2))


if __name__ == "__main__":
    main()
