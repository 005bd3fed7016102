"""Blind-reading packets from `s2s eval` outputs: each item shows a conversation and the
candidate replies of every system compared (plus, for corpus contexts, the human reply),
shuffled with a fixed seed, no source named; the key that says whose reply is whose is
written apart, for the scorer.

    python bench/judging/build_packets.py OUT_DIR KEY_FILE --set test \\
        --system today=runs/test200.json:varied --system hybrid=runs/test200.json:hybrid \\
        [--human] [--readers 2] [--seed 0]

Each system is NAME=EVAL_JSON:STRATEGY; every system must answer the same contexts in the
same order. Identical replies of two systems are shown once (one label counts for both).
Writes OUT_DIR/<set>_reader<N>.md (the items split in contiguous halves, one per reader)
and KEY_FILE (JSON). Keep KEY_FILE away from readers until their labels are in.
"""

from __future__ import annotations

import argparse
import json
import random
import string
from pathlib import Path
from typing import Any

RUBRIC = Path(__file__).with_name("RUBRIC.md")


def load_system(spec: str) -> tuple[str, list[dict[str, Any]]]:
    name, _, rest = spec.partition("=")
    path, _, strategy = rest.rpartition(":")
    if not name or not path or not strategy:
        raise SystemExit(f"--system wants NAME=EVAL_JSON:STRATEGY, got {spec!r}")
    result = json.loads(Path(path).read_text(encoding="utf-8"))
    if strategy not in result:
        raise SystemExit(f"{path} has no strategy {strategy!r}")
    return name, result[strategy]["samples"]


def build(
    systems: dict[str, list[dict[str, Any]]], human: bool, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(items to show, their keys): per context, each distinct reply under a letter."""
    lengths = {len(samples) for samples in systems.values()}
    if len(lengths) != 1:
        raise SystemExit(f"the systems answer different numbers of contexts: {lengths}")
    rng = random.Random(seed)
    items, keys = [], []
    first = next(iter(systems.values()))
    for i in range(lengths.pop()):
        context = first[i]["context"]
        replies: dict[str, list[str]] = {}  # reply text -> the systems that gave it
        for name, samples in systems.items():
            if samples[i]["context"] != context:
                raise SystemExit(f"context {i} differs between systems")
            replies.setdefault(samples[i]["reply"].strip(), []).append(name)
        if human and first[i].get("reference"):
            replies.setdefault(first[i]["reference"].strip(), []).append("human")
        order = list(replies)
        rng.shuffle(order)
        letters = string.ascii_uppercase[: len(order)]
        items.append(
            {"item": i + 1, "context": context, "replies": dict(zip(letters, order, strict=True))}
        )
        keys.append(
            {"item": i + 1, "key": {c: replies[t] for c, t in zip(letters, order, strict=True)}}
        )
    return items, keys


def render(items: list[dict[str, Any]], title: str, note: str = "") -> str:
    """A reader's packet: the title, the rubric (and ``note``, what this packet asks
    beyond it), then each item's conversation and lettered replies."""
    lines = [f"# {title}", "", RUBRIC.read_text(encoding="utf-8"), ""]
    lines += [note, ""] if note else []
    for item in items:
        lines.append(f"## Item {item['item']}")
        speakers = ["Sam", "Alex"] * len(item["context"])
        for speaker, turn in zip(speakers[-len(item["context"]) :], item["context"], strict=True):
            lines.append(f"> {speaker}: {turn}")
        lines.append("")
        lines.append("Candidate replies to Alex's last message:")
        lines += [f"- {letter}: {text}" for letter, text in item["replies"].items()]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path, help="where the reader packets go")
    parser.add_argument("key_file", type=Path, help="the key (JSON), kept from readers")
    parser.add_argument("--set", required=True, help="a name for the context set, e.g. test")
    parser.add_argument("--system", action="append", required=True, help="NAME=EVAL:STRATEGY")
    parser.add_argument("--human", action="store_true", help="add the corpus' human reply")
    parser.add_argument("--readers", type=int, default=2, help="packets (contiguous parts)")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed")
    args = parser.parse_args()
    systems = dict(load_system(spec) for spec in args.system)
    items, keys = build(systems, args.human, args.seed)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    size = -(-len(items) // args.readers)
    for reader in range(args.readers):
        part = items[reader * size : (reader + 1) * size]
        title = (
            f"Packet {args.set}, reader {reader + 1} (items {part[0]['item']}-{part[-1]['item']})"
        )
        out = args.out_dir / f"{args.set}_reader{reader + 1}.md"
        out.write_text(render(part, title), encoding="utf-8")
    args.key_file.parent.mkdir(parents=True, exist_ok=True)
    record = {"set": args.set, "systems": list(systems), "human": args.human, "items": keys}
    args.key_file.write_text(json.dumps(record, indent=1, ensure_ascii=False), encoding="utf-8")
    print(json.dumps({"items": len(items), "packets": args.readers, "key": str(args.key_file)}))


if __name__ == "__main__":
    main()
