"""What retrieve-and-refine costs: a refine checkpoint's ``varied`` and ``hybrid`` styles
beside a plain checkpoint's, each as the worker's engine runs them; prints JSON.

    python bench/refine_latency.py BASELINE_DIR REFINE_DIR [--contexts 40] [--threads 1]

A refine model's decode retrieves the message's best corpus replies and decodes on each of
them with a share of the style's beams (``s2s_core.refine``); the plain model decodes the
conversation alone. Both then rerank with MMI and, for ``hybrid``, rank the corpus pool.
Each test context is answered alone (batch of one), the four systems interleaved, then a
batch of 32 five times each; ``vs_baseline`` is the ratio of medians measured in this run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from s2s_contract.settings import Settings
from s2s_core import generate, load_checkpoint
from s2s_core.choice import as_candidates
from s2s_core.data import encode_context
from s2s_core.decoding import word_table
from s2s_core.hybrid import Seq2SeqScorer, load_hybrid, rank_pools
from s2s_core.mmi import load_backward, maybe_rerank
from s2s_core.recipe import DataConfig, load_split
from s2s_core.refine import load_refiner
from worker.replies import decode_config


def answerer(folder: str, examples: list[Any]) -> Any:
    """A function answering ``examples[rows]`` as the engine would, with or without the
    hybrid pool; returns seconds."""
    model, tokenizer, meta = load_checkpoint(folder)
    backward = load_backward(folder, tokenizer, meta)
    cache = Settings().retrieval_dir
    hybrid = load_hybrid(Path(folder), meta, cache)
    ranker = (hybrid.ranker, hybrid.vectors) if hybrid else None
    refiner = load_refiner(meta, model.config, tokenizer, cache, ranker, Path(folder))
    data = DataConfig(**meta["data"])
    window = data.context_turns
    sources = [encode_context(tokenizer, ex.context[-window:], data.max_src_len) for ex in examples]
    turns = [[t.text for t in ex.context[-window:]] for ex in examples]
    cfg = decode_config("varied", meta.get("decode"))
    words = word_table(tokenizer)
    scorer = Seq2SeqScorer(model, tokenizer, backward, data.max_tgt_len)

    def answer(rows: slice, pool: bool) -> float:
        start = time.perf_counter()
        messages = [tokenizer.encode(t[-1]) for t in turns[rows]]
        if refiner is None:
            decoded = generate(model, sources[rows], cfg, words)
        else:
            decoded, _ = refiner.generate(model, sources[rows], turns[rows], cfg, words)
        nbest, _ = maybe_rerank(backward, messages, decoded)
        if pool and hybrid is not None:
            pools = [as_candidates(h, tokenizer, data.max_tgt_len) for h in nbest]
            rank_pools(hybrid, turns[rows], pools, scorer, sources[rows])
        return time.perf_counter() - start

    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("baseline", help="a plain checkpoint folder (e.g. models/default)")
    parser.add_argument("refine", help="a refine checkpoint folder")
    parser.add_argument("--contexts", type=int, default=40, help="test contexts to answer")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = DataConfig(**load_checkpoint(args.baseline)[2]["data"])
    examples = load_split(data, "test")[: max(args.contexts, 32)]
    systems = {
        "baseline": answerer(args.baseline, examples),
        "refine": answerer(args.refine, examples),
    }
    for answer in systems.values():
        answer(slice(0, 2), True)  # warm-up
    result: dict[str, Any] = {"baseline": args.baseline, "refine": args.refine}
    for size, runs in ((1, args.contexts), (32, 5)):
        times: dict[str, list[float]] = {}
        for i in range(runs):
            rows = slice(i, i + 1) if size == 1 else slice(0, 32)
            for name, answer in systems.items():
                for style, pool in (("varied", False), ("hybrid", True)):
                    times.setdefault(f"{name}_{style}", []).append(answer(rows, pool))
        p50 = {name: 1000 * statistics.median(t) for name, t in times.items()}
        result[f"batch{size}"] = {
            **{f"{name}_p50_ms": round(ms, 1) for name, ms in p50.items()},
            "refine_varied_vs_baseline_varied": round(
                p50["refine_varied"] / p50["baseline_varied"], 2
            ),
            "refine_hybrid_vs_baseline_hybrid": round(
                p50["refine_hybrid"] / p50["baseline_hybrid"], 2
            ),
            "refine_hybrid_vs_baseline_varied": round(
                p50["refine_hybrid"] / p50["baseline_varied"], 2
            ),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
