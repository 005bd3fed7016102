"""The hybrid reply pool: the Seq2Seq's n-best beside replies people gave in the public
corpus to conversations like this one, one ranker over all of them.

A 12M-parameter Seq2Seq trained on 120k chit-chat pairs writes fluent but mostly generic
replies, and no decoding setting changed that; a human reply from a similar conversation is
often the better answer. So every message gets both: its decoded n-best (MMI-reranked) and
``retrieved`` corpus replies (``s2s_core.retrieval``). Every candidate gets one score:

    score = cosine(conversation, reply)                    (the ranker, s2s_core.ranker)
          + forward_weight  * log p(reply | conversation) / |reply|     (the Seq2Seq)
          + backward_weight * log p(message | reply) / |message|        (its backward model)

the last two being MMI's terms, known from decoding for a generated reply and computed by
teacher forcing for a corpus one. The candidates are ordered by it; with ``rerank`` > 0 a
cross-encoder (``s2s_core.reranker``) then reorders the first ``rerank`` of them by reading
the conversation and each candidate together, the rest keeping their order. The n-best choice
(``s2s_core.choice``) takes the first one a person would accept. Every
candidate keeps its source, so what people get can be counted by where it came from
(Song et al. 2018, "An Ensemble of Retrieval- and Generation-Based Dialog Systems").
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from s2s_core.checkpoint import CheckpointError
from s2s_core.choice import Candidate
from s2s_core.data import target_ids
from s2s_core.mmi import Backward, backward_scores, mean_log_probs
from s2s_core.model import Seq2Seq
from s2s_core.ranker import Ranker, conversation_text
from s2s_core.reranker import RERANKER_DIR, Reranker, RerankerUnavailable
from s2s_core.retrieval import CorpusIndex
from s2s_core.tokenizer import Tokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HybridConfig:
    retrieved: int = 20  # corpus replies per conversation beside the generated ones
    forward_weight: float = 0.0  # weight of the Seq2Seq's log p(reply | conversation)
    backward_weight: float = 0.0  # weight of the backward model's log p(message | reply)
    rerank: int = 0  # the first N by that score the cross-encoder reorders (0: none)

    def __post_init__(self) -> None:
        if self.retrieved < 0:
            raise ValueError(f"HybridConfig.retrieved must be >= 0, got {self.retrieved}")
        if not 0 <= self.rerank <= 100:
            raise ValueError(f"HybridConfig.rerank must be in [0, 100], got {self.rerank}")
        for name in ("forward_weight", "backward_weight"):
            if not 0.0 <= getattr(self, name) <= 10.0:
                raise ValueError(f"HybridConfig.{name} must be in [0, 10]")


@dataclass(frozen=True)
class Seq2SeqScorer:
    """The Seq2Seq's view of any reply, MMI's two terms: how likely the model finds the
    reply after the conversation, and (with a backward model) how likely the backward
    model finds the message after the reply."""

    model: Seq2Seq
    tokenizer: Tokenizer
    backward: Backward | None
    max_tgt_len: int

    def scores(
        self, sources: Sequence[list[int]], messages: Sequence[str], replies: Sequence[str]
    ) -> tuple[list[float], list[float]]:
        """(forward, backward) mean log-probabilities of each reply ``i`` after encoder
        input ``sources[i]`` and of ``messages[i]`` after it; backward all 0 without a
        backward model. Each is one teacher-forced pass over all pairs."""
        tokens = [self.tokenizer.encode(r) for r in replies]
        targets = [target_ids(t, self.max_tgt_len) for t in tokens]
        forward = mean_log_probs(self.model, sources, targets)
        if self.backward is None:
            return forward, [0.0] * len(replies)
        asked = [self.tokenizer.encode(m) for m in messages]
        return forward, backward_scores(self.backward, list(zip(tokens, asked, strict=True)))


@dataclass(frozen=True)
class Hybrid:
    """What the hybrid pool needs: the corpus index, the ranker, the ranker's vectors of
    every corpus reply (``cached_vectors``; None: encoded when retrieved), the settings and
    the cross-encoder when ``cfg.rerank`` asks for one."""

    index: CorpusIndex
    ranker: Ranker
    cfg: HybridConfig = HybridConfig()
    vectors: torch.Tensor | None = None  # [corpus replies, dim], fp16, unit length
    reranker: Reranker | None = None

    def __post_init__(self) -> None:
        if self.cfg.rerank and self.reranker is None:
            raise ValueError("HybridConfig.rerank needs a reranker")

    def describe(self) -> dict[str, Any]:
        """The settings and the rankers, as stored with each reply and reported by eval."""
        names = {"reranker": self.reranker.name} if self.reranker and self.cfg.rerank else {}
        return {**asdict(self.cfg), "ranker": self.ranker.name, **names}


def vectors_path(index: CorpusIndex, ranker: Ranker) -> Path | None:
    """Where the ranker's vectors of the index's replies are cached, beside the index."""
    return index.folder / f"vectors-{ranker.key()}.npy" if index.folder else None


def cached_vectors(index: CorpusIndex, ranker: Ranker) -> torch.Tensor | None:
    """The ranker's vectors of every corpus reply when they were built (``build_vectors``),
    else None: then each retrieved reply is encoded when it is ranked, 27 texts a message
    instead of 7 (a batch of 32 took 4.9x the ``varied`` style's time on two CPU cores)."""
    path = vectors_path(index, ranker)
    if path is None or not path.is_file():
        log.warning(
            "corpus replies are encoded as they are ranked (slower): build their vectors "
            "once with `s2s models index`"
        )
        return None
    vectors = np.load(path)
    if vectors.shape[0] != len(index):
        log.warning("corpus vectors %s do not match the index: ignored", path)
        return None
    return torch.from_numpy(vectors)


def build_vectors(index: CorpusIndex, ranker: Ranker, progress: bool = True) -> Path:
    """Computes and caches the ranker's vectors of every corpus reply (fp16; ~10 minutes on
    two CPU cores, once per ranker and corpus)."""
    path = vectors_path(index, ranker)
    if path is None:
        raise ValueError("the index has no cache folder to keep its vectors in")
    log.info("embedding %d corpus replies with %s", len(index), ranker.name)
    vectors = ranker.embed_all(index.replies, progress)
    aside = path.with_name(f"{path.name}.{os.getpid()}.partial")
    with open(aside, "wb") as f:
        np.save(f, vectors.cpu().numpy())
    aside.replace(path)
    return path


def rank_pools(
    hybrid: Hybrid,
    conversations: Sequence[Sequence[str]],
    generated: Sequence[Sequence[Candidate]],
    seq2seq: Seq2SeqScorer | None = None,
    sources: Sequence[list[int]] = (),
) -> list[list[Candidate]]:
    """Each conversation's generated candidates and its retrieved corpus replies, ordered by
    the one score of the module docstring, best first, for a whole batch at once (one
    retrieval pass, one encoder call, one teacher-forced pass per Seq2Seq term).
    ``conversations[i]`` holds the turns of conversation ``i``, oldest first, the message
    last, and ``sources[i]`` its encoder input (needed with ``seq2seq``); a corpus reply
    that repeats a generated one is dropped."""
    if len(conversations) != len(generated):
        raise ValueError(f"{len(conversations)} conversations for {len(generated)} n-best lists")
    cfg = hybrid.cfg
    found = hybrid.index.search(conversations, cfg.retrieved) if cfg.retrieved else []
    pools, known = [], {}
    for i, own in enumerate(generated):
        texts = {_key(c.text) for c in own}
        corpus = [r for r in (found[i] if found else []) if _key(r.text) not in texts]
        if hybrid.vectors is not None:
            known.update({r.text: hybrid.vectors[r.row] for r in corpus})
        retrieved = [Candidate(r.text, "retrieved", {"bm25": round(r.score, 3)}) for r in corpus]
        pools.append([*own, *retrieved])
    queries = [conversation_text(turns) for turns in conversations]
    texts_by_pool = [[c.text for c in pool] for pool in pools]
    cosines = hybrid.ranker.scores(queries, texts_by_pool, known)
    terms = _seq2seq_terms(cfg, pools, conversations, seq2seq, sources)
    ordered = [
        _ordered(cfg, pool, pool_cosines, pool_terms)
        for pool, pool_cosines, pool_terms in zip(pools, cosines, terms, strict=True)
    ]
    if hybrid.reranker is None or not cfg.rerank:
        return ordered
    return _reranked(hybrid.reranker, cfg.rerank, queries, ordered)


def _reranked(
    reranker: Reranker, top: int, queries: Sequence[str], pools: list[list[Candidate]]
) -> list[list[Candidate]]:
    """Each pool's first ``top`` candidates reordered by the cross-encoder's score (kept as
    ``reranker``), the rest after them in their order; one batched pass over all pools."""
    heads = [pool[:top] for pool in pools]
    cross = reranker.scores(queries, [[c.text for c in head] for head in heads])
    out = []
    for pool, head, scores in zip(pools, heads, cross, strict=True):
        rescored = [
            replace(c, scores={**c.scores, "reranker": round(s, 4)})
            for c, s in zip(head, scores, strict=True)
        ]
        rescored.sort(key=lambda c: -c.scores["reranker"])
        out.append([*rescored, *pool[top:]])
    return out


def _seq2seq_terms(
    cfg: HybridConfig,
    pools: list[list[Candidate]],
    conversations: Sequence[Sequence[str]],
    seq2seq: Seq2SeqScorer | None,
    sources: Sequence[list[int]],
) -> list[list[tuple[float, float]]]:
    """(forward, backward) for every candidate: a generated one's from decoding and MMI, a
    corpus one's by teacher forcing; zeros when neither term weighs anything."""
    terms = [[(0.0, 0.0)] * len(pool) for pool in pools]
    if seq2seq is None or (cfg.forward_weight == 0 and cfg.backward_weight == 0):
        return terms
    todo = [
        (i, j)
        for i, pool in enumerate(pools)
        for j, c in enumerate(pool)
        if c.source != "generated"
    ]
    forward, backward = seq2seq.scores(
        [sources[i] for i, _ in todo],
        [conversations[i][-1] for i, _ in todo],
        [pools[i][j].text for i, j in todo],
    )
    for (i, j), f, b in zip(todo, forward, backward, strict=True):
        terms[i][j] = (f, b)
    for i, pool in enumerate(pools):
        for j, c in enumerate(pool):
            if c.source == "generated":
                # Decoded without MMI, the decoder's score is the forward mean already
                # (length penalty 1, the product's setting).
                terms[i][j] = (
                    c.scores.get("forward", c.scores.get("score", 0.0)),
                    c.scores.get("backward", 0.0),
                )
    return terms


def _ordered(
    cfg: HybridConfig,
    pool: list[Candidate],
    cosines: list[float],
    terms: list[tuple[float, float]],
) -> list[Candidate]:
    """The pool best first by the one score, which becomes each candidate's ``score``
    beside its parts (a generated one keeps its decoding score as ``decoder``)."""
    rescored = []
    for cand, cosine, (forward, backward) in zip(pool, cosines, terms, strict=True):
        parts = {k: v for k, v in cand.scores.items() if k != "score"}
        if cand.source == "generated" and "score" in cand.scores:
            parts["decoder"] = cand.scores["score"]
        parts["ranker"] = round(cosine, 4)
        score = cosine + cfg.forward_weight * forward + cfg.backward_weight * backward
        if cfg.forward_weight or cfg.backward_weight:
            parts |= {"forward": round(forward, 4), "backward": round(backward, 4)}
        rescored.append(replace(cand, scores={"score": round(score, 4), **parts}))
    return sorted(rescored, key=lambda c: -c.scores["score"])


def _key(text: str) -> str:
    return " ".join(text.lower().split())


NOTES = frozenset({"tuned_on"})  # what metrics.json ``hybrid`` may say besides the settings


def load_hybrid(
    checkpoint: str | Path, meta: dict[str, Any], cache_dir: str | Path, device: str = "cpu"
) -> Hybrid | None:
    """The hybrid pool a checkpoint asks for in its metrics.json (``"hybrid":
    {"retrieved": 20}``), else None: a model of another corpus (a translation task, a
    test's toy) must not be handed chit-chat replies. The public corpus' index is cached
    under ``cache_dir`` (built on first use from the split the checkpoint names); the
    ranker is the one the checkpoint carries, else the packaged MiniLM; the cross-encoder
    (``rerank`` > 0) is the checkpoint's ``reranker/``."""
    settings = meta.get("hybrid")
    if settings is None:
        return None
    try:
        cfg = HybridConfig(**{k: v for k, v in settings.items() if k not in NOTES})
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {checkpoint}: bad hybrid settings ({exc})") from None
    reranker = None
    if cfg.rerank:  # first: a checkpoint missing it fails before the index is built
        folder = Path(checkpoint) / RERANKER_DIR
        if not folder.is_dir():
            raise CheckpointError(
                f"checkpoint {checkpoint}: hybrid.rerank is {cfg.rerank} but it has no "
                f"{RERANKER_DIR}/ folder (train one with `s2s train-reranker`, or set 0)"
            )
        try:
            reranker = Reranker.load(folder, device)
        except RerankerUnavailable as exc:
            raise CheckpointError(f"checkpoint {checkpoint}: {exc}") from None
    seed = int(meta.get("data", {}).get("split_seed", 13))
    index = CorpusIndex.cached(cache_dir, split_seed=seed)
    ranker = Ranker.for_checkpoint(checkpoint, device)
    return Hybrid(index, ranker, cfg, cached_vectors(index, ranker), reranker)
