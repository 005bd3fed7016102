"""Maximum-mutual-information reranking of the n-best (Li et al. 2016, MMI-bidi).

A forward model p(T | S) likes replies that fit any message ("Yeah.", "That's cool. I have
to go now"); a backward model p(S | T), trained to recover the message from the reply,
likes replies that could only answer *this* message. Each candidate T of a message S gets

    score = (1 - weight) * log p(T | S) / |T|  +  weight * log p(S | T) / |S|  +  length_bonus * |T|

where |T| counts the reply's generated tokens including ``<eos>`` (the forward score is the
candidate's summed log-probability from decoding, divided by that length), and |S| counts
the message's tokens plus ``<eos>`` as the backward model predicts them. Both log terms are
per-token means, so neither length dominates; ``length_bonus`` (gamma) is the paper's
explicit reward for longer replies. All candidates of a whole batch are scored by the
backward model in one teacher-forced call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from s2s_core.checkpoint import CheckpointError, load_checkpoint
from s2s_core.data import context_ids, target_ids
from s2s_core.decoding import Hypothesis
from s2s_core.model import Seq2Seq
from s2s_core.special import EOS_ID, PAD_ID
from s2s_core.tokenizer import Tokenizer


@dataclass(frozen=True)
class MMIConfig:
    weight: float = 0.5  # lambda: share of the backward score, 0 = forward order only
    length_bonus: float = 0.0  # gamma: added per reply token
    max_src_len: int = 64  # backward model's source (the reply) tokens kept
    max_tgt_len: int = 32  # backward model's target (the message) tokens, <sos>/<eos> included

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"MMIConfig.weight must be in [0, 1], got {self.weight}")
        if self.max_src_len < 1 or self.max_tgt_len < 3:
            raise ValueError("MMIConfig needs max_src_len >= 1 and max_tgt_len >= 3")


BACKWARD_DIR = "backward"  # a checkpoint's backward model lives in this sub-folder


def load_backward(
    directory: str | Path, tokenizer: Tokenizer, meta: dict[str, Any], device: Any = "cpu"
) -> tuple[Seq2Seq, MMIConfig] | None:
    """The backward model a forward checkpoint carries in ``backward/``, with the MMI
    settings tuned for the pair (``weight`` and ``length_bonus`` of the forward's
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
            **{k: v for k, v in tuned.items() if k in ("weight", "length_bonus")},
            max_src_len=int(data.get("max_src_len", 64)),
            max_tgt_len=int(data.get("max_tgt_len", 32)),
        )
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {directory}: bad mmi settings ({exc})") from None
    return backward, cfg


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


@torch.no_grad()
def backward_scores(
    backward: Seq2Seq, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], cfg: MMIConfig
) -> list[float]:
    """Mean per-token log p(message | reply) for each (reply, message) pair, one batch."""
    if not pairs:
        return []
    device = next(backward.parameters()).device
    src = _pad([backward_source(reply, cfg.max_src_len) for reply, _ in pairs], device)
    tgt = _pad([target_ids(message, cfg.max_tgt_len) for _, message in pairs], device)
    was_training = backward.training
    backward.eval()
    logp, mask = backward.target_log_probs(src, tgt)  # logp: [real target tokens]
    backward.train(was_training)
    rows = mask.nonzero()[:, 0]
    sums = torch.zeros(len(pairs), device=logp.device).index_add_(0, rows, logp)  # [pairs]
    return (sums / mask.sum(dim=1).clamp(min=1)).tolist()


def mmi_rerank(
    backward: Seq2Seq,
    messages: Sequence[Sequence[int]],
    nbest: Sequence[Sequence[Hypothesis]],
    cfg: MMIConfig,
) -> list[list[Reranked]]:
    """Each source's n-best re-ordered by the MMI score; ``messages[i]`` holds the token
    ids of the message source ``i`` answers (its last turn, no speaker marker)."""
    if len(messages) != len(nbest):
        raise ValueError(f"{len(messages)} messages for {len(nbest)} n-best lists")
    pairs = [(hyp.tokens, msg) for msg, hyps in zip(messages, nbest, strict=True) for hyp in hyps]
    scores = iter(backward_scores(backward, pairs, cfg))
    out = []
    for hyps in nbest:
        scored = [
            Reranked(hyp, hyp.log_prob / max(len(hyp.tokens), 1), next(scores), 0.0) for hyp in hyps
        ]
        out.append(reorder(scored, cfg))
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
    backward: tuple[Seq2Seq, MMIConfig] | None,
    messages: Sequence[Sequence[int]],
    nbest: Sequence[Sequence[Hypothesis]],
) -> tuple[Sequence[Sequence[Hypothesis | Reranked]], MMIConfig | None]:
    """The n-best reranked, with the settings used, when there is a backward model and a
    choice to make (more than one candidate per source); else as decoded, with None."""
    if backward is None or all(len(hyps) <= 1 for hyps in nbest):
        return nbest, None
    return mmi_rerank(backward[0], messages, nbest, backward[1]), backward[1]
