"""One reply at a time, as a chat user waits for it: latency per reply style on a checkpoint,
beside greedy decoding (the cheapest search) measured in the same run; prints JSON.

    python bench/reply_latency.py [MODEL_DIR] [--contexts 50] [--threads N]

Each context is a test-split source decoded alone (batch of one) with the product's decoding
settings (worker/replies.py), so the numbers are what `make chat` spends per line on this CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from s2s_core import DecodeConfig, generate, load_checkpoint
from s2s_core.data import encode_context
from s2s_core.recipe import DataConfig, load_split
from worker.replies import STYLES, decode_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", default="models/default", help="checkpoint folder")
    parser.add_argument("--contexts", type=int, default=50, help="test contexts to answer")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer, meta = load_checkpoint(args.model)
    data = DataConfig(**meta["data"])
    examples = load_split(data, "test")[: args.contexts]
    sources = [encode_context(tokenizer, ex.context, data.max_src_len) for ex in examples]
    focused = decode_config("focused", meta.get("decode")).to_dict()
    greedy = {**focused, "strategy": "greedy", "n_best": 1}
    configs = {"greedy": DecodeConfig.from_dict(greedy)}
    configs |= {style: decode_config(style, meta.get("decode")) for style in STYLES}
    generate(model, sources[:2], configs["greedy"])  # warm-up
    result: dict[str, object] = {"model": args.model, "contexts": len(sources)}
    for name, cfg in configs.items():
        seconds = []
        for source in sources:
            start = time.perf_counter()
            generate(model, [source], cfg)
            seconds.append(time.perf_counter() - start)
        seconds.sort()
        result[name] = {
            "p50_ms": round(1000 * statistics.median(seconds), 1),
            "p90_ms": round(1000 * seconds[int(0.9 * (len(seconds) - 1))], 1),
            "max_ms": round(1000 * seconds[-1], 1),
        }
    greedy_p50 = result["greedy"]["p50_ms"]  # type: ignore[index]
    for style in STYLES:
        result[style]["vs_greedy"] = round(result[style]["p50_ms"] / greedy_p50, 2)  # type: ignore[index]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
