"""One reply at a time, as a chat user waits for it: latency per reply style on a checkpoint,
beside greedy decoding (the cheapest search) measured in the same run; prints JSON.

    python bench/reply_latency.py [MODEL_DIR] [--contexts 50] [--threads N] [--wide 12x6]

Each context is a test-split source decoded alone (batch of one) with the product's decoding
settings (worker/replies.py), so the numbers are what `make chat` spends per line on this CPU.
When the checkpoint carries a backward model, each style with an n-best is also timed with
MMI reranking (decode + one backward scoring call, as the worker runs them), and the
``varied`` style once more at batch 32 with and without it: ``mmi_overhead`` is the added
share of the decode time, from runs interleaved in the same process. ``--wide BxG`` times
the ``varied`` search widened to B beams in G groups beside it (``vs_varied``: the ratio),
one at a time and at batch 32: what a wider candidate pool for MMI would cost.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from typing import Any

import torch

from s2s_core import DecodeConfig, Seq2Seq, generate, load_checkpoint
from s2s_core.data import encode_context
from s2s_core.decoding import WordTable, word_table
from s2s_core.mmi import Backward, load_backward, maybe_rerank
from s2s_core.recipe import DataConfig, load_split
from worker.replies import STYLES, decode_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", default="models/default", help="checkpoint folder")
    parser.add_argument("--contexts", type=int, default=50, help="test contexts to answer")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--wide", help="also time `varied` widened to BxG (beams x groups)")
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
    # Sampling draws the same candidates with and without MMI, so only the scoring differs.
    if args.wide:
        configs[f"varied_{args.wide}"] = _widened(configs["varied"], args.wide)
    configs = {name: _seeded(cfg) for name, cfg in configs.items()}
    words = word_table(tokenizer)
    generate(model, sources[:2], configs["greedy"], words)  # warm-up
    messages = [tokenizer.encode(ex.context[-1].text) for ex in examples]
    backward = load_backward(args.model, tokenizer, meta)
    result: dict[str, Any] = {"model": args.model, "contexts": len(sources)}
    for name, cfg in configs.items():
        plain, with_mmi = [], []
        for source, message in zip(sources, messages, strict=True):
            plain.append(_timed(model, words, [source], [message], cfg, None))
            if backward and cfg.n_best > 1:
                with_mmi.append(_timed(model, words, [source], [message], cfg, backward))
        result[name] = _summary(plain)
        if with_mmi:
            result[name]["with_mmi"] = _summary(with_mmi)
            result[name]["mmi_overhead"] = round(
                statistics.median(with_mmi) / statistics.median(plain) - 1, 3
            )
    greedy_p50 = result["greedy"]["p50_ms"]
    for style in STYLES:
        result[style]["vs_greedy"] = round(result[style]["p50_ms"] / greedy_p50, 2)
    batched = [name for name in configs if name.startswith("varied")]
    if args.wide:
        wide = result[f"varied_{args.wide}"]
        wide["vs_varied"] = round(wide["p50_ms"] / result["varied"]["p50_ms"], 2)
    if backward and len(sources) >= 32:
        for name in batched:
            cfg = configs[name]
            plain, with_mmi = [], []
            for _ in range(5):
                plain.append(_timed(model, words, sources[:32], messages[:32], cfg, None))
                with_mmi.append(_timed(model, words, sources[:32], messages[:32], cfg, backward))
            result[f"{name}_batch32"] = {
                "p50_ms": round(1000 * statistics.median(plain), 1),
                "with_mmi_p50_ms": round(1000 * statistics.median(with_mmi), 1),
                "mmi_overhead": round(
                    statistics.median(with_mmi) / statistics.median(plain) - 1, 3
                ),
            }
        if args.wide:
            wide, shipped = result[f"varied_{args.wide}_batch32"], result["varied_batch32"]
            wide["vs_varied"] = round(wide["with_mmi_p50_ms"] / shipped["with_mmi_p50_ms"], 2)
    print(json.dumps(result, indent=2))


def _timed(
    model: Seq2Seq,
    words: WordTable,
    sources: list[list[int]],
    messages: list[list[int]],
    cfg: DecodeConfig,
    backward: Backward | None,
) -> float:
    start = time.perf_counter()
    maybe_rerank(backward, messages, generate(model, sources, cfg, words))
    return time.perf_counter() - start


def _widened(cfg: DecodeConfig, wide: str) -> DecodeConfig:
    try:
        beams, groups = (int(n) for n in wide.lower().split("x"))
        return replace(cfg, beam_size=beams, n_best=beams, num_groups=groups)
    except ValueError as exc:
        raise SystemExit(f"--wide {wide}: want BEAMSxGROUPS, e.g. 12x6 ({exc})") from None


def _seeded(cfg: DecodeConfig) -> DecodeConfig:
    return replace(cfg, seed=0) if cfg.strategy == "sample" else cfg


def _summary(seconds: list[float]) -> dict[str, Any]:
    seconds = sorted(seconds)
    return {
        "p50_ms": round(1000 * statistics.median(seconds), 1),
        "p90_ms": round(1000 * seconds[int(0.9 * (len(seconds) - 1))], 1),
        "max_ms": round(1000 * seconds[-1], 1),
    }


if __name__ == "__main__":
    main()
