"""Decoding settings compared on a split of a chit-chat checkpoint; prints one JSON line per
setting (BLEU, corpus-level distinct-1/2 over whitespace words, mean length, share of distinct
top replies, the first replies).

    python bench/tune_decoding.py MODEL_DIR [--split valid] [--limit 200]

Every setting shares the product's reply presets (worker/replies.py: max_len, min_len,
no_repeat_ngram) and a beam of 6, so only the search differs.

    python bench/tune_decoding.py MODEL_DIR --mmi [--beams 12 --groups 6] [--write]

tunes MMI reranking instead: the ``varied`` n-best of each validation context is decoded
once and scored once by the checkpoint's backward model; every (weight, length_bonus) of
the grid then reorders it, the product's choice picks the reply, and a line reports the
quality rates and response-selection relevance. The best setting (highest relevance among
those with distinct replies >= 80%, sign-off, greeting and repetition rates <= 5%, and replies
no longer on average than ``MAX_LENGTH_RATIO`` times the human replies to the same contexts:
relevance rises with length, and past that the replies ramble) is printed last; ``--write``
stores it as ``mmi`` in the checkpoint's metrics.json, where the worker, ``s2s chat``,
``s2s eval`` and replay read it.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from s2s_core import DecodeConfig, generate, load_checkpoint
from s2s_core.choice import as_candidates
from s2s_core.data import encode_context
from s2s_core.decoding import word_table
from s2s_core.evaluate import choose_reply, evaluate_generation, text_metrics
from s2s_core.mmi import Reranked, load_backward, mmi_rerank, reorder
from s2s_core.recipe import DataConfig, load_split
from worker.replies import decode_config

GRID: list[tuple[str, dict[str, Any]]] = [
    ("greedy", {"strategy": "greedy", "n_best": 1, "diversity": "none"}),
    ("beam6", {}),
    ("sibling g=0.5", {"diversity": "sibling", "diversity_strength": 0.5}),
    ("sibling g=1", {"diversity": "sibling", "diversity_strength": 1.0}),
    ("hamming G3 l=0.5", {"diversity": "hamming", "num_groups": 3, "diversity_strength": 0.5}),
    ("hamming G3 l=1", {"diversity": "hamming", "num_groups": 3, "diversity_strength": 1.0}),
    ("hamming G6 l=1", {"diversity": "hamming", "num_groups": 6, "diversity_strength": 1.0}),
    ("hamming G3 l=2", {"diversity": "hamming", "num_groups": 3, "diversity_strength": 2.0}),
]


MMI_WEIGHTS = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95)
MMI_LENGTH_BONUS = (0.0, 0.01, 0.02, 0.05)
# A reply may be this much longer, on average, than people's replies to the same contexts.
MAX_LENGTH_RATIO = 1.25


def tune_mmi(args: argparse.Namespace) -> None:
    model, tokenizer, meta = load_checkpoint(args.model)
    backward = load_backward(args.model, tokenizer, meta)
    if backward is None:
        raise SystemExit(f"{args.model} carries no backward model (backward/)")
    data = DataConfig(**meta["data"])
    examples = load_split(data, args.split)[: args.limit]
    cfg = decode_config("varied", meta.get("decode"))
    if args.beams:
        cfg = replace(cfg, beam_size=args.beams, n_best=args.beams)
    if args.groups:
        cfg = replace(cfg, num_groups=args.groups)
    sources = [encode_context(tokenizer, ex.context, data.max_src_len) for ex in examples]
    messages = [tokenizer.encode(ex.context[-1].text) for ex in examples]
    start = time.perf_counter()
    scored: list[list[Reranked]] = []  # per example: candidates with both scores
    neutral = backward.with_settings(weight=0.0, length_bonus=0.0)
    for i in range(0, len(sources), 64):
        nbest = generate(model, sources[i : i + 64], cfg, word_table(tokenizer))
        scored += mmi_rerank(neutral, messages[i : i + 64], nbest)
    print(json.dumps({"decoded_and_scored_s": round(time.perf_counter() - start, 1)}))
    results = []
    for weight in MMI_WEIGHTS:
        for bonus in MMI_LENGTH_BONUS:
            if weight == 0.0 and bonus:
                continue
            setting = replace(backward.cfg, weight=weight, length_bonus=bonus)
            texts = []
            for ex, candidates in zip(examples, scored, strict=True):
                ranked = reorder(candidates, setting)
                pool = as_candidates(ranked, tokenizer, data.max_tgt_len)
                texts.append(choose_reply(ex, pool).text)
            row = {
                "weight": weight,
                "length_bonus": bonus,
                **_rounded(text_metrics(examples, texts)),
            }
            row["first_replies"] = texts[:3]
            results.append(row)
            print(json.dumps(row), flush=True)
    human_words = sum(len(ex.response.split()) for ex in examples) / len(examples)
    print(json.dumps({"human_mean_len_words": round(human_words, 2)}))
    fit = [r for r in results if _acceptable(r, human_words)] or results
    best = max(fit, key=lambda r: r["relevance"]["hits@1/10"])
    chosen = {"weight": best["weight"], "length_bonus": best["length_bonus"]}
    print(json.dumps({"best": chosen, "hits@1/10": best["relevance"]["hits@1/10"]}))
    if args.write:
        path = Path(args.model) / "metrics.json"
        meta["mmi"] = {
            **chosen,
            "content_only": backward.cfg.content_only,
            "tuned_on": f"{args.split}[:{args.limit}]",
        }
        path.write_text(json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False))


def _acceptable(row: dict[str, Any], human_words: float) -> bool:
    return (
        row["distinct_replies"] >= 0.8
        and row["mean_len_words"] <= MAX_LENGTH_RATIO * human_words
        and all(
            row[k] <= 0.05
            for k in ("sign_off_rate", "greeting_to_non_greeting_rate", "repetition_rate")
        )
    )


def _rounded(metrics: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, float):
            out[key] = round(value, 4)
        elif isinstance(value, dict):
            out[key] = _rounded(value)
        elif key != "distinct_scope":
            out[key] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="checkpoint folder")
    parser.add_argument("--split", default="valid", help="train | valid | test")
    parser.add_argument("--limit", type=int, default=200, help="first N pairs of the split")
    parser.add_argument("--mmi", action="store_true", help="tune MMI reranking instead")
    parser.add_argument("--write", action="store_true", help="--mmi: store the best setting")
    parser.add_argument("--groups", type=int, help="--mmi: Hamming groups of the n-best")
    parser.add_argument("--beams", type=int, help="--mmi: beams (and n-best) of the n-best")
    args = parser.parse_args()
    if args.mmi:
        tune_mmi(args)
        return
    model, tokenizer, meta = load_checkpoint(args.model)
    data = DataConfig(**meta["data"])
    examples = load_split(data, args.split)[: args.limit]
    base = {**decode_config("focused").to_dict(), "beam_size": 6, "n_best": 6}
    for name, changes in GRID:
        settings = {**base, **changes}
        if settings.get("diversity") != "hamming":
            settings["num_groups"] = None
        cfg = DecodeConfig.from_dict(settings)
        start = time.perf_counter()
        r = evaluate_generation(model, tokenizer, examples, data, cfg, relevance=False)
        print(
            json.dumps(
                {
                    "setting": name,
                    "bleu": round(r["bleu"], 2),
                    "distinct_1": round(r["distinct_1"], 3),
                    "distinct_2": round(r["distinct_2"], 3),
                    "mean_len_words": round(r["mean_len_words"], 2),
                    "distinct_replies": round(r["distinct_replies"], 3),
                    "seconds": round(time.perf_counter() - start, 1),
                    "first_replies": [s["reply"] for s in r["samples"][:4]],
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
