"""Retrieve and refine (Weston, Dinan, Miller 2018, "Retrieve and Refine: Improved Sequence
Generation Models for Dialogue"): the encoder reads the conversation, a marker, and a reply
people gave in a similar corpus conversation; the decoder writes the reply.

The marker is the encoder's one extra row: a refine model's ``src_vocab_size`` is its
tokenizer's vocabulary plus one, and the marker's id is that vocabulary's size. The tokenizer
stays the one the model started from (its backward model and ranker still read the same
tokens), and no text a user types can encode to the marker.

Trained plainly, the decoder learns to ignore the retrieved reply: most retrieved replies
answer another conversation, and ignoring them costs little. So a share ``alpha`` of the
training examples get, in its place, a near copy of the true reply (a quarter of its words
dropped): there the slot is worth reading, and a quarter of its words must still be written.
Everywhere else the retrieved reply is what retrieval finds for the example's own
conversation, the example itself and its neighbours (the same dialogue) left out, as it
will be at reply time. (The first model, alpha 0.25 on BM25's first reply, learned to read
near copies and to ignore BM25's replies: bench/judging/2026-12-07-round5/.)
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from s2s_core.corpora import Example
from s2s_core.data import refine_source
from s2s_core.decoding import DecodeConfig, Hypothesis, WordTable, generate
from s2s_core.hybrid import cached_vectors
from s2s_core.model import ModelConfig, Seq2Seq
from s2s_core.ranker import Ranker, RankerUnavailable, conversation_text
from s2s_core.retrieval import NEARBY, CorpusIndex, RetrievalUnavailable, Retrieved
from s2s_core.tokenizer import Tokenizer

log = logging.getLogger(__name__)

NEAR_COPY_DROP = 0.25  # share of the true reply's words a near copy leaves out
# Retrieved replies searched per training example, the best usable one kept: enough that
# the example's own dialogue (up to 2 x NEARBY rows, often the closest matches) cannot fill it.
CANDIDATES = 2 * NEARBY + 4


def is_refine(meta: dict[str, Any]) -> bool:
    """Whether a checkpoint's metrics.json describes a retrieve-and-refine model."""
    return (meta.get("data") or {}).get("refine_alpha") is not None


def marker_id(config: ModelConfig) -> int:
    """The retrieved-reply marker: the encoder's last row."""
    return config.src_vocab_size - 1


def with_marker(model: Seq2Seq) -> Seq2Seq:
    """``model`` with one more encoder row (the marker), every weight kept; the new row is
    the mean of the others, a neutral start."""
    cfg = model.config.to_dict()
    cfg["src_vocab_size"] = model.config.src_vocab_size + 1
    grown = Seq2Seq(ModelConfig.from_dict(cfg))
    state = model.state_dict()
    old = state["encoder.embedding.weight"]
    state["encoder.embedding.weight"] = torch.cat([old, old[1:].mean(0, keepdim=True)])
    grown.load_state_dict(state)
    return grown.train(model.training)


# (conversations' turns, each one's retrieved replies, k) -> each one's best k of them.
Picker = Callable[[Sequence[Sequence[str]], list[list[Retrieved]], int], list[list[Retrieved]]]
RANKED_FROM = 20  # BM25's replies a ranker picks the conditioning ones from


def ranker_pick(ranker: Ranker, vectors: torch.Tensor) -> Picker:
    """Orders retrieved replies by the hybrid pool's ranker (its cosine between the
    conversation and the reply, the corpus replies' vectors precomputed) and keeps k."""

    def pick(
        turns: Sequence[Sequence[str]], found: list[list[Retrieved]], k: int
    ) -> list[list[Retrieved]]:
        known = {h.text: vectors[h.row] for hits in found for h in hits}
        queries = [conversation_text(t) for t in turns]
        cosines = ranker.scores(queries, [[h.text for h in hits] for hits in found], known)
        return [
            [h for _, h in sorted(zip(c, hits, strict=True), key=lambda p: -p[0])][:k]
            for c, hits in zip(cosines, found, strict=True)
        ]

    return pick


@dataclass(frozen=True)
class RetrievedFor:
    """How the retrieved replies of a split were chosen (the run's log says)."""

    near_copies: int  # examples given a near copy of their own reply
    retrieved: int  # examples given a retrieved reply
    none_found: int  # examples retrieval found nothing usable for (an empty slot)


def training_retrievals(
    examples: Sequence[Example],
    index: CorpusIndex,
    alpha: float,
    seed: int,
    aligned: bool,
    pick: Picker | None = None,
) -> tuple[list[str], RetrievedFor]:
    """One retrieved text per example: with probability ``alpha`` a near copy of its own
    reply, else the best corpus reply retrieval finds for its conversation that is not its
    own reply (by text, and by row within ``NEARBY`` when ``aligned``: the examples are the
    index's first rows, one dialogue's pairs consecutive); "best" is BM25's first, or
    ``pick``'s (the ranker's) among the usable ones."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if aligned and len(examples) > len(index):
        raise ValueError(f"{len(examples)} examples are not the index's {len(index)} rows")
    rng = random.Random(seed)
    copy = [rng.random() < alpha for _ in examples]
    texts = [""] * len(examples)
    for i, ex in enumerate(examples):
        if copy[i]:
            texts[i] = near_copy(ex.response, rng)
    wanted = [i for i in range(len(examples)) if not copy[i]]
    for at in range(0, len(wanted), 2000):
        rows = wanted[at : at + 2000]
        found = index.search([[t.text for t in examples[r].context] for r in rows], CANDIDATES)
        usable = [
            [
                h
                for h in hits
                if _key(h.text) != _key(examples[row].response)
                and not (aligned and abs(h.row - row) <= NEARBY)
            ]
            for row, hits in zip(rows, found, strict=True)
        ]
        if pick is not None:
            turns = [[t.text for t in examples[r].context] for r in rows]
            usable = pick(turns, usable, 1)
        for row, hits in zip(rows, usable, strict=True):
            texts[row] = hits[0].text if hits else ""
    empty = sum(1 for i in wanted if not texts[i])
    return texts, RetrievedFor(sum(copy), len(wanted) - empty, empty)


def near_copy(text: str, rng: random.Random) -> str:
    """``text`` with about ``NEAR_COPY_DROP`` of its words left out (never all of them)."""
    words = text.split()
    kept = [w for w in words if rng.random() >= NEAR_COPY_DROP]
    return " ".join(kept or words[:1])


def _key(text: str) -> str:
    return " ".join(text.lower().split())


# Retrieved replies per message at reply time, each conditioning a share of the beams.
DECODES = 3
COPY_SHARE = 0.8  # a written reply with this share of its words in one retrieved reply copies it


@dataclass(frozen=True)
class Refiner:
    """A refine model's reply-time half: each message's best ``decodes`` corpus replies
    each condition one decode, and the hypotheses of all of them form its n-best. The
    decoding budget is shared, not multiplied: a beam of six in three groups becomes three
    beams of two, one per retrieved reply (different replies already diversify the list)."""

    index: CorpusIndex | None  # None: retrieval unavailable, the slot stays empty
    tokenizer: Tokenizer
    marker: int
    max_src_len: int
    decodes: int = DECODES
    pick: Picker | None = None  # the ranker's choice among BM25's first RANKED_FROM

    def retrieve(self, turns: Sequence[Sequence[str]]) -> list[list[str]]:
        """The corpus replies that condition each conversation's decodes, best first."""
        if self.index is None:
            return [[] for _ in turns]
        conversations = [list(t) for t in turns]
        if self.pick is None:
            found = self.index.search(conversations, self.decodes)
        else:
            found = self.pick(
                conversations, self.index.search(conversations, RANKED_FROM), self.decodes
            )
        return [[hit.text for hit in hits] for hits in found]

    def generate(
        self,
        model: Seq2Seq,
        sources: Sequence[Sequence[int]],
        turns: Sequence[Sequence[str]],
        cfg: DecodeConfig,
        words: WordTable | None = None,
    ) -> tuple[list[list[Hypothesis]], list[list[str]]]:
        """Each source's merged n-best (best first, each token sequence once) and the
        retrieved replies that conditioned it."""
        retrieved = self.retrieve(turns)
        flat: list[list[int]] = []
        owner: list[int] = []
        for i, (source, texts) in enumerate(zip(sources, retrieved, strict=True)):
            for ids in self.tokenizer.encode_batch(texts) if texts else [[]]:
                flat.append(refine_source(source, ids, self.marker, self.max_src_len))
                owner.append(i)
        decoded = generate(model, flat, share_of(cfg, self.decodes), words) if flat else []
        merged: list[list[Hypothesis]] = [[] for _ in sources]
        for i, hyps in zip(owner, decoded, strict=True):
            merged[i].extend(hyps)
        return [_distinct(sorted(hyps, key=lambda h: -h.score)) for hyps in merged], retrieved


def _distinct(hyps: list[Hypothesis]) -> list[Hypothesis]:
    """Each token sequence once (two retrieved replies can lead to the same words)."""
    seen: set[tuple[int, ...]] = set()
    kept = []
    for hyp in hyps:
        if tuple(hyp.tokens) not in seen:
            seen.add(tuple(hyp.tokens))
            kept.append(hyp)
    return kept


def share_of(cfg: DecodeConfig, decodes: int) -> DecodeConfig:
    """``cfg`` for one of ``decodes`` decodes of a message: its beams, groups, n-best and
    samples divided among them (at least one each)."""
    if decodes <= 1:
        return cfg
    n_best = max(1, -(-cfg.n_best // decodes))
    if cfg.strategy != "beam":
        return replace(cfg, n_best=n_best)
    beam = max(1, cfg.beam_size // decodes)
    groups = max(1, cfg.groups // decodes)
    while beam % groups:
        groups -= 1
    return replace(
        cfg,
        beam_size=beam,
        n_best=min(n_best, beam),
        num_groups=groups if cfg.diversity == "hamming" else cfg.num_groups,
    )


def copy_share(reply: str, retrieved: Sequence[str]) -> float:
    """The largest share of ``reply``'s words (lower case, punctuation off, as a multiset)
    found in one of the ``retrieved`` replies: 1.0 is a copy, word order aside."""
    words = _words(reply)
    if not words or not retrieved:
        return 0.0
    counts = Counter(words)
    best = 0
    for text in retrieved:
        pool = Counter(_words(text))
        best = max(best, sum(min(n, pool[w]) for w, n in counts.items()))
    return best / len(words)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def load_refiner(
    meta: dict[str, Any],
    config: ModelConfig,
    tokenizer: Tokenizer,
    cache_dir: Path | None,
    ranker: tuple[Ranker, torch.Tensor | None] | None = None,
    checkpoint: Path | None = None,
) -> Refiner | None:
    """A refine checkpoint's ``Refiner`` (None for a plain model). Without the corpus index
    (``cache_dir`` None, or bm25s missing) it decodes with the slot empty, as training did
    for the few examples retrieval found nothing for: worse replies, not none. A model
    trained on the ranker's picks (``refine_pick``) gets them at reply time too when
    ``ranker`` (the hybrid pool's, with its corpus vectors) is given or ``checkpoint`` has
    one with built vectors; else BM25's order."""
    if not is_refine(meta):
        return None
    index = None
    if cache_dir is not None:
        try:
            index = CorpusIndex.cached(cache_dir, int(meta["data"].get("split_seed", 13)))
        except (RetrievalUnavailable, OSError) as exc:
            log.error("refine model without retrieval (%s): it reads no corpus reply", exc)
    max_src_len = int(meta["data"].get("max_src_len", 64))
    pick = None
    if meta["data"].get("refine_pick") == "ranker" and index is not None:
        if ranker is None and checkpoint is not None:
            try:
                own = Ranker.for_checkpoint(checkpoint)
                ranker = (own, cached_vectors(index, own))
            except RankerUnavailable as exc:
                log.error("refine model without its ranker (%s)", exc)
        if ranker is not None and ranker[1] is not None:
            pick = ranker_pick(ranker[0], ranker[1])
        else:
            log.warning("refine model without its ranker's corpus vectors: BM25 picks")
    return Refiner(index, tokenizer, marker_id(config), max_src_len, pick=pick)
