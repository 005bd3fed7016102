"""Decoding throughput: batched search against the textbook per-hypothesis loops and the
machine's compute floor, in the same run.

Every run blocks ``<eos>`` until the last step, so all decode exactly ``max_len`` steps.
The floor is the decoder's matrix-multiply FLOPs per decoded token times the tokens a
sentence needs (beam rows × steps), divided by the GEMM rate measured here: the most
sentences per second this machine could decode without a cheaper model.
"""

from __future__ import annotations

import random
import time
from typing import Any

import torch

from s2s_core.benchmarks.sizes import FULL, QUICK, sized_model
from s2s_core.benchmarks.textbook import textbook_beam, textbook_greedy
from s2s_core.decoding import DecodeConfig, generate
from s2s_core.model import ModelConfig, Seq2Seq

STRATEGIES: dict[str, dict[str, Any]] = {
    "greedy": {"strategy": "greedy"},
    "beam5": {"beam_size": 5},
    "beam5_sibling": {"beam_size": 5, "diversity": "sibling"},
    "beam5_hamming": {"beam_size": 5, "diversity": "hamming"},
}


def gemm_flops_per_s(n: int = 1024, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm up
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def decoder_flops_per_token(cfg: ModelConfig) -> float:
    """Multiply-adds of one decoder step for one row, times two: LSTM gates and output layer."""
    h, e, layers = cfg.hidden_dim, cfg.emb_dim, cfg.n_layers
    gates = 4 * h * (e + h) + (layers - 1) * 4 * h * (2 * h)
    return 2.0 * (gates + h * cfg.tgt_vocab_size)


def _time(fn: Any, min_seconds: float) -> float:
    """Seconds per call, repeating until ``min_seconds`` have passed (after one warm-up)."""
    fn()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / calls


def run(
    quick: bool = False, batches: tuple[int, ...] | None = None, max_len: int = 20
) -> dict[str, Any]:
    size = QUICK if quick else FULL
    batches = batches or ((1, 8) if quick else (1, 8, 64, 256))
    torch.manual_seed(0)
    model = sized_model(size, dropout=0.0).eval()
    rng = random.Random(0)
    sources = [
        [rng.randrange(4, size["src_vocab"]) for _ in range(20)] for _ in range(max(batches))
    ]
    min_s = 0.2 if quick else 2.0
    result: dict[str, Any] = {
        "benchmark": "decode",
        "model": size,
        "max_len": max_len,
        "threads": torch.get_num_threads(),
    }
    gemm = gemm_flops_per_s(256 if quick else 1024)
    per_token = decoder_flops_per_token(model.config)
    result["gemm_gflops"] = gemm / 1e9
    # Textbook baselines, one sentence (greedy) or one hypothesis (beam) at a time.
    n_book = 2 if quick else 4
    book_greedy = (
        _time(
            lambda: [textbook_greedy(model, s, max_len, max_len - 1) for s in sources[:n_book]],
            min_s,
        )
        / n_book
    )
    book_beam = (
        _time(
            lambda: [textbook_beam(model, s, 5, max_len, max_len - 1) for s in sources[:n_book]],
            min_s,
        )
        / n_book
    )
    result["textbook"] = {
        "greedy_sentences_per_s": 1 / book_greedy,
        "beam5_sentences_per_s": 1 / book_beam,
    }
    for name, options in STRATEGIES.items():
        beam = options.get("beam_size", 1)
        cfg = DecodeConfig(max_len=max_len, min_len=max_len - 1, **options)
        floor = gemm / (per_token * beam * max_len)
        rows = {}
        for batch in batches:
            seconds = _time(lambda b=batch, c=cfg: generate(model, sources[:b], c), min_s)
            rate = batch / seconds
            baseline = 1 / (book_greedy if name == "greedy" else book_beam)
            rows[str(batch)] = {
                "sentences_per_s": rate,
                "x_textbook": rate / baseline,
                "share_of_floor": rate / floor,
            }
        result[name] = {"floor_sentences_per_s": floor, "by_batch": rows}
    result["attention_memory"] = attention_memory(size, batches, max_len, min_s)
    plain = result["beam5"]["by_batch"]
    for name in ("beam5_sibling", "beam5_hamming"):
        result[name]["cost_vs_plain_beam"] = {
            b: plain[b]["sentences_per_s"] / r["sentences_per_s"] - 1
            for b, r in result[name]["by_batch"].items()
        }
    return result


class _CopiesMemory(torch.nn.Module):
    """The baseline beam search stepped on: the encoder memory copied with the RNN state at
    every step (``within_sources`` ignored), as before the memory stayed put."""

    def __init__(self, model: Seq2Seq) -> None:
        super().__init__()
        self.model = model
        self.src_vocab_size, self.tgt_vocab_size = model.src_vocab_size, model.tgt_vocab_size

    def encode(self, src: torch.Tensor) -> Any:
        return self.model.encode(src)

    def decode_step(self, tokens: torch.Tensor, state: Any) -> Any:
        return self.model.decode_step(tokens, state)

    def reorder_state(self, state: Any, index: torch.Tensor, within_sources: bool = False) -> Any:
        return self.model.reorder_state(state, index)


def attention_memory(
    size: dict[str, int], batches: tuple[int, ...], max_len: int, min_s: float
) -> dict[str, Any]:
    """Beam search (6 beams, Hamming groups, as the worker decodes) with Luong attention on
    64-token sources: the memory kept in place against copied every step."""
    torch.manual_seed(0)
    model = sized_model(size, dropout=0.0, attention="luong").eval()
    rng = random.Random(1)
    sources = [[rng.randrange(4, size["src_vocab"]) for _ in range(64)] for _ in range(32)]
    cfg = DecodeConfig(
        max_len=max_len, min_len=max_len - 1, beam_size=6, diversity="hamming", num_groups=3
    )
    rows = {}
    for batch in sorted({1, min(32, max(batches))}):
        kept = _time(lambda b=batch: generate(model, sources[:b], cfg), min_s)
        copied = _time(lambda b=batch: generate(_CopiesMemory(model), sources[:b], cfg), min_s)
        rows[str(batch)] = {
            "sentences_per_s": batch / kept,
            "copying_memory_sentences_per_s": batch / copied,
            "speedup": copied / kept,
        }
    return {"source_len": 64, "by_batch": rows}
