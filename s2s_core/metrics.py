"""Corpus-level text metrics for generated replies."""

from __future__ import annotations

import math
from collections.abc import Sequence

import sacrebleu


def perplexity(mean_nll: float) -> float:
    return math.exp(min(mean_nll, 700.0))


def distinct_n(replies: Sequence[Sequence[int | str]], n: int) -> float:
    """Corpus-level distinct-n: distinct n-grams ÷ total n-grams, pooled over all replies
    (Li et al. 2016). 0.0 when no reply is n tokens long."""
    total, seen = 0, set()
    for tokens in replies:
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def distinct_reply_share(replies: Sequence[str]) -> float:
    """Share of replies that are distinct strings: 1.0 when no two replies are the same."""
    return len(set(replies)) / len(replies) if replies else 0.0


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)
