"""What the hybrid pool costs: the ``hybrid`` style beside ``varied`` (the pure-Seq2Seq
style it extends) on one checkpoint, each as the worker's engine runs it, and the resident
memory it adds; prints JSON.

    python bench/hybrid_latency.py [MODEL_DIR] [--contexts 40] [--threads 1]

``varied`` is decode + MMI reranking; ``hybrid`` is the same plus corpus retrieval, the
ranker over every candidate and, when the checkpoint weighs them, the Seq2Seq terms of the
corpus replies. Each test context is answered alone (batch of one, as `make chat` does),
the styles interleaved, then a batch of 32 five times each; ``vs_varied`` is the ratio
of medians measured in this run. The corpus replies' vectors are precomputed, as `s2s
models index` does for a worker, for the rows these contexts retrieve (so the bench needs
no full vectors build). Memory is the process' resident set after loading the
checkpoint and again after loading the hybrid pool (index from the cache, ranker weights).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from typing import Any

import torch

from s2s_contract.settings import Settings
from s2s_core import generate, load_checkpoint
from s2s_core.choice import as_candidates
from s2s_core.data import encode_context
from s2s_core.decoding import word_table
from s2s_core.hybrid import Hybrid, Seq2SeqScorer, load_hybrid, rank_pools
from s2s_core.mmi import load_backward, maybe_rerank
from s2s_core.recipe import DataConfig, load_split
from worker.replies import decode_config


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(row for row in status if row.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", default="models/default", help="checkpoint folder")
    parser.add_argument("--contexts", type=int, default=40, help="test contexts to answer")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer, meta = load_checkpoint(args.model)
    backward = load_backward(args.model, tokenizer, meta)
    memory = {"checkpoint_mb": round(rss_mb())}
    hybrid = load_hybrid(args.model, meta, Settings().retrieval_dir)
    if hybrid is None:
        raise SystemExit(f"{args.model}: no 'hybrid' settings in metrics.json")
    memory["with_hybrid_mb"] = round(rss_mb())
    data = DataConfig(**meta["data"])
    examples = load_split(data, "test")[: max(args.contexts, 32)]
    window = data.context_turns
    sources = [encode_context(tokenizer, ex.context[-window:], data.max_src_len) for ex in examples]
    turns = [[t.text for t in ex.context[-window:]] for ex in examples]
    cfg = decode_config("hybrid", meta.get("decode"))
    words = word_table(tokenizer)
    scorer = Seq2SeqScorer(model, tokenizer, backward, data.max_tgt_len)

    def answer(rows: slice, with_pool: Hybrid | None) -> float:
        start = time.perf_counter()
        messages = [tokenizer.encode(t[-1]) for t in turns[rows]]
        nbest, _ = maybe_rerank(backward, messages, generate(model, sources[rows], cfg, words))
        if with_pool is not None:
            pools = [as_candidates(h, tokenizer, data.max_tgt_len) for h in nbest]
            rank_pools(with_pool, turns[rows], pools, scorer, sources[rows])
        return time.perf_counter() - start

    pool = with_vectors(hybrid, turns)
    answer(slice(0, 2), pool)  # warm-up
    result: dict[str, Any] = {"model": args.model, "contexts": args.contexts, "memory": memory}
    for size, runs in ((1, args.contexts), (32, 5)):
        times: dict[str, list[float]] = {"varied": [], "hybrid": []}
        for i in range(runs):
            rows = slice(i, i + 1) if size == 1 else slice(0, 32)
            times["varied"].append(answer(rows, None))
            times["hybrid"].append(answer(rows, pool))
        p50 = {name: 1000 * statistics.median(t) for name, t in times.items()}
        result[f"batch{size}"] = {
            **{f"{name}_p50_ms": round(ms, 1) for name, ms in p50.items()},
            "vs_varied": round(p50["hybrid"] / p50["varied"], 2),
        }
    print(json.dumps(result, indent=2))


def with_vectors(hybrid: Hybrid, turns: list[list[str]]) -> Hybrid:
    """``hybrid`` holding precomputed vectors of the corpus replies ``turns`` retrieve, as a
    worker holds every corpus reply's (built by `s2s models index`)."""
    if hybrid.vectors is not None:
        return hybrid
    rows = sorted(
        {hit.row for hits in hybrid.index.search(turns, hybrid.cfg.retrieved) for hit in hits}
    )
    found = hybrid.ranker.embed([hybrid.index.replies[r] for r in rows])
    vectors = torch.zeros(len(hybrid.index), found.size(1), dtype=torch.float16)
    vectors[rows] = found.half()
    return replace(hybrid, vectors=vectors)


if __name__ == "__main__":
    main()
