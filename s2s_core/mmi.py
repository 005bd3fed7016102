"""Maximum-mutual-information reranking of the n-best (Li et al. 2016, MMI-bidi).

A forward model p(T | S) likes replies that fit any message ("Yeah.", "That's cool. I have
to go now"); a backward model p(S | T), trained to recover the message from the reply,
likes replies that could only answer *this* message. Each candidate T of a message S gets

    score = (1 - weight) * log p(T | S) / |T|  +  weight * log p(S | T) / |S|  +  length_bonus * |T|

where |T| counts the reply's generated tokens including ``<eos>`` (the forward score is the
candidate's summed log-probability from decoding, divided by that length). The backward term
is the mean log-probability of the message's tokens as the backward model predicts them
(teacher-forced): with ``content_only`` (the default) only the tokens of its content words
count, |S| of them (all tokens plus ``<eos>`` when it has none, "How are you?"), else all
tokens plus ``<eos>``. The function words of a message ("I", "the", "?") say how it is
phrased, not what it is about, and projecting only the content words costs a third as much
(the model card measures both). Both log terms are per-token means, so neither length
dominates; ``length_bonus`` (gamma) is the paper's explicit reward for longer replies. All
candidates of a whole batch are scored by the backward model together, in chunks of similar
length.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from s2s_core.checkpoint import CheckpointError, load_checkpoint
from s2s_core.data import context_ids, target_ids
from s2s_core.decoding import Hypothesis, word_table
from s2s_core.model import Seq2Seq
from s2s_core.special import EOS_ID, PAD_ID
from s2s_core.tokenizer import Tokenizer


@dataclass(frozen=True)
class MMIConfig:
    weight: float = 0.5  # lambda: share of the backward score, 0 = forward order only
    length_bonus: float = 0.0  # gamma: added per reply token
    max_src_len: int = 64  # backward model's source (the reply) tokens kept
    max_tgt_len: int = 32  # backward model's target (the message) tokens, <sos>/<eos> included
    content_only: bool = True  # score only the message's content-word tokens (see above)

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"MMIConfig.weight must be in [0, 1], got {self.weight}")
        if self.max_src_len < 1 or self.max_tgt_len < 3:
            raise ValueError("MMIConfig needs max_src_len >= 1 and max_tgt_len >= 3")
        if not isinstance(self.content_only, bool):
            raise ValueError(
                f"MMIConfig.content_only must be true or false, got {self.content_only!r}"
            )


BACKWARD_DIR = "backward"  # a checkpoint's backward model lives in this sub-folder


@dataclass(frozen=True)
class Backward:
    """A backward model p(message | reply) ready to rerank: the model, its settings and the
    tokens that make up content words (``content``: [vocab] bool, ``content_only``)."""

    model: Seq2Seq
    cfg: MMIConfig
    content: Tensor

    @classmethod
    def of(cls, model: Seq2Seq, tokenizer: Tokenizer, cfg: MMIConfig) -> Backward:
        content = word_table(tokenizer).content_tokens()
        return cls(model, cfg, content.to(next(model.parameters()).device))

    def with_settings(self, **changes: Any) -> Backward:
        return replace(self, cfg=replace(self.cfg, **changes))


def load_backward(
    directory: str | Path, tokenizer: Tokenizer, meta: dict[str, Any], device: Any = "cpu"
) -> Backward | None:
    """The backward model a forward checkpoint carries in ``backward/``, with the MMI
    settings tuned for the pair (``weight``, ``length_bonus`` and ``content_only`` of the forward's
    metrics.json ``mmi``, written by ``bench/tune_decoding.py --mmi --write``), or None
    without one.
    It must share the forward model's tokenizer: it scores the forward's tokens as they are."""
    folder = Path(directory) / BACKWARD_DIR
    if not folder.is_dir():
        return None
    backward, _, back_meta = load_backward_checkpoint(folder, tokenizer, device)
    data, tuned = back_meta.get("data", {}), meta.get("mmi", {})
    try:
        cfg = MMIConfig(
            **{k: v for k, v in tuned.items() if k in ("weight", "length_bonus", "content_only")},
            max_src_len=int(data.get("max_src_len", 64)),
            max_tgt_len=int(data.get("max_tgt_len", 32)),
        )
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {directory}: bad mmi settings ({exc})") from None
    return Backward.of(backward, tokenizer, cfg)


def load_backward_checkpoint(
    folder: str | Path, tokenizer: Tokenizer, device: Any = "cpu"
) -> tuple[Seq2Seq, Tokenizer, dict[str, Any]]:
    """A backward model's checkpoint, refused unless it shares ``tokenizer`` (it scores the
    forward model's tokens as they are)."""
    backward, back_tokenizer, back_meta = load_checkpoint(folder, device)
    if back_tokenizer.vocabulary() != tokenizer.vocabulary():
        raise CheckpointError(
            f"checkpoint {folder}: tokenizer differs from the forward model's "
            "(train it with --tokenizer-from the forward model)"
        )
    return backward, back_tokenizer, back_meta


@dataclass(frozen=True)
class Reranked:
    hypothesis: Hypothesis
    forward: float  # log p(T|S) / |T|
    backward: float  # log p(S|T) / |S|
    score: float  # the combination above; candidates are sorted by it, best first


def backward_source(reply: Sequence[int], max_len: int) -> list[int]:
    """A reply as the backward model reads it: one turn spoken by the bot (corpora's
    ``backward_example``), ``<eos>`` dropped."""
    return context_ids([("bot", [t for t in reply if t != EOS_ID])], max_len)


def _pad(rows: list[list[int]], device: torch.device) -> torch.Tensor:
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), PAD_ID, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out.to(device)


# Pairs per teacher-forced call. Sorted by length, each chunk pads only to its own longest
# message and reply: one padded batch of 192 pairs ran the LSTMs and attention over 44% padding
# and held a 100 MB logits tensor (bench/reply_latency.py, batch 32: see the model card).
SCORE_CHUNK = 48


@torch.no_grad()
def backward_scores(
    backward: Backward, pairs: Sequence[tuple[Sequence[int], Sequence[int]]]
) -> list[float]:
    """The backward term of each (reply, message) pair: mean log p(message | reply) over
    the message's scored tokens (module docstring), in the pairs' order."""
    cfg = backward.cfg
    sources = [backward_source(reply, cfg.max_src_len) for reply, _ in pairs]
    targets = [target_ids(message, cfg.max_tgt_len) for _, message in pairs]
    return mean_log_probs(backward.model, sources, targets, lambda tgt: _scored(backward, tgt))


@torch.no_grad()
def mean_log_probs(
    model: Seq2Seq,
    sources: Sequence[Sequence[int]],
    targets: Sequence[Sequence[int]],
    scored: Callable[[Tensor], Tensor | None] = lambda tgt: None,
) -> list[float]:
    """Teacher-forced mean log p(target | source) of each pair (``targets`` with
    ``<sos>``), over the positions ``scored`` picks of each padded target batch (None: every
    real position). The pairs are sorted by length and scored in chunks of
    ``SCORE_CHUNK``; the scores come back in the pairs' order."""
    if not sources:
        return []
    device = next(model.parameters()).device
    order = sorted(range(len(sources)), key=lambda i: (len(targets[i]), len(sources[i])))
    scores = [0.0] * len(sources)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), SCORE_CHUNK):
            chunk = order[start : start + SCORE_CHUNK]
            src = _pad([list(sources[i]) for i in chunk], device)
            tgt = _pad([list(targets[i]) for i in chunk], device)
            logp, mask = model.target_log_probs(src, tgt, scored(tgt))
            rows = mask.nonzero()[:, 0]
            sums = torch.zeros(len(chunk), device=logp.device).index_add_(0, rows, logp)
            means = (sums / mask.sum(dim=1).clamp(min=1)).tolist()
            for i, mean in zip(chunk, means, strict=True):
                scores[i] = mean
    finally:
        model.train(was_training)
    return scores


def _scored(backward: Backward, tgt: Tensor) -> Tensor | None:
    """Which predicted positions of ``tgt`` count: the content words' tokens, or every real
    position of a row without any (None: every real position of every row)."""
    if not backward.cfg.content_only:
        return None
    gold = tgt[:, 1:]
    content = backward.content[gold]
    return torch.where(content.any(dim=1, keepdim=True), content, gold != PAD_ID)


def mmi_rerank(
    backward: Backward,
    messages: Sequence[Sequence[int]],
    nbest: Sequence[Sequence[Hypothesis]],
) -> list[list[Reranked]]:
    """Each source's n-best re-ordered by the MMI score; ``messages[i]`` holds the token
    ids of the message source ``i`` answers (its last turn, no speaker marker)."""
    if len(messages) != len(nbest):
        raise ValueError(f"{len(messages)} messages for {len(nbest)} n-best lists")
    pairs = [(hyp.tokens, msg) for msg, hyps in zip(messages, nbest, strict=True) for hyp in hyps]
    scores = iter(backward_scores(backward, pairs))
    out = []
    for hyps in nbest:
        scored = [
            Reranked(hyp, hyp.log_prob / max(len(hyp.tokens), 1), next(scores), 0.0) for hyp in hyps
        ]
        out.append(reorder(scored, backward.cfg))
    return out


def reorder(candidates: Sequence[Reranked], cfg: MMIConfig) -> list[Reranked]:
    """Candidates whose forward and backward scores are known, re-scored with ``cfg``'s
    weight and length bonus and sorted best first (tuning tries many settings this way
    on one scoring pass)."""
    rescored = [
        replace(
            c,
            score=(1 - cfg.weight) * c.forward
            + cfg.weight * c.backward
            + cfg.length_bonus * len(c.hypothesis.tokens),
        )
        for c in candidates
    ]
    return sorted(rescored, key=lambda r: -r.score)


def maybe_rerank(
    backward: Backward | None,
    messages: Sequence[Sequence[int]],
    nbest: Sequence[Sequence[Hypothesis]],
) -> tuple[Sequence[Sequence[Hypothesis | Reranked]], MMIConfig | None]:
    """The n-best reranked, with the settings used, when there is a backward model and a
    choice to make (more than one candidate per source); else as decoded, with None."""
    if backward is None or all(len(hyps) <= 1 for hyps in nbest):
        return nbest, None
    return mmi_rerank(backward, messages, nbest), backward.cfg
