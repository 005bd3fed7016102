"""Stock sentences: the ones a checkpoint says whatever it was told, found by counting, not
by reading.

A chit-chat Seq2Seq falls back on a few sentences that answer nothing ("I'm not sure if
I've ever heard of it" to a breakup, a joke request and "hmm" alike). A person found the
first model's by reading its replies (``quality.STOCK``); every new checkpoint has its own.
``find_stock`` decodes the model's n-best for ``CONTEXTS`` validation conversations, which
have little to do with each other, and keeps each sentence that

- the n-best of at least ``SHARE`` of them holds (it fits conversations that have nothing
  in common, so it answers none of them), and
- people said in at most ``PEOPLE_AT_MOST`` of the corpus' training replies: the model
  made it up and repeats it. This is what tells a stock sentence from the glue of every
  chat: "What about you?" is in 13% of the default model's n-best lists and in 0.4% of
  people's replies; "I'm not sure if I've ever heard of it" is in 8% and in none.

Computed for a checkpoint by ``s2s models stock`` (and ``s2s models export``), kept in its
metrics.json (``stock_sentences``); the choice and ``s2s eval`` treat them as they treat the
hand-written ones (``quality.is_stock``).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from tqdm import tqdm

from s2s_core.corpora import Example
from s2s_core.data import encode_context
from s2s_core.decoding import DecodeConfig, generate, word_table
from s2s_core.model import Seq2Seq
from s2s_core.quality import sentence_keys
from s2s_core.recipe import DataConfig, load_split
from s2s_core.refine import Refiner
from s2s_core.tokenizer import Tokenizer

CONTEXTS = 300  # validation conversations decoded (~20 s on two CPU cores)
SHARE = 0.02  # in the n-best of this share of them, at least MIN_CONTEXTS...
MIN_CONTEXTS = 3
PEOPLE_AT_MOST = 1 / 20_000  # ...and in at most this share of people's replies: stock
SEED = 0  # the validation conversations' shuffle


def people_counts(examples: Iterable[Example]) -> tuple[Counter[str], int]:
    """For each sentence, how many of the examples' replies (people's) hold it; and how
    many replies there were."""
    counts: Counter[str] = Counter()
    n = 0
    for ex in examples:
        n += 1
        counts.update(sentence_keys(ex.response))
    return counts, n


def stock_of(
    nbests: Sequence[Iterable[str]], people: Counter[str], replies: int
) -> list[tuple[str, int, int]]:
    """(sentence, n-best lists holding it, people's replies holding it) for each stock
    sentence, the most frequent first."""
    counts: Counter[str] = Counter()
    for nbest in nbests:
        counts.update(set().union(*(sentence_keys(t) for t in nbest)))
    floor = max(MIN_CONTEXTS, SHARE * len(nbests))
    return [
        (s, n, people[s])
        for s, n in counts.most_common()
        if n >= floor and people[s] <= PEOPLE_AT_MOST * replies
    ]


def find_stock(
    model: Seq2Seq,
    tokenizer: Tokenizer,
    conversations: Sequence[Example],
    people: Sequence[Example],
    cfg: DecodeConfig,
    context_turns: int,
    max_src_len: int,
    refiner: Refiner | None = None,
    batch_size: int = 32,
    progress: bool = False,
) -> dict[str, Any]:
    """What metrics.json keeps as ``stock_sentences``: the stock sentences of the n-best of
    ``cfg`` for the first ``CONTEXTS`` ``conversations``, against the replies of ``people``
    (the training split), and how they were found. A refine model decodes on what its
    ``refiner`` retrieves, as it does when it replies. ``progress``: a bar over the
    conversations decoded."""
    chosen = list(conversations[:CONTEXTS])
    sources = [encode_context(tokenizer, ex.context[-context_turns:], max_src_len) for ex in chosen]
    turns = [[t.text for t in ex.context[-context_turns:]] for ex in chosen]
    words = word_table(tokenizer)
    nbests: list[list[str]] = []
    model.eval()
    starts = range(0, len(sources), batch_size)
    for start in tqdm(starts, desc="stock sentences", unit="batch", disable=not progress):
        rows = slice(start, start + batch_size)
        if refiner is None:
            decoded = generate(model, sources[rows], cfg, words)
        else:
            decoded, _ = refiner.generate(model, sources[rows], turns[rows], cfg, words)
        nbests += [[tokenizer.decode(h.tokens) for h in hyps] for hyps in decoded]
    counts, replies = people_counts(people)
    found = stock_of(nbests, counts, replies)
    return {
        "sentences": [s for s, _, _ in found],
        "in_nbest_lists": [n for _, n, _ in found],
        "in_people_replies": [p for _, _, p in found],
        "conversations": len(nbests),
        "people_replies": replies,
        "rule": f"in >= {SHARE:.0%} of the n-best lists, in <= 1 in "
        f"{round(1 / PEOPLE_AT_MOST):,} of people's replies",
        "decode": cfg.to_dict(),
    }


def checkpoint_stock(
    model: Seq2Seq,
    tokenizer: Tokenizer,
    meta: dict[str, Any],
    cfg: DecodeConfig,
    refiner: Refiner | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """``find_stock`` for a checkpoint: its validation conversations (shuffled with a fixed
    seed: the split's first ones are one dialogue's turns, not unrelated conversations)
    against its training split's replies, as its metrics.json describes them."""
    data = DataConfig(**meta.get("data", {}))
    conversations = load_split(data, "valid")
    random.Random(SEED).shuffle(conversations)
    return find_stock(
        model,
        tokenizer,
        conversations,
        load_split(data, "train"),
        cfg,
        data.context_turns,
        data.max_src_len,
        refiner,
        progress=progress,
    )
