"""Blind-labelling packets of whole reply pools: each item shows a conversation and every
candidate of its hybrid pool (the Seq2Seq's n-best, the corpus replies, the human reply),
shuffled, no source named; the key is written apart. With every candidate labelled, any
ranker can be scored offline (``evaluate.py``): what it would have chosen, and the best any
ranker could choose from the same pool.

    python bench/tune_hybrid.py models/default --sample 160 --seed 31 --dump POOLS.json
    python bench/judging/pool_packets.py POOLS.json OUT_DIR KEY.json [--readers 8] [--seed 0]

Identical candidates are shown once. Candidates are lettered A..Z, then AA, AB, ...
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import string
from pathlib import Path
from typing import Any

from build_packets import render  # this folder's packet layout, rubric first

NOTE = (
    "Items here have many candidates (twenty or more); past Z they are lettered AA, AB, ... "
    "Label every one. No `best` is needed: `12 A=R B=G ... AA=O` is a whole answer."
)


def letters() -> list[str]:
    """A..Z, AA..ZZ: labels for up to 702 candidates."""
    one = list(string.ascii_uppercase)
    return one + ["".join(p) for p in itertools.product(one, repeat=2)]


def norm(text: str) -> str:
    return " ".join(text.lower().split())


def build(pools: dict[str, Any], seed: int) -> tuple[list[dict], list[dict]]:
    """(items to show, keys): per context, each distinct candidate under a label; the key
    maps a label to the candidates' positions in the pool."""
    rng = random.Random(seed)
    items, keys = [], []
    for n, entry in enumerate(pools["items"], start=1):
        where: dict[str, list[int]] = {}
        texts: dict[str, str] = {}
        for j, cand in enumerate(entry["candidates"]):
            if cand["text"].strip():
                where.setdefault(norm(cand["text"]), []).append(j)
                texts.setdefault(norm(cand["text"]), cand["text"].strip())
        order = list(where)
        rng.shuffle(order)
        labels = letters()[: len(order)]
        context = [t["text"] for t in entry["context"]]
        shown = {a: texts[k] for a, k in zip(labels, order, strict=True)}
        items.append({"item": n, "context": context, "replies": shown})
        key = {a: where[k] for a, k in zip(labels, order, strict=True)}
        keys.append({"item": n, "index": entry["index"], "key": key})
    return items, keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pools", type=Path, help="tune_hybrid.py --dump output")
    parser.add_argument("out_dir", type=Path, help="where the reader packets go")
    parser.add_argument("key_file", type=Path, help="the key (JSON), kept from readers")
    parser.add_argument("--readers", type=int, default=8, help="packets (contiguous parts)")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed")
    args = parser.parse_args()
    pools = json.loads(args.pools.read_text(encoding="utf-8"))
    items, keys = build(pools, args.seed)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    size = -(-len(items) // args.readers)
    for reader in range(args.readers):
        part = items[reader * size : (reader + 1) * size]
        title = f"Pools, reader {reader + 1} (items {part[0]['item']}-{part[-1]['item']})"
        (args.out_dir / f"pools_reader{reader + 1}.md").write_text(
            render(part, title, NOTE), encoding="utf-8"
        )
    record = {"pools": str(args.pools), "seed": args.seed, "items": keys}
    args.key_file.parent.mkdir(parents=True, exist_ok=True)
    args.key_file.write_text(json.dumps(record, indent=1), encoding="utf-8")
    print(json.dumps({"items": len(items), "packets": args.readers, "key": str(args.key_file)}))


if __name__ == "__main__":
    main()
