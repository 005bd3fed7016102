"""Two model versions side by side on what people did with their replies: the evidence an
operator promotes on (``s2s models compare``, ``s2s models promote --require-better``).

Every stored generation records the version that wrote it, so any two versions that served
(one after the other, or side by side) can be compared over a time window. Rates carry
Wilson 95% intervals: with a few dozen votes a difference of ten points is noise, and the
interval says so.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from worker.store.models import Feedback, Generation, Turn
from worker.store.records import rating

Z_95 = 1.959964
CHUNK = 5000  # ids per IN (...) list
# A rate needs a serving span this long: two replies 12 ms apart read "159.4 replies/s".
MIN_RATE_SPAN_S = 60.0


def wilson(hits: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (0, 0 with no trials)."""
    if total == 0:
        return (0.0, 0.0)
    p = hits / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return (max(centre - half, 0.0), min(centre + half, 1.0))


@dataclass(frozen=True)
class Rate:
    hits: int
    total: int

    @property
    def value(self) -> float:
        return self.hits / self.total if self.total else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.hits, self.total)

    def __str__(self) -> str:
        if self.total == 0:
            return "no replies in this window"
        low, high = self.interval
        return f"{self.value:.1%} [{low:.1%}, {high:.1%}] ({self.hits}/{self.total})"


@dataclass(frozen=True)
class VersionStats:
    version: str
    replies: int
    liked: Rate  # replies rated 👍 (and not 👎) of all its replies
    disliked: Rate  # replies rated 👎
    conversations: int  # conversations whose first reply it wrote
    mean_turns: float | None  # turns per such conversation, both speakers
    continued: Rate  # those conversations in which the user wrote again after that reply
    replies_per_s: float | None  # its replies over the span from its first to its last
    decode_ms_p50: float | None
    queue_wait_ms_p50: float | None
    # The share of its replies by where they came from (generated, retrieved, persona,
    # fallback); replies stored before sources were recorded count as generated.
    sources: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        rates = {
            name: {"rate": r.value, "interval": list(r.interval), "hits": r.hits, "of": r.total}
            for name, r in (
                ("liked", self.liked),
                ("disliked", self.disliked),
                ("continued", self.continued),
            )
        }
        plain = {
            k: getattr(self, k)
            for k in (
                "version",
                "replies",
                "conversations",
                "mean_turns",
                "replies_per_s",
                "decode_ms_p50",
                "queue_wait_ms_p50",
                "sources",
            )
        }
        return {**plain, **rates}


def compare(
    reads: sessionmaker[Session],
    versions: Sequence[str],
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[VersionStats]:
    """Each version's figures over its replies stored in [since, until)."""
    with reads() as s:
        query = (
            select(
                Generation.model_version,
                Turn.id,
                Turn.conversation_id,
                Turn.created_at,
                Generation.decode_ms,
                Generation.queue_wait_ms,
                Generation.decoding["source"].as_string().label("source"),
            )
            .join(Turn, Turn.id == Generation.turn_id)
            .where(Generation.model_version.in_(list(versions)))
        )
        if since is not None:
            query = query.where(Turn.created_at >= since)
        if until is not None:
            query = query.where(Turn.created_at < until)
        replies = s.execute(query).all()
        ratings = _ratings(s, [r.id for r in replies])
        conversations = _conversation_turns(s, {r.conversation_id for r in replies})
    return [
        _stats(version, [r for r in replies if r.model_version == version], ratings, conversations)
        for version in versions
    ]


def served_versions(reads: sessionmaker[Session], prefix: str) -> list[str]:
    """The model versions that wrote stored replies and start with ``prefix`` (a version
    can serve without being registered: MODEL_DIR's, whose short id `s2s chat` prints)."""
    with reads() as s:
        rows = s.execute(
            select(Generation.model_version)
            .where(Generation.model_version.startswith(prefix, autoescape=True))
            .distinct()
        ).all()
    return sorted(str(v) for (v,) in rows if v)


def _ratings(s: Session, turn_ids: list[int]) -> dict[int, int]:
    ratings: dict[int, int] = {}
    for at in range(0, len(turn_ids), CHUNK):
        rows = s.execute(
            select(Feedback.turn_id, func.min(Feedback.value), func.max(Feedback.value))
            .where(Feedback.turn_id.in_(turn_ids[at : at + CHUNK]))
            .group_by(Feedback.turn_id)
        ).all()
        ratings.update({turn: rating(low, high) for turn, low, high in rows})
    return ratings


def _conversation_turns(s: Session, ids: set[int]) -> dict[int, list[tuple[int, str]]]:
    """(turn id, speaker) of each conversation, in order."""
    turns: dict[int, list[tuple[int, str]]] = {}
    ordered = sorted(ids)
    for at in range(0, len(ordered), CHUNK):
        rows = s.execute(
            select(Turn.conversation_id, Turn.id, Turn.speaker)
            .where(Turn.conversation_id.in_(ordered[at : at + CHUNK]))
            .order_by(Turn.id)
        ).all()
        for conversation, turn, speaker in rows:
            turns.setdefault(conversation, []).append((turn, speaker))
    return turns


def _stats(
    version: str,
    replies: list[Any],
    ratings: dict[int, int],
    conversations: dict[int, list[tuple[int, str]]],
) -> VersionStats:
    mine = {r.id for r in replies}
    opened = []  # the turns of each conversation whose first bot turn this version wrote
    for conversation in {r.conversation_id for r in replies}:
        turns = conversations[conversation]
        first_bot = next(i for i, (_, speaker) in enumerate(turns) if speaker == "bot")
        if turns[first_bot][0] in mine:
            opened.append((turns, first_bot))
    times = sorted(r.created_at for r in replies)
    span = (times[-1] - times[0]).total_seconds() if len(times) > 1 else 0.0
    return VersionStats(
        version=version,
        replies=len(replies),
        liked=Rate(sum(ratings.get(r.id) == 1 for r in replies), len(replies)),
        disliked=Rate(sum(ratings.get(r.id) == -1 for r in replies), len(replies)),
        conversations=len(opened),
        mean_turns=statistics.fmean(len(turns) for turns, _ in opened) if opened else None,
        continued=Rate(
            sum(any(sp == "user" for _, sp in turns[first + 1 :]) for turns, first in opened),
            len(opened),
        ),
        replies_per_s=len(replies) / span if span >= MIN_RATE_SPAN_S else None,
        decode_ms_p50=_median([r.decode_ms for r in replies]),
        queue_wait_ms_p50=_median([r.queue_wait_ms for r in replies]),
        sources=source_shares([r.source or "generated" for r in replies]),
    )


def source_shares(sources: Sequence[str]) -> dict[str, float]:
    """The share of each source among ``sources``, sorted by name."""
    counts: dict[str, int] = {}
    for source in sources:
        counts[source] = counts.get(source, 0) + 1
    return {k: counts[k] / len(sources) for k in sorted(counts)}


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None
