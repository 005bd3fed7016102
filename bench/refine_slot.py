"""How much a refine model reads its slot: the perplexity of validation replies with the slot
empty, holding what retrieval finds (as at reply time), and holding the true reply; prints
JSON.

    python bench/refine_slot.py RUN [--limit 1000] [--threads 2]

A model that ignores its retrieved reply scores the three alike; one that reads it scores
the true reply far lower, and the retrieved one somewhat lower than the empty slot.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from s2s_contract.settings import Settings
from s2s_core import load_checkpoint
from s2s_core.data import PairDataset
from s2s_core.metrics import perplexity
from s2s_core.recipe import DataConfig, load_split
from s2s_core.refine import load_refiner
from s2s_core.train import evaluate_loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a refine checkpoint")
    parser.add_argument("--limit", type=int, default=1000, help="validation pairs")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer, meta = load_checkpoint(args.model)
    refiner = load_refiner(meta, model.config, tokenizer, Settings().retrieval_dir)
    if refiner is None:
        raise SystemExit(f"{args.model}: not a refine model")
    data = DataConfig(**meta["data"])
    examples = load_split(data, "valid")[: args.limit]
    found = refiner.retrieve([[t.text for t in ex.context] for ex in examples])
    slots = {
        "empty": [""] * len(examples),
        "retrieved": [texts[0] if texts else "" for texts in found],
        "true_reply": [ex.response for ex in examples],
    }
    result: dict[str, object] = {"model": args.model, "pairs": len(examples)}
    for name, texts in slots.items():
        start = time.perf_counter()
        dataset = PairDataset.from_examples(
            examples, tokenizer, data.max_src_len, data.max_tgt_len, (texts, refiner.marker)
        )
        loss = evaluate_loss(model, dataset, 64, torch.device("cpu"))
        result[name] = {
            "perplexity": round(perplexity(loss), 2),
            "seconds": round(time.perf_counter() - start),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
