"""Word-level repetition rules for decoding ("food food", "hiking, frisbee, hiking, frisbee").

``no_repeat_ngram`` works on tokens, so it lets a word come back as long as its neighbours
differ, and every candidate of some messages did exactly that. These rules work on words:
no word twice in a row, and no content word (``quality.FUNCTION_WORDS`` excepted: "I think
I ..." is how people talk) more than ``max_word_uses`` times in one reply, which is what
``quality.has_repetition`` calls degenerate.

The tokenizer is byte-level BPE: a word is a token that starts with a space and a letter
(or a letter-initial token at the reply's first position) plus the continuation tokens
that follow it. Only words that are one token are counted (the common words that loop are);
a banned token is always a space-initial word token, so a word's continuation pieces and
words merely sharing a prefix are never blocked.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from s2s_core.decoding.config import NEG_INF
from s2s_core.quality import FUNCTION_WORDS
from s2s_core.tokenizer import Tokenizer


@dataclass(frozen=True)
class WordTable:
    """Per token id: the word it is (``word`` ≥ 0, an index into ``content``), whether it
    starts with a space (``spaced``: only those are ever banned) and whether it continues
    the word before it (``continues``: letter, digit or apostrophe first, no space)."""

    word: Tensor  # [vocab] long, -1: no word
    spaced: Tensor  # [vocab] bool
    continues: Tensor  # [vocab] bool
    content: Tensor  # [words] bool: not a function word

    @classmethod
    def from_tokenizer(cls, tokenizer: Tokenizer) -> WordTable:
        ids: dict[str, int] = {}
        size = tokenizer.vocab_size
        word, spaced, continues = [-1] * size, [False] * size, [False] * size
        for token_id in range(size):
            text = tokenizer.decode([token_id])
            bare = text[1:] if text.startswith(" ") else text
            if bare.isascii() and bare.isalpha():
                word[token_id] = ids.setdefault(bare.lower(), len(ids))
                spaced[token_id] = text.startswith(" ")
            continues[token_id] = bool(text) and (text[0].isalnum() or text[0] == "'")
        content = [w not in FUNCTION_WORDS for w in ids]
        return cls(
            torch.tensor(word, dtype=torch.long),
            torch.tensor(spaced, dtype=torch.bool),
            torch.tensor(continues, dtype=torch.bool),
            torch.tensor(content, dtype=torch.bool),
        )

    def content_tokens(self) -> Tensor:
        """[vocab] bool: the tokens that are (pieces of) content words."""
        return (self.word >= 0) & self.content[self.word.clamp(min=0)]

    def to(self, device: torch.device) -> WordTable:
        if self.word.device == device:
            return self
        parts = (self.word, self.spaced, self.continues, self.content)
        return WordTable(*(t.to(device) for t in parts))


@lru_cache(maxsize=8)
def word_table(tokenizer: Tokenizer) -> WordTable:
    """The tokenizer's ``WordTable``, built once per tokenizer (8,000 single-token decodes)."""
    return WordTable.from_tokenizer(tokenizer)


def block_word_repeats(lprobs: Tensor, history: Tensor, words: WordTable, max_uses: int) -> None:
    """Bans, per row, a space-initial word token equal to the last word said (punctuation
    between them does not count) and one whose content word the row already said
    ``max_uses`` times. ``history`` [rows, step] is what each row generated; padding and
    specials are no words."""
    rows, step = history.shape
    if step == 0:
        return
    vocab = lprobs.size(1)
    said = words.word[history]  # [rows, step], -1: no word
    starts = words.spaced[history]
    starts[:, 0] = said[:, 0] >= 0
    # A word is one token when the next token does not continue it (the last one is
    # completed by any banned candidate, which starts with a space).
    one_token = torch.ones_like(starts)
    one_token[:, :-1] = ~words.continues[history[:, 1:]]
    whole = starts & one_token & (said >= 0)
    n_words = words.content.numel()
    counts = torch.zeros(rows, n_words + 1, dtype=torch.long, device=history.device)
    slot = torch.where(whole, said, n_words)  # non-words count in a spare column
    counts.scatter_add_(1, slot, torch.ones_like(slot))
    counts = counts[:, :n_words]
    over = (counts >= max_uses) & words.content  # [rows, words]
    candidate = torch.where(words.spaced, words.word, -1)  # [vocab]
    has_word = candidate >= 0
    banned = torch.zeros(rows, vocab, dtype=torch.bool, device=history.device)
    banned[:, has_word] = over[:, candidate[has_word]]
    # The word just said: the last token with letters or digits, punctuation skipped
    # ("music, music" is a word twice in a row to a reader), if it is a whole word.
    wordish = (said >= 0) | words.continues[history]
    positions = torch.arange(step, device=history.device).expand(rows, step)
    last_pos = torch.where(wordish, positions, 0).max(dim=1, keepdim=True).values
    last_whole = whole.gather(1, last_pos) & wordish.any(dim=1, keepdim=True)
    last = torch.where(last_whole, said.gather(1, last_pos), -2).squeeze(1)
    banned |= candidate.unsqueeze(0) == last.unsqueeze(1)
    lprobs.masked_fill_(banned, NEG_INF)
