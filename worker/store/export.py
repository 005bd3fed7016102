"""Logged conversations read back: training pairs (the corpora JSONL schema) for fine-tuning,
and the bot's logged replies for replay. The one place that turns stored turns into records.

Two kinds of training target:

- ``human``: what a person said after one of the bot's turns, as the reply to the turns
  before it. Speakers are relative to the replier, so in these pairs the person is ``bot``
  (the one replying) and the bot is ``user``.
- ``liked``: bot replies someone rated 👍 and nobody 👎 (``records.rating``), as the reply to
  their context.

Forgotten users never appear (their rows are deleted by /forget; pairs touching a user marked
forgotten are skipped as well), 👎 replies are never targets, exact duplicates and over-long
or empty texts are dropped. Conversations are read one page at a time and duplicates are
remembered as 8-byte digests, so memory stays flat however large the history.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from worker.store.records import LoggedConversation, LoggedTurn
from worker.store.store import DialogueStore

TARGETS = ("human", "liked", "both")
# Fine-tuning learns from one part of the logged conversations; replay and the promotion gate
# measure on the other, so a candidate that memorised its pairs cannot pass on them.
PARTS = ("all", "fine-tune", "held-out")
HELD_OUT_SHARE = 0.2
PAGE = 200  # conversations per query
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ExportFilter:
    since: datetime = EARLIEST
    until: datetime = LATEST
    targets: str = "both"  # human | liked | both
    context_turns: int = 3
    max_chars: int = 500  # longer targets or context turns are dropped, not cut
    part: str = "all"  # all | fine-tune | held-out (see in_part)

    def __post_init__(self) -> None:
        if self.targets not in TARGETS:
            raise ValueError(f"targets must be one of {', '.join(TARGETS)}, got {self.targets!r}")
        if self.part not in PARTS:
            raise ValueError(f"part must be one of {', '.join(PARTS)}, got {self.part!r}")
        if self.since >= self.until:
            raise ValueError("since must be before until")
        if self.context_turns < 1:
            raise ValueError("context_turns must be >= 1")


def in_part(conversation_id: int | str, part: str) -> bool:
    """Whether a conversation belongs to ``part``: a fixed hash of its id puts
    ``HELD_OUT_SHARE`` of all conversations in the held-out part, the same ones in every run
    and on every machine, and a whole conversation always on one side."""
    if part == "all":
        return True
    digest = hashlib.blake2b(f"s2s-split:{conversation_id}".encode(), digest_size=8).digest()
    held_out = int.from_bytes(digest, "big") / 2**64 < HELD_OUT_SHARE
    return held_out if part == "held-out" else not held_out


def export_pairs(
    store: DialogueStore, out: IO[str], flt: ExportFilter, progress: bool = False
) -> Counter[str]:
    """Writes the pairs as JSONL to ``out``; returns counts per category and per drop reason."""
    from tqdm import tqdm

    counts: Counter[str] = Counter()
    with tqdm(desc="export", unit=" pairs", disable=not progress) as bar:
        for category, record in training_pairs(store, flt):
            counts[category] += 1
            if record is not None:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                bar.update(1)
    return counts


def training_pairs(
    store: DialogueStore, flt: ExportFilter
) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """The pairs (category, record), exact duplicates dropped: every drop is yielded as its
    reason with no record, so a caller can count what was left out and why."""
    seen: set[bytes] = set()
    for page in store.conversation_pages(flt.since, flt.until, PAGE):
        for conversation in page:
            if not in_part(conversation.id, flt.part):
                continue
            for category, record in _conversation_pairs(conversation, flt):
                if record is not None:
                    key = hashlib.blake2b(
                        json.dumps([record["context"], record["response"]]).encode(),
                        digest_size=8,
                    ).digest()
                    if key in seen:
                        category, record = "dropped: duplicate", None
                    seen.add(key)
                yield category, record


def logged_exchanges(
    store: DialogueStore,
    since: datetime,
    until: datetime,
    context_turns: int = 3,
    part: str = "all",
) -> Iterator[dict[str, Any]]:
    """The bot's replies made in [since, until) as records (the corpora JSONL schema, speakers
    as they were), with the model that wrote each and its rating (+1 liked, -1 disliked, 0)
    in ``meta``: what replay decodes again."""
    for page in store.conversation_pages(since, until, PAGE):
        for conversation in page:
            if not in_part(conversation.id, part):
                continue
            turns = conversation.turns
            for i, turn in enumerate(turns):
                if turn.speaker != "bot" or turn.reply_to_id is None:
                    continue
                if not since <= turn.created_at < until:
                    continue
                before = turns[max(0, i - context_turns) : i]
                yield {
                    "conversation_id": str(conversation.id),
                    "context": [{"speaker": t.speaker, "text": t.text} for t in before],
                    "response": turn.text,
                    "meta": {
                        "model_version": turn.model_version,
                        "decoding": turn.decoding,
                        "feedback": turn.rating,
                        "created_at": turn.created_at.isoformat(),
                    },
                }


def _conversation_pairs(
    conversation: LoggedConversation, flt: ExportFilter
) -> Iterator[tuple[str, dict[str, Any] | None]]:
    turns = conversation.turns
    for i, turn in enumerate(turns):
        if i == 0 or not flt.since <= turn.created_at < flt.until:
            continue
        before = turns[max(0, i - flt.context_turns) : i]
        if any(t.user_forgotten for t in [*before, turn]):
            continue
        if turn.speaker == "bot" and flt.targets in ("liked", "both"):
            if turn.rating == 1:
                yield _record("liked", before, turn, conversation.id, flt, swap=False)
        elif (
            turn.speaker == "user"
            and flt.targets in ("human", "both")
            and turns[i - 1].speaker == "bot"
        ):
            yield _record("human", before, turn, conversation.id, flt, swap=True)


def _record(
    category: str,
    before: list[LoggedTurn],
    turn: LoggedTurn,
    conversation_id: int,
    flt: ExportFilter,
    swap: bool,
) -> tuple[str, dict[str, Any] | None]:
    texts = [t.text for t in before] + [turn.text]
    if any(not t.strip() for t in texts):
        return "dropped: empty", None
    if any(len(t) > flt.max_chars for t in texts):
        return "dropped: too long", None
    flip = {"user": "bot", "bot": "user"} if swap else {"user": "user", "bot": "bot"}
    return category, {
        "conversation_id": str(conversation_id),
        "context": [{"speaker": flip[t.speaker], "text": t.text} for t in before],
        "response": turn.text,
        "meta": {"target": category, "created_at": turn.created_at.isoformat()},
    }
