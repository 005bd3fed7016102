"""Replies people gave in the public training corpus, found for a conversation (BM25).

Candidates for the ranker beside the generated ones: the corpus replies whose conversations
read most like this one. Each corpus pair is indexed by its message (the turn it answered)
and by the turn before that; a conversation's score for a pair is BM25 of its message
against the pair's message plus ``PREVIOUS_WEIGHT`` x BM25 of its turn before against the
pair's turn before, so a reply about the same thing two turns deep wins over one that only
shares the last message's words.

What is indexed is the Chit-Chat *training* split, cleaned as for training
(``s2s_core.cleaning``), and nothing else: never the validation or test conversations
(they judge the result) and never logged user text, whatever corpus a checkpoint was
fine-tuned on (another user's words must never become a candidate). The index is built once
(~20 s on two CPU cores) and cached under ``var/retrieval/`` by what it was built from;
later starts load it in under a second.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from s2s_core.cleaning import clean_examples
from s2s_core.corpora import Example, chitchat_examples

log = logging.getLogger(__name__)

NEARBY = 10  # hard negatives: rows this close may be the same conversation
PREVIOUS_WEIGHT = 0.5  # the turn before the message counts half as much as the message
FORMAT = 2  # bump when what is indexed or how changes: old caches are then rebuilt
MISSING = "retrieval needs bm25s and PyStemmer: .venv/bin/pip install bm25s PyStemmer"


class RetrievalUnavailable(RuntimeError):
    """bm25s is not installed."""


@dataclass(frozen=True)
class Retrieved:
    text: str  # the corpus reply
    score: float  # BM25 of the conversation against the pair's turns (see the module)
    row: int  # its position in the index (CorpusIndex.replies)


def corpus_pairs(split_seed: int = 13, context_turns: int = 3) -> list[Example]:
    """The retrievable pairs: the cleaned Chit-Chat training split, nothing else."""
    examples, _ = clean_examples(chitchat_examples("train", context_turns, split_seed))
    return examples


def _bm25() -> object:
    try:
        import bm25s
        import Stemmer  # noqa: F401
    except ImportError:
        raise RetrievalUnavailable(MISSING) from None
    return bm25s


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def _tokenize(texts: Sequence[str], ids: bool) -> Any:
    """Words, stemmed ("kittens" finds "kitten"), stopwords kept: a message made only of
    them ("How are you?") must still find the corpus' answers to it, and BM25's inverse
    document frequency already weighs them down."""
    return _bm25().tokenize(  # type: ignore[attr-defined]
        list(texts), stopwords=[], stemmer=_stemmer(), return_ids=ids, show_progress=False
    )


class CorpusIndex:
    """BM25 over the corpus pairs' messages and the turns before them."""

    def __init__(
        self,
        replies: list[str],
        message_index: object,
        before_index: object,
        folder: Path | None = None,
    ) -> None:
        self.replies = replies
        self._message, self._before = message_index, before_index
        self.folder = folder  # where it is cached (what is computed from it may go there too)

    @classmethod
    def build(cls, pairs: Sequence[Example]) -> CorpusIndex:
        bm25s = _bm25()
        indexes = []
        for turn in (-1, -2):
            texts = [ex.context[turn].text if len(ex.context) >= -turn else "" for ex in pairs]
            index = bm25s.BM25()  # type: ignore[attr-defined]
            index.index(_tokenize(texts, ids=True), show_progress=False)
            indexes.append(index)
        return cls([ex.response for ex in pairs], *indexes)

    @classmethod
    def cached(cls, cache_dir: str | Path, split_seed: int = 13) -> CorpusIndex:
        """The index of the public corpus, from ``cache_dir`` when it was built there
        before from the same corpus and format, else built and saved there."""
        folder = cache_folder(cache_dir, split_seed)
        if (folder / "replies.json").is_file():
            try:
                return cls.load(folder)
            except (OSError, ValueError) as exc:
                log.warning("retrieval cache %s unreadable (%s): rebuilding", folder, exc)
        folder.parent.mkdir(parents=True, exist_ok=True)  # an unwritable cache fails first
        start = time.monotonic()
        index = cls.build(corpus_pairs(split_seed))
        # Built aside and renamed into place: processes starting together never read a
        # half-written index; the first to finish wins, the others' copies are dropped.
        aside = folder.with_name(f"{folder.name}.{os.getpid()}.partial")
        index.save(aside)
        try:
            aside.rename(folder)
        except OSError:
            shutil.rmtree(aside, ignore_errors=True)
        log.info("built the retrieval index in %.1f s (%s)", time.monotonic() - start, folder)
        index.folder = folder
        return index

    def save(self, folder: str | Path) -> None:
        """Writes the index; ``replies.json`` last, so a half-written folder is rebuilt."""
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        self._message.save(path / "message", show_progress=False)  # type: ignore[attr-defined]
        self._before.save(path / "before", show_progress=False)  # type: ignore[attr-defined]
        partial = path / "replies.json.partial"
        partial.write_text(json.dumps(self.replies), encoding="utf-8")
        partial.replace(path / "replies.json")

    @classmethod
    def load(cls, folder: str | Path) -> CorpusIndex:
        bm25s, path = _bm25(), Path(folder)
        replies = json.loads((path / "replies.json").read_text(encoding="utf-8"))
        message, before = (
            bm25s.BM25.load(path / name, mmap=True, show_progress=False)  # type: ignore[attr-defined]
            for name in ("message", "before")
        )
        return cls(replies, message, before, folder=path)

    def __len__(self) -> int:
        return len(self.replies)

    def search(self, conversations: Sequence[Sequence[str]], k: int) -> list[list[Retrieved]]:
        """For each conversation (its turns, oldest first, the message last), the ``k``
        best corpus replies, each text once, best first."""
        out = []
        for turns in conversations:
            scores = self._scores(self._message, turns[-1] if turns else "")
            if len(turns) >= 2:
                scores = scores + PREVIOUS_WEIGHT * self._scores(self._before, turns[-2])
            out.append(self._top(scores, k))
        return out

    def _scores(self, index: object, text: str) -> np.ndarray:
        words = _tokenize([text], ids=False)[0]
        if not words:  # no word at all ("?!"): nothing to match, nothing found
            return np.zeros(len(self.replies), dtype=np.float32)
        return np.asarray(index.get_scores(words), dtype=np.float32)  # type: ignore[attr-defined]

    def _top(self, scores: np.ndarray, k: int) -> list[Retrieved]:
        # Twice as many as asked: the same reply text can occur under several messages.
        wanted = min(2 * k, len(scores))
        top = np.argpartition(-scores, wanted - 1)[:wanted] if wanted else np.array([], int)
        found, seen = [], set()
        for i in sorted(top.tolist(), key=lambda j: -scores[j]):
            text = self.replies[i]
            key = " ".join(text.lower().split())
            if scores[i] <= 0 or key in seen:
                continue
            seen.add(key)
            found.append(Retrieved(text, float(scores[i]), i))
            if len(found) == k:
                break
        return found


def hard_negatives(
    index: CorpusIndex, pairs: Sequence[Example], k: int = 8
) -> Callable[[Sequence[int]], list[list[str]]]:
    """For pairs of the indexed corpus (their rows), the corpus replies retrieved for each
    pair's own conversation, the pair's reply itself left out (by row and by text): what
    the ranker will have to tell apart from the right reply at reply time. Replies of
    pairs within ``NEARBY`` rows are left out too: they are turns of the same conversation
    (one dialogue's pairs are consecutive), often fine answers themselves."""
    if len(index) != len(pairs):
        raise ValueError(f"the index holds {len(index)} replies, not these {len(pairs)} pairs")

    def find(rows: Sequence[int]) -> list[list[str]]:
        found = index.search([[t.text for t in pairs[r].context] for r in rows], 2 * k)
        out = []
        for row, hits in zip(rows, found, strict=True):
            own = " ".join(pairs[row].response.lower().split())
            out.append(
                [
                    h.text
                    for h in hits
                    if abs(h.row - row) > NEARBY and " ".join(h.text.lower().split()) != own
                ][:k]
            )
        return out

    return find


def cache_folder(cache_dir: str | Path, split_seed: int = 13) -> Path:
    """Where the index of a split is cached: named by what it was built from (the corpus
    package's version, the split, the format)."""
    source = f"chitchat-dataset {metadata.version('chitchat-dataset')} seed {split_seed} v{FORMAT}"
    return Path(cache_dir) / hashlib.blake2b(source.encode(), digest_size=6).hexdigest()
