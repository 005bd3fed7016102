"""Rankers scored offline on blind-labelled pools: every candidate of each pool was labelled
R / G / O by readers who did not know its source (``bench/judging/pool_packets.py``), so
any ordering of a pool can be judged without another reading: the pool is put in that
order, the worker's own choice (``s2s_core.evaluate.choose_reply``) picks the reply, and
its label counts. Prints JSON lines:

    python bench/ranking/evaluate.py POOLS.json KEY.json LABELS... [--reranker DIR] [--top 8 12]

- ``bi-encoder``: the ranker's order (its cosine as the pool was dumped, or ``--ranker``'s);
- ``reranked top K``: the bi-encoder's first K reordered by the cross-encoder, the rest after;
- ``random``: a shuffled pool, the floor;
- ``oracle``: the share of pools holding at least one relevant candidate, the ceiling;
- ``human``: the share of the human replies labelled relevant, the readers' strictness.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from s2s_core.choice import Candidate
from s2s_core.corpora import Example, Turn
from s2s_core.evaluate import choose_reply
from s2s_core.quality import learned_stock
from s2s_core.ranker import Ranker, conversation_text

LINE = re.compile(r"^\s*(\d+)\s+((?:[A-Z]{1,2}=[RGO]\s*)+)")
HUMAN = "human"


def read_labels(files: list[Path]) -> dict[int, dict[str, str]]:
    found: dict[int, dict[str, str]] = {}
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            match = LINE.match(line.replace("*", "").replace("`", ""))
            if match:
                found[int(match.group(1))] = dict(p.split("=") for p in match.group(2).split())
    return found


def candidate_labels(
    items: list[dict[str, Any]], keys: list[dict[str, Any]], labels: dict[int, dict[str, str]]
) -> list[list[str | None]]:
    """Each pool's candidates' labels, in the dumped order (None: left unlabelled)."""
    out = []
    for item, key in zip(items, keys, strict=True):
        marks = labels.get(key["item"], {})
        per = [None] * len(item["candidates"])
        for letter, positions in key["key"].items():
            for j in positions:
                per[j] = marks.get(letter)
        out.append(per)
    return out


def judged(
    items: list[dict[str, Any]],
    labels: list[list[str | None]],
    order: Callable[[int, list[int]], list[int]],
    stock: Any,
) -> dict[str, Any]:
    """The labels of what the choice picks when each pool (its non-human candidates) is put
    in ``order(item, positions)``."""
    counts = {"R": 0, "G": 0, "O": 0, "unlabelled": 0, "no candidate": 0}
    sources: dict[str, int] = {}
    for i, item in enumerate(items):
        cands = item["candidates"]
        ordered = order(i, [j for j, c in enumerate(cands) if c["source"] != HUMAN])
        example = Example(tuple(Turn(t["text"], t["speaker"]) for t in item["context"]), "")
        pool = [Candidate(**cands[j]) for j in ordered]
        choice = choose_reply(example, pool, stock=stock)
        if choice.index < 0:  # the persona's answer, the fallback
            counts["no candidate"] += 1
            continue
        j = ordered[choice.index]
        counts[labels[i][j] or "unlabelled"] += 1
        sources[cands[j]["source"]] = sources.get(cands[j]["source"], 0) + 1
    n = len(items)
    return {
        **{k: round(counts[k] / n, 3) for k in ("R", "G", "O")},
        "other": counts["unlabelled"] + counts["no candidate"],
        "sources": sources,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pools", type=Path, help="tune_hybrid.py --dump output")
    parser.add_argument("key", type=Path, help="pool_packets.py's key")
    parser.add_argument("labels", type=Path, nargs="+", help="the readers' label files")
    parser.add_argument("--ranker", type=Path, help="a bi-encoder folder to rank with instead")
    parser.add_argument("--reranker", type=Path, help="a cross-encoder folder to score")
    parser.add_argument("--top", type=int, nargs="+", default=[8], help="candidates reranked")
    args = parser.parse_args()
    pools = json.loads(args.pools.read_text(encoding="utf-8"))
    items, keys = pools["items"], json.loads(args.key.read_text(encoding="utf-8"))["items"]
    labels = candidate_labels(items, keys, read_labels(args.labels))
    meta = json.loads((Path(pools["model"]) / "metrics.json").read_text(encoding="utf-8"))
    stock = learned_stock(meta)

    def by(score: Callable[[int, int], float]) -> Callable[[int, list[int]], list[int]]:
        return lambda i, js: sorted(js, key=lambda j: -score(i, j))

    convs = [conversation_text([t["text"] for t in item["context"]]) for item in items]
    texts = [[c["text"] for c in item["candidates"]] for item in items]
    cosines = (
        Ranker.load(args.ranker).scores(convs, texts)
        if args.ranker
        else [[c["scores"]["ranker"] for c in item["candidates"]] for item in items]
    )

    def ranker(i: int, j: int) -> float:
        return float(cosines[i][j])

    rows = {"bi-encoder": judged(items, labels, by(ranker), stock)}
    rng = random.Random(0)
    rows["random"] = judged(items, labels, lambda i, js: rng.sample(js, len(js)), stock)
    if args.reranker:
        from s2s_core.reranker import Reranker

        reranker = Reranker.load(args.reranker)
        cross = reranker.scores(convs, texts)
        whole = by(lambda i, j: cross[i][j])
        rows["cross-encoder, whole pool"] = judged(items, labels, whole, stock)
        for k in args.top:

            def reranked(i: int, js: list[int], k: int = k) -> list[int]:
                first = by(ranker)(i, js)
                return sorted(first[:k], key=lambda j: -cross[i][j]) + first[k:]

            rows[f"reranked top {k}"] = judged(items, labels, reranked, stock)
    for name, row in rows.items():
        print(json.dumps({"order": name, **row}))
    relevant = [
        any(
            lab == "R"
            for lab, c in zip(per, item["candidates"], strict=True)
            if c["source"] != HUMAN
        )
        for per, item in zip(labels, items, strict=True)
    ]
    human = [
        lab == "R"
        for per, item in zip(labels, items, strict=True)
        for lab, c in zip(per, item["candidates"], strict=True)
        if c["source"] == HUMAN
    ]
    print(
        json.dumps(
            {
                "pools": len(items),
                "oracle": round(sum(relevant) / len(items), 3),
                "human": round(sum(human) / max(len(human), 1), 3),
            }
        )
    )


if __name__ == "__main__":
    main()
