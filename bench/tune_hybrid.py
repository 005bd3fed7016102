"""The hybrid pool's weights tuned by response selection against the human reply; prints
JSON lines.

    python bench/tune_hybrid.py MODEL_DIR [--split valid] [--limit 300] [--ranker DIR] [--write]
        [--sample N --seed S] [--dump POOLS.json]

For each context of the split, the pool the worker would rank (the ``hybrid`` style's
n-best, MMI-scored, and ``retrieved`` corpus replies) plus the reply the person actually
gave. Every candidate's three terms (the ranker's cosine, the Seq2Seq's forward and
backward mean log-probabilities) are computed once; every (forward_weight,
backward_weight) of the grid then orders the pool, and a line reports how often the human
reply comes first (hits@1) and its mean rank. It never uses the MiniLM relevance figure:
the ranker would be grading itself. ``--ranker`` scores with a fine-tuned ranker folder
instead of the checkpoint's; ``--write`` stores the best weights in the checkpoint's
metrics.json ``hybrid``, where the worker, ``s2s chat``, ``s2s eval`` and replay read them.
``--sample N`` takes N contexts drawn across the split (seeded) instead of the first N;
``--dump`` writes every pool with its terms, for blind labelling (``bench/ranking/``).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from s2s_contract.settings import Settings
from s2s_core import generate, load_checkpoint
from s2s_core.choice import Candidate, as_candidates
from s2s_core.data import encode_context
from s2s_core.decoding import word_table
from s2s_core.hybrid import HybridConfig, Seq2SeqScorer, load_hybrid, rank_pools
from s2s_core.mmi import load_backward, maybe_rerank
from s2s_core.ranker import Ranker
from s2s_core.recipe import DataConfig, load_split
from worker.replies import decode_config

WEIGHTS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.4)
HUMAN = "human"


def scored_pools(args: argparse.Namespace) -> tuple[list[list[Candidate]], dict[str, Any]]:
    """Every context's pool with the human reply, each candidate carrying its three terms."""
    model, tokenizer, meta = load_checkpoint(args.model)
    data = DataConfig(**meta["data"])
    backward = load_backward(args.model, tokenizer, meta)
    hybrid = load_hybrid(args.model, meta, Settings().retrieval_dir)
    if hybrid is None:
        raise SystemExit(f"{args.model}: no 'hybrid' settings in metrics.json")
    if args.ranker:
        hybrid = replace(hybrid, ranker=Ranker.load(args.ranker))
    # Weights that make every term be computed; the grid reorders afterwards.
    hybrid = replace(hybrid, cfg=replace(hybrid.cfg, forward_weight=1.0, backward_weight=1.0))
    scorer = Seq2SeqScorer(model, tokenizer, backward, data.max_tgt_len)
    cfg = decode_config("hybrid", meta.get("decode"))
    examples = load_split(data, args.split)
    chosen = (
        sorted(random.Random(args.seed).sample(range(len(examples)), args.sample))
        if args.sample
        else list(range(min(args.limit, len(examples))))
    )
    examples = [examples[i] for i in chosen]
    window = data.context_turns
    pools: list[list[Candidate]] = []
    for start in range(0, len(examples), 32):
        batch = examples[start : start + 32]
        sources = [
            encode_context(tokenizer, ex.context[-window:], data.max_src_len) for ex in batch
        ]
        messages = [tokenizer.encode(ex.context[-1].text) for ex in batch]
        nbest, _ = maybe_rerank(
            backward, messages, generate(model, sources, cfg, word_table(tokenizer))
        )
        generated = [
            [*as_candidates(h, tokenizer, data.max_tgt_len), Candidate(ex.response, HUMAN)]
            for h, ex in zip(nbest, batch, strict=True)
        ]
        turns = [[t.text for t in ex.context[-window:]] for ex in batch]
        pools += rank_pools(hybrid, turns, generated, scorer, sources)
        print(json.dumps({"scored": len(pools)}), flush=True)
    if args.dump:
        dump_pools(args, chosen, examples, pools)
    return pools, {"ranker": hybrid.ranker.name, "retrieved": hybrid.cfg.retrieved}


def dump_pools(
    args: argparse.Namespace, chosen: list[int], examples: list, pools: list[list[Candidate]]
) -> None:
    """Each context (its index in the split, its turns) with its whole pool."""
    items = [
        {
            "index": i,
            "context": [{"speaker": t.speaker, "text": t.text} for t in ex.context],
            "candidates": [asdict(c) for c in pool],
        }
        for i, ex, pool in zip(chosen, examples, pools, strict=True)
    ]
    out = {"model": str(args.model), "split": args.split, "items": items}
    Path(args.dump).write_text(json.dumps(out, indent=1, ensure_ascii=False), encoding="utf-8")


def human_rank(pool: list[Candidate], fw: float, bw: float) -> int:
    def score(c: Candidate) -> float:
        s = c.scores
        return s["ranker"] + fw * s.get("forward", 0.0) + bw * s.get("backward", 0.0)

    order = sorted(pool, key=score, reverse=True)
    return next(i for i, c in enumerate(order) if c.source == HUMAN) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="checkpoint folder")
    parser.add_argument("--split", default="valid", help="train | valid | test")
    parser.add_argument("--limit", type=int, default=300, help="first N pairs of the split")
    parser.add_argument("--ranker", help="a fine-tuned ranker folder to score with instead")
    parser.add_argument("--write", action="store_true", help="store the best weights")
    parser.add_argument("--sample", type=int, default=0, help="N contexts drawn across the split")
    parser.add_argument("--seed", type=int, default=0, help="the sample's seed")
    parser.add_argument("--dump", help="write every pool with its terms to this JSON file")
    args = parser.parse_args()
    start = time.perf_counter()
    pools, setup = scored_pools(args)
    print(
        json.dumps(
            {**setup, "contexts": len(pools), "scored_s": round(time.perf_counter() - start)}
        )
    )
    rows = []
    for fw in WEIGHTS:
        for bw in WEIGHTS:
            ranks = [human_rank(pool, fw, bw) for pool in pools]
            row = {
                "forward_weight": fw,
                "backward_weight": bw,
                "hits@1": round(sum(r == 1 for r in ranks) / len(ranks), 4),
                "mean_rank": round(sum(ranks) / len(ranks), 2),
                "pool": round(sum(map(len, pools)) / len(pools), 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    best = max(rows, key=lambda r: (r["hits@1"], -r["mean_rank"]))
    print(json.dumps({"best": best}))
    if args.write:
        path = Path(args.model) / "metrics.json"
        meta = json.loads(path.read_text(encoding="utf-8"))
        kept = {k: v for k, v in meta["hybrid"].items() if k in HybridConfig.__dataclass_fields__}
        cfg = HybridConfig(
            **{
                **kept,
                "forward_weight": best["forward_weight"],
                "backward_weight": best["backward_weight"],
            }
        )
        tuned_on = (
            f"{args.split}, {args.sample} drawn" if args.sample else f"{args.split}[:{args.limit}]"
        )
        meta["hybrid"] = {**asdict(cfg), "tuned_on": tuned_on}
        path.write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
