"""Ranker-only response selection: how often a ranker puts the reply a person gave first
among the corpus replies the hybrid pool retrieves for the same conversation; prints JSON
lines, one per ranker.

    python bench/rank_selection.py RANKER [RANKER ...] [--split valid] [--limit 300]

RANKER is a ranker folder (e.g. models/default/ranker, or a `s2s train-ranker --out`
folder) or `minilm` for the packaged off-the-shelf encoder. Cheaper than
bench/tune_hybrid.py (no Seq2Seq decoding): for comparing ranker trainings. The figures are
a proxy: blind reading decides what ships.
"""

from __future__ import annotations

import argparse
import json
import time

from s2s_contract.settings import Settings
from s2s_core.ranker import Ranker, conversation_text
from s2s_core.recipe import DataConfig, load_split
from s2s_core.retrieval import CorpusIndex

RETRIEVED = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rankers", nargs="+", help="ranker folders, or minilm")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--limit", type=int, default=300)
    args = parser.parse_args()
    data = DataConfig(task="chitchat", clean=True, context_turns=3)
    examples = load_split(data, args.split)[: args.limit]
    conversations = [[t.text for t in ex.context] for ex in examples]
    found = CorpusIndex.cached(Settings().retrieval_dir).search(conversations, RETRIEVED)
    pools = [
        [ex.response] + [f.text for f in hits if f.text.strip().lower() != ex.response.lower()]
        for ex, hits in zip(examples, found, strict=True)
    ]
    for name in args.rankers:
        start = time.perf_counter()
        ranker = Ranker.load(None if name == "minilm" else name)
        scores = ranker.scores([conversation_text(c) for c in conversations], pools)
        ranks = [1 + sum(s > pool[0] for s in pool[1:]) for pool in scores]
        print(
            json.dumps(
                {
                    "ranker": name,
                    "contexts": len(ranks),
                    "hits@1": round(sum(r == 1 for r in ranks) / len(ranks), 3),
                    "mrr": round(sum(1 / r for r in ranks) / len(ranks), 3),
                    "mean_rank": round(sum(ranks) / len(ranks), 2),
                    "seconds": round(time.perf_counter() - start),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
