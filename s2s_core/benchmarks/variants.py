"""Each architecture switch measured against the vanilla textbook model, same data, seed and
steps: held-out exact match (greedy) and validation perplexity on the reverse task, where
the context-vector bottleneck shows (sequences of 5-15 tokens over 20 symbols)."""

from __future__ import annotations

import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import torch

from s2s_core.corpora import synthetic_sequences
from s2s_core.data import PairDataset, target_ids
from s2s_core.decoding import DecodeConfig, generate
from s2s_core.metrics import perplexity
from s2s_core.model import ModelConfig, Seq2Seq
from s2s_core.tokenizer import Tokenizer
from s2s_core.train import TrainConfig, Trainer, evaluate_loss

VARIANTS: dict[str, dict[str, Any]] = {
    "vanilla": {},
    "gru": {"cell": "gru"},
    "bidirectional": {"bidirectional": True},
    "tied": {"tie_embeddings": True},
    "luong": {"attention": "luong"},
    "luong+bidirectional+tied": {
        "attention": "luong",
        "bidirectional": True,
        "tie_embeddings": True,
    },
}
SYMBOLS, MIN_LEN, MAX_LEN = 20, 5, 15


def _dataset(n: int, seed: int) -> tuple[PairDataset, list[tuple[list[int], list[int]]]]:
    pairs = synthetic_sequences("reverse", n, SYMBOLS, MIN_LEN, MAX_LEN, seed)
    return PairDataset([(s, target_ids(t, MAX_LEN + 2)) for s, t in pairs]), pairs


def measure(name: str, options: dict[str, Any], steps: int, tokenizer: Tokenizer) -> dict[str, Any]:
    torch.manual_seed(0)
    vocab = 4 + SYMBOLS
    base = {"emb_dim": 32, "hidden_dim": 64, "n_layers": 1, "dropout": 0.0}
    model = Seq2Seq(ModelConfig(vocab, vocab, **{**base, **options}))
    train, _ = _dataset(20_000, 1)
    valid, pairs = _dataset(300, 99)
    cfg = TrainConfig(epochs=100, batch_size=32, lr=3e-3, warmup_steps=50, max_steps=steps)
    start = time.perf_counter()
    with TemporaryDirectory() as tmp:
        Trainer(model, tokenizer, train, valid, cfg, Path(tmp), show_progress=False).run()
    seconds = time.perf_counter() - start
    model.eval()
    outputs = generate(
        model, [s for s, _ in pairs], DecodeConfig(strategy="greedy", max_len=MAX_LEN + 2)
    )
    hits = sum(h[0].tokens == [*t, 2] for (_, t), h in zip(pairs, outputs, strict=True))
    return {
        "variant": name,
        "parameters": model.num_parameters(),
        "exact_match": hits / len(pairs),
        "valid_ppl": perplexity(evaluate_loss(model, valid, 64, torch.device("cpu"))),
        "train_seconds": seconds,
    }


def run(steps: int = 1500, names: tuple[str, ...] | None = None) -> dict[str, Any]:
    tokenizer = Tokenizer.train(["only written into checkpoints"], 300)
    rows = [measure(n, VARIANTS[n], steps, tokenizer) for n in (names or tuple(VARIANTS))]
    return {"benchmark": "variants", "task": "reverse", "steps": steps, "results": rows}
