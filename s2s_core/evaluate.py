"""Evaluation of a checkpoint on a split: perplexity, and per decoding strategy BLEU,
corpus-level distinct-1/2, mean length and the share of distinct replies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from s2s_core.corpora import Example
from s2s_core.data import PairDataset, encode_context
from s2s_core.decoding import DecodeConfig, generate
from s2s_core.metrics import corpus_bleu, distinct_n, distinct_reply_share, perplexity
from s2s_core.model import Seq2Seq
from s2s_core.recipe import DataConfig
from s2s_core.special import EOS_ID
from s2s_core.tokenizer import Tokenizer
from s2s_core.train import evaluate_loss


def evaluate_perplexity(
    model: Seq2Seq, tokenizer: Tokenizer, examples: Sequence[Example], data: DataConfig
) -> dict[str, float]:
    dataset = PairDataset.from_examples(examples, tokenizer, data.max_src_len, data.max_tgt_len)
    device = next(model.parameters()).device
    loss = evaluate_loss(model, dataset, 64, device)
    return {"loss": loss, "perplexity": perplexity(loss), "tokens": dataset.target_tokens()}


def decode_examples(
    model: Seq2Seq,
    tokenizer: Tokenizer,
    examples: Sequence[Example],
    data: DataConfig,
    cfg: DecodeConfig,
    batch_size: int = 64,
    progress: bool = False,
) -> list[list[int]]:
    """The best hypothesis' tokens (``<eos>`` dropped) for each example's context."""
    sources = [encode_context(tokenizer, ex.context, data.max_src_len) for ex in examples]
    outputs: list[list[int]] = []
    for start in tqdm(range(0, len(sources), batch_size), disable=not progress, desc=cfg.strategy):
        for hyps in generate(model, sources[start : start + batch_size], cfg):
            outputs.append([t for t in hyps[0].tokens if t != EOS_ID])
    return outputs


def evaluate_generation(
    model: Seq2Seq,
    tokenizer: Tokenizer,
    examples: Sequence[Example],
    data: DataConfig,
    cfg: DecodeConfig,
    progress: bool = False,
) -> dict[str, Any]:
    replies = decode_examples(model, tokenizer, examples, data, cfg, progress=progress)
    texts = [tokenizer.decode(r) for r in replies]
    words = [t.split() for t in texts]
    return {
        "decode": cfg.to_dict(),
        "bleu": corpus_bleu(texts, [ex.response for ex in examples]),
        "distinct_1": distinct_n(words, 1),
        "distinct_2": distinct_n(words, 2),
        "distinct_scope": "corpus-level, whitespace words, pooled over all replies",
        "mean_len_words": sum(map(len, words)) / max(len(words), 1),
        "distinct_replies": distinct_reply_share(texts),
        "samples": [
            {"context": [t.text for t in ex.context], "reference": ex.response, "reply": text}
            for ex, text in zip(examples[:12], texts[:12], strict=False)
        ],
    }
