"""Token-id pairs in memory, length-bucketed batches, and padding.

A ``PairDataset`` keeps every sequence in one flat int32 array plus offsets, so the
tokenized corpus exists once (about 4 bytes a token) and a batch is sliced from it on
demand, never copied whole into Python lists or tensors.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Sampler

from s2s_core.corpora import Example, Turn
from s2s_core.special import BOT_ID, EOS_ID, PAD_ID, SOS_ID, USER_ID
from s2s_core.tokenizer import Tokenizer

SPEAKER_IDS = {"user": USER_ID, "bot": BOT_ID}


def context_ids(turn_ids: Sequence[tuple[str | None, Sequence[int]]], max_len: int) -> list[int]:
    """Joins turns (oldest first) with speaker markers, then keeps the last ``max_len`` ids:
    the most recent words matter most to the reply."""
    ids: list[int] = []
    for speaker, tokens in turn_ids:
        if speaker is not None:
            ids.append(SPEAKER_IDS[speaker])
        ids.extend(tokens)
    return ids[-max_len:]


def encode_context(tokenizer: Tokenizer, turns: Sequence[Turn], max_len: int) -> list[int]:
    # One text at a time: for a context's few turns, encode_batch's thread-pool fan-out
    # costs more CPU than the encoding (78 µs against 29 µs for three turns).
    encoded = [tokenizer.encode(t.text) for t in turns]
    return context_ids([(t.speaker, ids) for t, ids in zip(turns, encoded, strict=True)], max_len)


MAX_RETRIEVED_TOKENS = 24  # of a retrieved reply, kept after the refine marker


def refine_source(
    context: Sequence[int], retrieved: Sequence[int], marker: int, max_len: int
) -> list[int]:
    """The encoder's input: the conversation's most recent ids, the marker, the retrieved
    reply's first ``MAX_RETRIEVED_TOKENS`` ids; ``max_len`` in all. The retrieved reply is
    kept whole first: the conversation's oldest words are the ones to lose."""
    kept = list(retrieved[:MAX_RETRIEVED_TOKENS])
    room = max(max_len - len(kept) - 1, 1)
    return [*list(context)[-room:], marker, *kept]


def target_ids(tokens: Sequence[int], max_len: int) -> list[int]:
    """``<sos> tokens <eos>``; a target too long for ``max_len`` is cut without ``<eos>``.
    With ``<eos>`` after the cut, the model learned to stop there mid-sentence: 68% of the
    shipped model's replies of 27 tokens or more ended without a sentence end ("... But I don't
    think I"), 20% of the shorter ones."""
    if len(tokens) > max_len - 2:
        return [SOS_ID, *tokens[: max_len - 1]]
    return [SOS_ID, *tokens, EOS_ID]


class PairDataset(torch.utils.data.Dataset[tuple[np.ndarray, np.ndarray]]):
    def __init__(self, pairs: Sequence[tuple[Sequence[int], Sequence[int]]]) -> None:
        self.src, self.src_offsets = _flatten([p[0] for p in pairs])
        self.tgt, self.tgt_offsets = _flatten([p[1] for p in pairs])

    @classmethod
    def from_examples(
        cls,
        examples: Sequence[Example],
        tokenizer: Tokenizer,
        max_src_len: int,
        max_tgt_len: int,
        retrieved: tuple[Sequence[str], int] | None = None,
    ) -> PairDataset:
        """Tokenizes each distinct text once (a turn recurs in several contexts).
        ``retrieved``: one text per example and the marker that puts it after the
        conversation (a retrieve-and-refine model's source, ``s2s_core.refine``)."""
        extra = list(retrieved[0]) if retrieved else []
        texts = sorted(
            {t.text for ex in examples for t in ex.context}
            | {ex.response for ex in examples}
            | set(extra)
        )
        vocab = dict(zip(texts, tokenizer.encode_batch(texts), strict=True))
        pairs = []
        for i, ex in enumerate(examples):
            src = context_ids([(t.speaker, vocab[t.text]) for t in ex.context], max_src_len)
            if src and retrieved:
                src = refine_source(src, vocab[extra[i]], retrieved[1], max_src_len)
            if src:
                pairs.append((src, target_ids(vocab[ex.response], max_tgt_len)))
        return cls(pairs)

    def __len__(self) -> int:
        return len(self.src_offsets) - 1

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return (
            self.src[self.src_offsets[i] : self.src_offsets[i + 1]],
            self.tgt[self.tgt_offsets[i] : self.tgt_offsets[i + 1]],
        )

    def bucket_keys(self, src_bin: int = 8) -> np.ndarray:
        """Sort keys for bucketing: source length in bins of ``src_bin``, then target length.
        Within a batch sources then differ by a few tokens (the encoder runs the shared
        prefix densely and packs only the short ragged tail) and targets barely at all."""
        src_len, tgt_len = np.diff(self.src_offsets), np.diff(self.tgt_offsets)
        return (src_len // src_bin) * (int(tgt_len.max(initial=0)) + 1) + tgt_len

    def target_tokens(self) -> int:
        """Predicted tokens in the whole set (target minus its ``<sos>``)."""
        return int(self.tgt_offsets[-1] - len(self))


def _flatten(seqs: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in seqs], out=offsets[1:])
    flat = np.fromiter((t for s in seqs for t in s), dtype=np.int32, count=int(offsets[-1]))
    return flat, offsets


def pad_batch(seqs: Sequence[Sequence[int] | np.ndarray]) -> Tensor:
    """Right-pads with ``<pad>`` (id 0) into a LongTensor ``[batch, longest]``."""
    out = torch.full((len(seqs), max(len(s) for s in seqs)), PAD_ID, dtype=torch.long)
    for row, seq in enumerate(seqs):
        out[row, : len(seq)] = torch.as_tensor(np.asarray(seq, dtype=np.int64))
    return out


def collate(items: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[Tensor, Tensor]:
    return pad_batch([s for s, _ in items]), pad_batch([t for _, t in items])


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar length: shuffle, cut into pools of ``pool`` batches, sort each pool
    by its key (``PairDataset.bucket_keys``), batch, shuffle the batches: little padding,
    and no fixed batch order.
    The order depends only on (seed, epoch), so a resumed run replays the same batches."""

    def __init__(
        self, keys: np.ndarray, batch_size: int, seed: int, shuffle: bool = True, pool: int = 100
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.keys, self.batch_size, self.seed = keys, batch_size, seed
        self.shuffle, self.pool, self.epoch = shuffle, pool, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        n = len(self.keys)
        if not self.shuffle:
            order = np.argsort(self.keys, kind="stable")
            return [order[i : i + self.batch_size].tolist() for i in range(0, n, self.batch_size)]
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(n)
        span = self.batch_size * self.pool
        out = []
        for start in range(0, n, span):
            chunk = order[start : start + span]
            chunk = chunk[np.argsort(self.keys[chunk], kind="stable")]
            out += [
                chunk[i : i + self.batch_size].tolist()
                for i in range(0, len(chunk), self.batch_size)
            ]
        rng.shuffle(out)
        return out

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return -(-len(self.keys) // self.batch_size)
