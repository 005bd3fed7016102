"""Logged conversations as training pairs (the corpora JSONL schema), for fine-tuning.

Two kinds of target:

- ``human``: what a person said after one of the bot's turns, as the reply to the turns
  before it. Speakers are relative to the replier, so in these pairs the person is ``bot``
  (the one replying) and the bot is ``user``.
- ``liked``: bot replies someone rated 👍 (and nobody 👎), as the reply to their context.

Forgotten users never appear (their rows are deleted by /forget; pairs touching a user marked
forgotten are skipped as well), 👎 replies are never targets, exact duplicates and over-long
or empty texts are dropped. Conversations are read one page at a time and duplicates are
remembered as 8-byte digests, so memory stays flat however large the history.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from worker.store.models import Feedback, Turn, User
from worker.store.store import DialogueStore

TARGETS = ("human", "liked", "both")
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

    def __post_init__(self) -> None:
        if self.targets not in TARGETS:
            raise ValueError(f"targets must be one of {', '.join(TARGETS)}, got {self.targets!r}")
        if self.since >= self.until:
            raise ValueError("since must be before until")
        if self.context_turns < 1:
            raise ValueError("context_turns must be >= 1")


def export_pairs(
    store: DialogueStore, out: IO[str], flt: ExportFilter, progress: bool = False
) -> Counter[str]:
    """Writes the pairs as JSONL to ``out``; returns counts per category and per drop reason."""
    from tqdm import tqdm

    counts: Counter[str] = Counter()
    seen: set[bytes] = set()
    with tqdm(desc="export", unit=" pairs", disable=not progress) as bar:
        for category, record in _pairs(store, flt):
            if not record:
                counts[category] += 1
                continue
            key = hashlib.blake2b(
                json.dumps([record["context"], record["response"]]).encode(), digest_size=8
            ).digest()
            if key in seen:
                counts["dropped: duplicate"] += 1
                continue
            seen.add(key)
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            counts[category] += 1
            bar.update(1)
    return counts


def _pairs(store: DialogueStore, flt: ExportFilter) -> Iterator[tuple[str, dict[str, Any]]]:
    for s, ids in store.conversation_pages(flt.since, flt.until, PAGE):
        forgotten = set(s.scalars(select(User.id).where(User.forgotten_at.is_not(None))))
        yield from _page_pairs(s, ids, flt, forgotten)


def _page_pairs(
    s: Session, ids: list[int], flt: ExportFilter, forgotten: set[int]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """One page of conversations: two queries, then each conversation in turn order."""
    rows = s.execute(
        select(
            Turn.id, Turn.conversation_id, Turn.speaker, Turn.text, Turn.user_id, Turn.created_at
        )
        .where(Turn.conversation_id.in_(ids))
        .order_by(Turn.conversation_id, Turn.id)
    ).all()
    votes = {
        turn_id: (low, high)
        for turn_id, low, high in s.execute(
            select(Feedback.turn_id, func.min(Feedback.value), func.max(Feedback.value))
            .join(Turn, Turn.id == Feedback.turn_id)
            .where(Turn.conversation_id.in_(ids))
            .group_by(Feedback.turn_id)
        ).all()
    }
    for conversation_id, group in itertools.groupby(rows, key=lambda r: r.conversation_id):
        yield from _conversation_pairs(list(group), votes, conversation_id, flt, forgotten)


def _conversation_pairs(
    turns: list[Any],
    votes: dict[int, tuple[int, int]],
    conversation_id: int,
    flt: ExportFilter,
    forgotten: set[int],
) -> Iterator[tuple[str, dict[str, Any]]]:
    for i, turn in enumerate(turns):
        if i == 0 or not _in_range(turn.created_at, flt):
            continue
        before = turns[max(0, i - flt.context_turns) : i]
        if any(t.user_id in forgotten for t in [*before, turn] if t.user_id is not None):
            continue
        if turn.speaker == "bot" and flt.targets in ("liked", "both"):
            low, high = votes.get(turn.id, (0, 0))
            if high == 1 and low != -1:
                yield _record("liked", before, turn, conversation_id, flt, swap=False)
        elif (
            turn.speaker == "user"
            and flt.targets in ("human", "both")
            and turns[i - 1].speaker == "bot"
        ):
            yield _record("human", before, turn, conversation_id, flt, swap=True)


def _record(
    category: str, before: Any, turn: Any, conversation_id: int, flt: ExportFilter, swap: bool
) -> tuple[str, dict[str, Any]]:
    texts = [t.text for t in before] + [turn.text]
    if any(not t.strip() for t in texts):
        return "dropped: empty", {}
    if any(len(t) > flt.max_chars for t in texts):
        return "dropped: too long", {}
    flip = {"user": "bot", "bot": "user"} if swap else {"user": "user", "bot": "bot"}
    return category, {
        "conversation_id": str(conversation_id),
        "context": [{"speaker": flip[t.speaker], "text": t.text} for t in before],
        "response": turn.text,
        "meta": {"target": category, "created_at": _aware(turn.created_at).isoformat()},
    }


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite: naive UTC


def _in_range(moment: datetime, flt: ExportFilter) -> bool:
    return flt.since <= _aware(moment) < flt.until
