"""Train small models on synthetic tasks in seconds, through the real trainer."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from s2s_core import DecodeConfig, ModelConfig, Seq2Seq, Tokenizer, generate
from s2s_core.corpora import synthetic_sequences
from s2s_core.data import PairDataset, target_ids
from s2s_core.train import TrainConfig, Trainer

N_SYMBOLS = 20
VOCAB = 4 + N_SYMBOLS


def synthetic_set(task: str, n: int, seed: int, min_len: int, max_len: int) -> PairDataset:
    if task == "markov":
        pairs = markov_pairs(n, seed)
    else:
        pairs = synthetic_sequences(task, n, N_SYMBOLS, min_len, max_len, seed)
    return PairDataset([(s, target_ids(t, max_len + 2)) for s, t in pairs])


def train_synthetic(
    task: str,
    out_dir: Path,
    tokenizer: Tokenizer,
    steps: int | None,
    min_len: int = 5,
    max_len: int = 15,
    max_minutes: float | None = None,
    **model_options: object,
) -> Seq2Seq:
    torch.manual_seed(0)
    options = {"emb_dim": 32, "hidden_dim": 64, "n_layers": 1, "dropout": 0.0, **model_options}
    model = Seq2Seq(ModelConfig(VOCAB, VOCAB, **options))  # type: ignore[arg-type]
    cfg = TrainConfig(
        epochs=100,
        batch_size=32,
        lr=3e-3,
        warmup_steps=50,
        max_steps=steps,
        max_minutes=max_minutes,
    )
    trainer = Trainer(
        model,
        tokenizer,
        synthetic_set(task, 20_000, 1, min_len, max_len),
        synthetic_set(task, 200, 2, min_len, max_len),
        cfg,
        out_dir,
        show_progress=False,
    )
    trainer.run()
    return model.eval()


def exact_match(model: Seq2Seq, task: str, min_len: int, max_len: int) -> float:
    """Held-out sequences (another seed) decoded greedily, compared whole."""
    pairs = synthetic_sequences(task, 200, N_SYMBOLS, min_len, max_len, seed=99)
    cfg = DecodeConfig(strategy="greedy", max_len=max_len + 2)
    outputs = generate(model, [s for s, _ in pairs], cfg)
    hits = sum(hyps[0].tokens == [*t, 2] for (_, t), hyps in zip(pairs, outputs, strict=True))
    return hits / len(pairs)


def markov_pairs(n: int, seed: int) -> list[tuple[list[int], list[int]]]:
    """A chit-chat stand-in with many good replies: the source is one symbol, the target a
    walk of a fixed random Markov chain from it (three likely successors per symbol)."""
    chain = random.Random(0)
    successors = {s: chain.sample(range(4, VOCAB), 3) for s in range(4, VOCAB)}
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        start = rng.randrange(4, VOCAB)
        walk, symbol = [], start
        for _ in range(rng.randint(4, 8)):
            symbol = rng.choices(successors[symbol], weights=(0.5, 0.3, 0.2))[0]
            walk.append(symbol)
        pairs.append(([start], walk))
    return pairs
