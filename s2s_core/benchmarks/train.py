"""Training throughput: our trainer against the textbook loop, in the same run.

(a) equal-length random batches: the fused decoder against one decoder call per step;
(b) chit-chat batches, counted in real (non-padding) target tokens per second: our trainer
    with length buckets and packed sources against the textbook's random batches.
"""

from __future__ import annotations

import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
import torch

from s2s_core.benchmarks.sizes import FULL, QUICK, sized_model
from s2s_core.benchmarks.textbook import TextbookSeq2Seq, textbook_train_step
from s2s_core.data import BucketBatchSampler, PairDataset, collate
from s2s_core.model import Seq2Seq
from s2s_core.special import PAD_ID
from s2s_core.tokenizer import Tokenizer
from s2s_core.train import Batch, TrainConfig, Trainer


def _models(size: dict[str, int]) -> tuple[Seq2Seq, TextbookSeq2Seq]:
    torch.manual_seed(0)
    ours = sized_model(size, dropout=0.1)
    textbook = TextbookSeq2Seq(
        size["src_vocab"],
        size["tgt_vocab"],
        size["emb"],
        size["hidden"],
        size["layers"],
        dropout=0.1,
    )
    return ours, textbook


def _time_interleaved(
    ours: Any,
    ours_batches: list[tuple[torch.Tensor, torch.Tensor]],
    book: Any,
    book_batches: list[tuple[torch.Tensor, torch.Tensor]],
) -> dict[str, tuple[float, int]]:
    """Alternates one step of each (after one untimed warm-up step each), so that a load
    change on a shared machine hits both sides alike. Returns seconds and real target
    tokens per side."""
    totals = {"ours": [0.0, 0], "textbook": [0.0, 0]}
    sides = (("ours", ours, ours_batches), ("textbook", book, book_batches))
    for i in range(len(ours_batches)):
        for name, step, batches in sides:
            src, tgt = batches[i]
            start = time.perf_counter()
            step(src, tgt)
            if i > 0:
                totals[name][0] += time.perf_counter() - start
                totals[name][1] += int((tgt[:, 1:] != PAD_ID).sum())
    return {k: (float(v[0]), int(v[1])) for k, v in totals.items()}


def _trainer_step(model: Seq2Seq, data: PairDataset, tokenizer: Tokenizer, out: Path) -> Any:
    cfg = TrainConfig(warmup_steps=0)
    trainer = Trainer(model, tokenizer, data, data, cfg, out, show_progress=False)

    def step(src: torch.Tensor, tgt: torch.Tensor) -> None:
        trainer.train_step(Batch(src, tgt, int((tgt[:, 1:] != PAD_ID).sum())))

    return step


def _textbook_step(model: TextbookSeq2Seq) -> Any:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return lambda src, tgt: textbook_train_step(model, optimizer, src, tgt)


def equal_length(
    size: dict[str, int], steps: int, batch: int = 64, length: int = 20
) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(0)
    batches = [
        (
            torch.randint(4, size["src_vocab"], (batch, length), generator=gen),
            torch.randint(4, size["tgt_vocab"], (batch, length), generator=gen),
        )
        for _ in range(steps + 1)
    ]
    ours, textbook = _models(size)
    with TemporaryDirectory() as tmp:
        tokenizer = Tokenizer.train(["the trainer writes it into checkpoints only"], 300)
        step = _trainer_step(ours, PairDataset([([4], [1, 2])]), tokenizer, Path(tmp))
        timed = _time_interleaved(step, batches, _textbook_step(textbook), batches)
    (ours_s, tokens), (book_s, _) = timed["ours"], timed["textbook"]
    return {
        "batch": batch,
        "length": length,
        "steps": steps,
        "ours_tokens_per_s": tokens / ours_s,
        "textbook_tokens_per_s": tokens / book_s,
        "speedup": book_s / ours_s,
    }


def chitchat(size: dict[str, int], steps: int, batch: int = 64) -> dict[str, Any]:
    from s2s_core.recipe import DataConfig, load_split, train_tokenizer

    data_cfg = DataConfig(max_src_len=64, max_tgt_len=32)
    examples = load_split(data_cfg, "train")[: 200 * batch]
    tokenizer = train_tokenizer(examples, min(size["tgt_vocab"], size["src_vocab"]))
    data = PairDataset.from_examples(
        examples, tokenizer, data_cfg.max_src_len, data_cfg.max_tgt_len
    )
    bucketed = [
        collate([data[i] for i in b])
        for b in BucketBatchSampler(data.bucket_keys(), batch, seed=0).batches()[: steps + 1]
    ]
    order = np.random.default_rng(0).permutation(len(data))
    shuffled = [
        collate([data[int(i)] for i in order[s : s + batch]])
        for s in range(0, (steps + 1) * batch, batch)
    ]
    ours, textbook = _models(size)
    with TemporaryDirectory() as tmp:
        step = _trainer_step(ours, data, tokenizer, Path(tmp))
        timed = _time_interleaved(step, bucketed, _textbook_step(textbook), shuffled)
    (ours_s, ours_tokens), (book_s, book_tokens) = timed["ours"], timed["textbook"]
    ours_rate, book_rate = ours_tokens / ours_s, book_tokens / book_s
    return {
        "batch": batch,
        "steps": steps,
        "ours_real_tokens_per_s": ours_rate,
        "textbook_real_tokens_per_s": book_rate,
        "speedup": ours_rate / book_rate,
    }


def run(quick: bool = False, steps: int | None = None) -> dict[str, Any]:
    size = QUICK if quick else FULL
    n = steps or (2 if quick else 8)
    return {
        "benchmark": "train",
        "model": size,
        "threads": torch.get_num_threads(),
        "equal_length": equal_length(size, n),
        "chitchat": chitchat(size, n),
        "goals": {"equal_length_speedup": 2.0, "chitchat_speedup": 3.0},
    }
