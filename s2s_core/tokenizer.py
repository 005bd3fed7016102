"""Byte-level BPE tokenizer (Hugging Face ``tokenizers``), saved as one JSON file.

Byte-level means every string round-trips exactly: English, Japanese, emoji, punctuation,
spacing. Special tokens have fixed ids (see ``special.py``); text that merely looks like a
special token (a user typing "<eos>") is encoded as ordinary text, never as the marker.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from s2s_core.special import SPECIAL_TOKENS


class Tokenizer:
    def __init__(self, backend: HFTokenizer) -> None:
        for expected_id, token in enumerate(SPECIAL_TOKENS):
            if backend.token_to_id(token) != expected_id:
                raise ValueError(f"tokenizer: special token {token} must have id {expected_id}")
        backend.encode_special_tokens = True  # user text can never forge a marker
        self._backend = backend

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> Tokenizer:
        if vocab_size < len(SPECIAL_TOKENS) + 256:
            raise ValueError(f"vocab_size must be at least {len(SPECIAL_TOKENS) + 256}")
        backend = HFTokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        backend.train_from_iterator(texts, trainer=trainer)
        return cls(backend)

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        return cls(HFTokenizer.from_file(str(path)))

    def save(self, path: str | Path) -> None:
        self._backend.save(str(path))

    @property
    def vocab_size(self) -> int:
        return int(self._backend.get_vocab_size(with_added_tokens=True))

    def vocabulary(self) -> dict[str, int]:
        """Token → id, special tokens included (two tokenizers agree iff these do)."""
        return dict(self._backend.get_vocab(with_added_tokens=True))

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without ``<sos>``/``<eos>``."""
        return list(self._backend.encode(text, add_special_tokens=False).ids)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        encodings = self._backend.encode_batch(list(texts), add_special_tokens=False)
        return [list(e.ids) for e in encodings]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; special tokens are dropped."""
        return str(self._backend.decode(list(ids), skip_special_tokens=True))

    def decode_batch(self, batch: Sequence[Sequence[int]]) -> list[str]:
        return list(self._backend.decode_batch([list(ids) for ids in batch]))
