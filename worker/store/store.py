"""The queries the rest of the system needs, each in its own transaction."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    ScalarSelect,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import Executable

from worker.store.dialect import insert_ignore, insert_ignore_many
from worker.store.engine import make_engine, make_sessionmaker
from worker.store.models import (
    Chat,
    Conversation,
    Feedback,
    Generation,
    Turn,
    User,
    utcnow,
)
from worker.store.records import (
    FEEDBACK_VALUES,
    Exchange,
    LoggedConversation,
    LoggedTurn,
    StoredReply,
    rating,
    storable_text,
)
from worker.store.registry import ModelRegistry


class DialogueStore:
    def __init__(self, engine: Engine | str) -> None:
        self.engine = make_engine(engine) if isinstance(engine, str) else engine
        self.sessions = make_sessionmaker(self.engine)
        self.reads = make_sessionmaker(self.engine, read_only=True)
        self.registry = ModelRegistry(self.sessions, self.reads)

    # -- replies -----------------------------------------------------------------------

    def store_exchange(self, ex: Exchange) -> StoredReply:
        """User turn + bot turn + generation in one transaction. A repeat of the same
        (chat, message id) writes nothing and returns the reply stored the first time."""
        return self.store_exchanges([ex])[0]

    def store_exchanges(self, exchanges: Sequence[Exchange]) -> list[StoredReply]:
        """Many exchanges in one transaction and a few statements per chat-distinct group,
        however many exchanges there are: the worker's group commit. Each behaves as
        ``store_exchange`` would; a second copy of one (chat, message id) is a repeat."""
        stored: dict[tuple[int, int], StoredReply] = {}
        with self.sessions() as s, s.begin():
            for group in _chat_distinct_groups(exchanges):
                stored.update(_store_group(s, group))
        results, seen = [], set()
        for ex in exchanges:
            key = (ex.chat_id, ex.message_id)
            results.append(stored[key] if key not in seen else replace(stored[key], created=False))
            seen.add(key)
        return results

    def find_reply(self, chat_id: int, message_id: int) -> StoredReply | None:
        """The stored reply to this Telegram message, if it was answered already."""
        return self.find_replies([(chat_id, message_id)]).get((chat_id, message_id))

    def find_replies(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], StoredReply]:
        """The stored replies to those of these (chat, message id) that were answered."""
        if not keys:
            return {}
        with self.reads() as s:
            rows = s.execute(_replies_query(len(set(keys))), _message_params(keys)).all()
        return {
            (r.chat_id, r.telegram_message_id): StoredReply(r.user_turn, r.id, r.text, False)
            for r in rows
        }

    def recent_context(self, chat_id: int, n: int) -> list[tuple[str, str]]:
        """The last ``n`` (speaker, text) turns of the chat's open conversation, oldest first."""
        return self.recent_contexts([chat_id], n)[chat_id]

    def recent_contexts(self, chat_ids: Sequence[int], n: int) -> dict[int, list[tuple[str, str]]]:
        """``recent_context`` of many chats in one query: per chat, an index walk back from
        its newest turn (a window over whole conversations would read all of long ones)."""
        chats = sorted(set(chat_ids))
        found: dict[int, list[tuple[str, str]]] = {c: [] for c in chats}
        if not chats or n <= 0:
            return found
        params = {f"chat_{i}": chat for i, chat in enumerate(chats)}
        with self.reads() as s:
            rows = s.execute(_recent_turns_query(len(chats), n), params).all()
        for row in sorted(rows, key=lambda r: r.id):
            found[row.chat_id].append((row.speaker, row.text))
        return found

    def last_message_id(self, chat_id: int) -> int:
        """The highest user message id stored for the chat (0 when none)."""
        with self.reads() as s:
            found = s.scalar(
                select(func.max(Turn.telegram_message_id)).where(Turn.chat_id == chat_id)
            )
        return int(found or 0)

    def reset_conversation(self, chat_id: int) -> bool:
        """Ends the chat's open conversation; the next message starts a new one."""
        with self.sessions() as s, s.begin():
            result = s.execute(
                update(Conversation)
                .where(Conversation.chat_id == chat_id, Conversation.ended_at.is_(None))
                .values(ended_at=utcnow())
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    # -- feedback and privacy ------------------------------------------------------------

    def record_feedback(self, turn_id: int, user_id: int, value: int) -> None:
        """One vote per bot turn, by the user it answered; a second press replaces the
        first. Anyone else's vote is refused (ValueError): votes choose training data."""
        if value not in FEEDBACK_VALUES or isinstance(value, bool):
            raise ValueError(f"feedback value must be +1 or -1, got {value!r}")
        with self.sessions() as s, s.begin():
            turn = s.get(Turn, turn_id)
            if turn is None or turn.speaker != "bot":
                raise ValueError(f"turn {turn_id} is not a bot turn")
            answered = s.get(Turn, turn.reply_to_id) if turn.reply_to_id is not None else None
            if answered is None or answered.user_id != user_id:
                raise ValueError(f"user {user_id} may not vote on turn {turn_id}: not theirs")
            insert_ignore(s, User, id=user_id, created_at=utcnow())
            if not insert_ignore(
                s, Feedback, turn_id=turn_id, user_id=user_id, value=value, created_at=utcnow()
            ):
                s.execute(
                    update(Feedback)
                    .where(Feedback.turn_id == turn_id, Feedback.user_id == user_id)
                    .values(value=value, created_at=utcnow())
                )

    def forget_user(self, user_id: int) -> dict[str, int]:
        """Deletes everything that carries the user's words or votes: their turns, the bot
        turns that replied to them (with generations and anyone's feedback on them), their
        feedback, conversations and chats left empty; blanks their personal fields."""
        with self.sessions() as s, s.begin():
            said = list(s.scalars(select(Turn.id).where(Turn.user_id == user_id)))
            replies = list(s.scalars(select(Turn.id).where(Turn.reply_to_id.in_(said))))
            doomed = said + replies
            places = s.execute(
                select(Turn.conversation_id, Turn.chat_id).where(Turn.id.in_(said)).distinct()
            ).all()
            counts = {
                "feedback": _delete(
                    s, Feedback, (Feedback.user_id == user_id) | Feedback.turn_id.in_(doomed)
                ),
                "generations": _delete(s, Generation, Generation.turn_id.in_(replies)),
                "bot_turns": _delete(s, Turn, Turn.id.in_(replies)),
                "user_turns": _delete(s, Turn, Turn.id.in_(said)),
            }
            empty = ~select(Turn.id).where(Turn.conversation_id == Conversation.id).exists()
            counts["conversations"] = _delete(
                s, Conversation, Conversation.id.in_([p[0] for p in places]) & empty
            )
            no_conversation = (
                ~select(Conversation.id).where(Conversation.chat_id == Chat.id).exists()
            )
            counts["chats"] = _delete(
                s, Chat, Chat.id.in_([p[1] for p in places]) & no_conversation
            )
            s.execute(
                update(User)
                .where(User.id == user_id)
                .values(username=None, language=None, forgotten_at=utcnow())
            )
            return counts

    # -- export and statistics -------------------------------------------------------------

    def conversation_pages(
        self, start: datetime, end: datetime, page: int = 100
    ) -> Iterator[list[LoggedConversation]]:
        """The conversations with turns in [start, end), every turn of each (in order, with
        its rating and whether its user was forgotten), ``page`` conversations at a time and
        a few queries per page: large histories never sit in memory at once."""
        after = 0
        while True:
            with self.reads() as s:
                ids = list(
                    s.scalars(
                        select(Turn.conversation_id)
                        .where(
                            Turn.created_at >= start,
                            Turn.created_at < end,
                            Turn.conversation_id > after,
                        )
                        .group_by(Turn.conversation_id)
                        .order_by(Turn.conversation_id)
                        .limit(page)
                    )
                )
                conversations = _logged_conversations(s, ids)
            yield conversations
            if len(ids) < page:
                return
            after = ids[-1]

    def stats(self) -> dict[str, Any]:
        with self.reads() as s:
            day = func.date(Turn.created_at)
            per_day = s.execute(select(day, func.count()).group_by(day).order_by(day)).all()
            positive = func.sum(case((Feedback.value == 1, 1), else_=0))
            per_model = s.execute(
                select(Generation.model_version, positive, func.count())
                .join(Feedback, Feedback.turn_id == Generation.turn_id)
                .group_by(Generation.model_version)
            ).all()
            source = Generation.decoding["source"].as_string()
            per_source = s.execute(select(source, func.count()).group_by(source)).all()
        return {
            "messages_per_day": [{"day": str(d), "messages": n} for d, n in per_day],
            "feedback_by_model": [
                {"model_version": m, "votes": n, "positive_ratio": (p or 0) / n}
                for m, p, n in per_model
            ],
            # Replies stored before sources were recorded were all generated.
            "replies_by_source": _merged_counts((src or "generated", n) for src, n in per_source),
        }


def _merged_counts(pairs: Iterable[tuple[str, int]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for key, n in pairs:
        counts[key] = counts.get(key, 0) + n
    return dict(sorted(counts.items()))


# The lookups' statements are built once per shape (how many chats or messages) with bound
# values: building one costs more than running it, and a worker runs them for every group
# of replies. Message i of a lookup binds chat_i and message_i; chat i binds chat_i.


def _open_conversation_id(chat: ColumnElement[int]) -> ScalarSelect[int]:
    """The chat's open conversation as a scalar subquery: turns are then read through
    their (conversation, id) index, newest first, whatever the chat's age."""
    return (
        select(Conversation.id)
        .where(Conversation.chat_id == chat, Conversation.ended_at.is_(None))
        .scalar_subquery()
    )


def _any_message(turns: Any, count: int) -> ColumnElement[bool]:
    """Turns that are one of ``count`` bound (chat, message id) pairs: OR-ed pairs, which
    both databases answer from the unique index; SQLite scans the whole index for a
    row-value IN list."""
    return or_(
        *(
            and_(
                turns.chat_id == bindparam(f"chat_{i}"),
                turns.telegram_message_id == bindparam(f"message_{i}"),
            )
            for i in range(count)
        )
    )


def _message_params(keys: Sequence[tuple[int, int]]) -> dict[str, int]:
    params: dict[str, int] = {}
    for i, (chat, message) in enumerate(sorted(set(keys))):
        params[f"chat_{i}"], params[f"message_{i}"] = chat, message
    return params


@lru_cache(maxsize=128)
def _replies_query(count: int) -> Executable:
    """The bot turns that reply to any of ``count`` messages, with their user turns."""
    asked = aliased(Turn, name="asked")
    return (
        select(
            asked.chat_id,
            asked.telegram_message_id,
            asked.id.label("user_turn"),
            Turn.id,
            Turn.text,
        )
        .join(asked, Turn.reply_to_id == asked.id)
        .where(_any_message(asked, count))
    )


@lru_cache(maxsize=128)
def _asked_turns_query(count: int) -> Executable:
    """The user turns of any of ``count`` messages."""
    return select(Turn.id, Turn.conversation_id, Turn.chat_id, Turn.telegram_message_id).where(
        _any_message(Turn, count)
    )


@lru_cache(maxsize=128)
def _recent_turns_query(chats: int, n: int) -> Executable:
    """Per chat, an index walk back from its newest turn to its last ``n``."""
    latest = [
        select(Turn.chat_id, Turn.id, Turn.speaker, Turn.text)
        .where(Turn.conversation_id == _open_conversation_id(bindparam(f"chat_{i}")))
        .order_by(Turn.id.desc())
        .limit(n)
        .subquery()
        for i in range(chats)
    ]
    return union_all(*(select(q) for q in latest))


def _chat_distinct_groups(exchanges: Sequence[Exchange]) -> list[list[Exchange]]:
    """The distinct exchanges in groups that hold each chat at most once, in order: within
    a group all user turns go in before all bot turns, and a chat's turns must alternate."""
    groups: list[list[Exchange]] = []
    placed: dict[int, int] = {}  # chat -> index of the last group holding it
    seen: set[tuple[int, int]] = set()
    for ex in exchanges:
        if (ex.chat_id, ex.message_id) in seen:
            continue
        seen.add((ex.chat_id, ex.message_id))
        index = placed.get(ex.chat_id, -1) + 1
        if index == len(groups):
            groups.append([])
        groups[index].append(ex)
        placed[ex.chat_id] = index
    return groups


def _store_group(s: Session, group: list[Exchange]) -> dict[tuple[int, int], StoredReply]:
    now = utcnow()
    users = {ex.user_id: ex for ex in group}
    insert_ignore_many(
        s,
        User,
        [
            {"id": u, "username": ex.username, "language": ex.language, "created_at": now}
            for u, ex in users.items()
        ],
    )
    forgotten = _forgotten_at(s, list(users))
    late = {(ex.chat_id, ex.message_id) for ex in group if _sent_before(ex, forgotten)}
    dropped = {key: StoredReply(0, 0, "", created=False, forgotten=True) for key in late}
    group = [ex for ex in group if (ex.chat_id, ex.message_id) not in late]
    if not group:
        return dropped
    insert_ignore_many(
        s, Chat, [{"id": ex.chat_id, "type": ex.chat_type, "created_at": now} for ex in group]
    )
    conversations = _open_conversations(s, [ex.chat_id for ex in group])
    keys = [(ex.chat_id, ex.message_id) for ex in group]
    insert_ignore_many(
        s,
        Turn,
        [
            {
                "conversation_id": conversations[ex.chat_id],
                "chat_id": ex.chat_id,
                "user_id": ex.user_id,
                "speaker": "user",
                "text": storable_text(ex.user_text),
                "telegram_message_id": ex.message_id,
                "created_at": now,
            }
            for ex in group
        ],
    )
    asked = {
        (r.chat_id, r.telegram_message_id): r
        for r in s.execute(_asked_turns_query(len(keys)), _message_params(keys))
    }
    created = set(
        insert_ignore_many(
            s,
            Turn,
            [
                {
                    "conversation_id": asked[key].conversation_id,
                    "chat_id": ex.chat_id,
                    "speaker": "bot",
                    "text": storable_text(ex.reply_text),
                    "reply_to_id": asked[key].id,
                    "created_at": now,
                }
                for key, ex in zip(keys, group, strict=True)
            ],
            returning=Turn.reply_to_id,
        )
    )
    answers = {
        r.reply_to_id: r
        for r in s.execute(
            select(Turn.id, Turn.reply_to_id, Turn.text).where(
                Turn.reply_to_id.in_([row.id for row in asked.values()])
            )
        )
    }
    stored = {}
    for key in keys:
        user_turn = asked[key].id
        answer = answers[user_turn]
        stored[key] = StoredReply(user_turn, answer.id, answer.text, user_turn in created)
    generations = [
        {"turn_id": stored[key].bot_turn_id} | vars(ex.generation)  # asdict would deep-copy
        for key, ex in zip(keys, group, strict=True)
        if stored[key].created
    ]
    if generations:
        s.execute(insert(Generation), generations)
    return {**stored, **dropped}


def _forgotten_at(s: Session, user_ids: list[int]) -> dict[int, datetime]:
    rows = s.execute(
        select(User.id, User.forgotten_at).where(
            User.id.in_(user_ids), User.forgotten_at.is_not(None)
        )
    ).all()
    return {r.id: r.forgotten_at for r in rows}


def _sent_before(ex: Exchange, forgotten: dict[int, datetime]) -> bool:
    """Whether the message was sent before its user asked to be forgotten: a message in
    flight during /forget must not bring their words back."""
    at = forgotten.get(ex.user_id)
    if at is None or ex.sent_at is None:
        return False
    return ex.sent_at <= _aware(at).timestamp()


def _open_conversations(s: Session, chat_ids: list[int]) -> dict[int, int]:
    """The open conversation of each chat, opening one where there is none."""
    now = utcnow()
    insert_ignore_many(s, Conversation, [{"chat_id": c, "started_at": now} for c in chat_ids])
    return dict(
        s.execute(
            select(Conversation.chat_id, Conversation.id).where(
                Conversation.chat_id.in_(chat_ids), Conversation.ended_at.is_(None)
            )
        ).all()
    )


def _delete(s: Session, model: type[Any], condition: Any) -> int:
    return int(s.execute(delete(model).where(condition)).rowcount)  # type: ignore[attr-defined]


def _logged_conversations(s: Session, ids: list[int]) -> list[LoggedConversation]:
    """Plain values for the conversations ``ids``: three queries for the whole page."""
    rows = s.execute(
        select(
            Turn.id,
            Turn.conversation_id,
            Turn.speaker,
            Turn.text,
            Turn.reply_to_id,
            Turn.created_at,
            Generation.model_version,
            Generation.decoding,
            User.forgotten_at,
        )
        .outerjoin(Generation, Generation.turn_id == Turn.id)
        .outerjoin(User, User.id == Turn.user_id)
        .where(Turn.conversation_id.in_(ids))
        .order_by(Turn.conversation_id, Turn.id)
    ).all()
    votes = {
        turn_id: rating(low, high)
        for turn_id, low, high in s.execute(
            select(Feedback.turn_id, func.min(Feedback.value), func.max(Feedback.value))
            .join(Turn, Turn.id == Feedback.turn_id)
            .where(Turn.conversation_id.in_(ids))
            .group_by(Feedback.turn_id)
        ).all()
    }
    turns: dict[int, list[LoggedTurn]] = {conversation_id: [] for conversation_id in ids}
    for row in rows:
        turns[row.conversation_id].append(
            LoggedTurn(
                id=row.id,
                speaker=row.speaker,
                text=row.text,
                created_at=_aware(row.created_at),
                user_forgotten=row.forgotten_at is not None,
                reply_to_id=row.reply_to_id,
                model_version=row.model_version,
                decoding=row.decoding,
                rating=votes.get(row.id, 0),
            )
        )
    return [LoggedConversation(conversation_id, turns[conversation_id]) for conversation_id in ids]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # SQLite
