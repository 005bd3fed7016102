"""Decoding settings compared on a split of a chit-chat checkpoint; prints one JSON line per
setting (BLEU, corpus-level distinct-1/2 over whitespace words, mean length, share of distinct
top replies, the first replies).

    python bench/tune_decoding.py MODEL_DIR [--split valid] [--limit 200]

Every setting shares the product's reply presets (worker/replies.py: max_len, min_len,
no_repeat_ngram) and a beam of 6, so only the search differs.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from s2s_core import DecodeConfig, load_checkpoint
from s2s_core.evaluate import evaluate_generation
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="checkpoint folder")
    parser.add_argument("--split", default="valid", help="train | valid | test")
    parser.add_argument("--limit", type=int, default=200, help="first N pairs of the split")
    args = parser.parse_args()
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
        r = evaluate_generation(model, tokenizer, examples, data, cfg)
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
