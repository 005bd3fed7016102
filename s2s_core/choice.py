"""The reply chosen among the n-best: the first candidate, in the n-best's order (MMI's when
a backward model reranked it), that a person would accept.

Rules, in order: a candidate must say something, must not be mostly ``<unk>`` and must not
repeat one of the bot's recent replies in this conversation; among those, the first without
a defect (``quality.defects``: a goodbye to a message that said none, a greeting to a
message that was none, cheering at bad news, a repeated word, a stock sentence that answers
nothing; cut at ``max_len`` mid-sentence; the bot's self-description when nobody asked; a
life told as the bot's own, or the opposite of a taste the bot stated before: see
``s2s_core.consistency``; a sentence or question the bot already said in this conversation)
wins, else the first acceptable one, else a fallback. A candidate cut mid-sentence (by
``max_len``, or by the model stopping where its training targets were cut) loses that
sentence when a whole one precedes it, else it is "unfinished"; a defect-free candidate that
lost nothing goes before one that did (the lost sentence may be what earned its MMI rank: "I
want to learn a new language" got "That's cool. I'm a little scared of it." once its cut
sentence about Spanish was gone, over "I would love to learn spanish"). A known question
about the bot (``s2s_core.persona``) gets its one true answer instead, and a question the
user asked before in the chat gets the bot's earlier answer again. Bad news that the
chosen reply meets without sympathy (the corpus holds little: "My grandmother passed away"
got "That's so cool! I love it", and then "I have a friend who is going to go to BYU") gets
it: a defect-free candidate that shows sympathy goes first (the hybrid pool's corpus replies
often do: "Ouch! That's too bad"), else the reply loses its cheering and stock sentences and
opens with ``SORRY``, a rule of the product, like the persona answers, not the model's
words. Any other chosen reply loses its stock sentences when others remain (when every
candidate had one), and any chosen reply loses the sentences that tell a life.
The worker, ``s2s eval`` and replay all choose through this one function.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from s2s_core.cleaning import sentences
from s2s_core.consistency import contradicts, life_claims
from s2s_core.decoding import Hypothesis
from s2s_core.mmi import Reranked
from s2s_core.persona import describes_the_bot, persona_answer
from s2s_core.quality import (
    NONE,
    Stock,
    defects,
    is_bad_news,
    is_cheerful,
    is_stock,
    is_sympathetic,
)
from s2s_core.special import EOS_ID, UNK_ID
from s2s_core.tokenizer import Tokenizer

MAX_UNK_SHARE = 0.2
FALLBACK = "…"
SORRY = "I'm sorry to hear that."
PERSONA = -2  # Choice.index when the persona rule answered a question about the bot
ASKED_AGAIN = -3  # Choice.index when the bot gave its earlier answer to a question again
LIKE_I_SAID = "Like I said:"


@dataclass(frozen=True)
class Choice:
    text: str
    index: int  # position among the candidates, -1 for the fallback, -2 (PERSONA)
    candidates: list[dict[str, Any]]  # each: text, source, score, [its parts], [defects]

    @property
    def source(self) -> str:
        """Where the reply came from: generated, retrieved, persona, earlier answer or
        fallback."""
        if self.index == PERSONA:
            return "persona"
        if self.index == ASKED_AGAIN:
            return "earlier answer"
        return str(self.candidates[self.index]["source"]) if self.index >= 0 else "fallback"


@dataclass(frozen=True)
class Candidate:
    """A reply the choice may send: decoded (and trimmed) from a hypothesis, or a corpus
    reply, with the scores that ordered it."""

    text: str
    source: str = "generated"  # "generated" by the Seq2Seq, or "retrieved" from the corpus
    scores: dict[str, float] = field(default_factory=dict)  # "score" first, then its parts
    cut: bool = False  # ends mid-sentence (nothing whole to keep)
    trimmed: bool = False  # lost its unfinished last sentence
    unk_share: float = 0.0


def as_candidates(
    nbest: Sequence[Hypothesis | Reranked],
    tokenizer: Tokenizer,
    target_len: int | None = None,
    trim: bool = True,
) -> list[Candidate]:
    """The n-best as texts, in its order. ``target_len`` is the length the checkpoint's
    training targets were cut at (``DataConfig.max_tgt_len``): a model taught ``<eos>``
    after cut targets stops near it mid-sentence ("... But I don't think I"), so a reply
    that long without a sentence end counts as cut; with ``trim`` a cut reply keeps its
    whole sentences when it has any."""
    out = []
    for item in nbest:
        hyp = item.hypothesis if isinstance(item, Reranked) else item
        tokens = [t for t in hyp.tokens if t != EOS_ID]
        text = tokenizer.decode(tokens).strip()
        cut = not hyp.tokens or hyp.tokens[-1] != EOS_ID  # max_len ended it mid-sentence
        cut = cut or _stopped_at_the_cut(text, len(hyp.tokens), target_len)
        trimmed = cut and trim
        if trimmed:
            text, cut = _whole_sentences(text)
        unk_share = tokens.count(UNK_ID) / max(len(tokens), 1)
        out.append(Candidate(text, "generated", _scores(item), cut, trimmed, unk_share))
    return out


def choose(
    nbest: Sequence[Hypothesis | Reranked],
    tokenizer: Tokenizer,
    message: str,
    recent_bot: Sequence[str] = (),
    avoid_defects: bool = True,
    *,
    user_before: str = "",
    target_len: int | None = None,
    answered_before: str | None = None,
    stock: Stock = NONE,
) -> Choice:
    """The choice among a decoded n-best (``as_candidates``, then ``choose_among``)."""
    candidates = as_candidates(nbest, tokenizer, target_len, trim=avoid_defects)
    return choose_among(
        candidates,
        message,
        recent_bot,
        avoid_defects,
        user_before=user_before,
        answered_before=answered_before,
        stock=stock,
    )


def choose_among(
    candidates: Sequence[Candidate],
    message: str,
    recent_bot: Sequence[str] = (),
    avoid_defects: bool = True,
    *,
    user_before: str = "",
    answered_before: str | None = None,
    stock: Stock = NONE,
) -> Choice:
    """``avoid_defects=False`` keeps only the acceptability rules, without the defect and
    persona rules (for ablations: the choice as it was before them). ``user_before`` is the
    user's turn before ``message``: bad news there makes cheering a defect too, as a story
    goes on ("I broke my wrist ..." then "now i have a plate and 8 screws in my wrist" got
    "That's so cool! I love it."). ``answered_before`` is what the bot said when asked the
    same question earlier in the chat (``consistency.earlier_answer``): it is said again.
    ``stock``: the checkpoint's own stock sentences (``s2s_core.stock``), beside the
    hand-written ones."""
    answer = persona_answer(message) if avoid_defects else None
    sad_story = is_bad_news(user_before)
    said = {_norm(t) for t in recent_bot}
    said_sentences = {s for t in recent_bot for s in _own_sentences(t)}
    bad_news = avoid_defects and is_bad_news(message)
    records, whole, clean, acceptable, kind = [], -1, -1, -1, -1
    for i, cand in enumerate(candidates):
        found = defects(cand.text, message, stock, by_people=cand.source == "retrieved")
        if sad_story and is_cheerful(cand.text) and "cheer_to_bad_news" not in found:
            found.append("cheer_to_bad_news")
        if describes_the_bot(cand.text) and answer is None:
            found.append("unasked_self_description")
        if life_claims(cand.text):
            found.append("tells_a_life")
        if contradicts(cand.text, recent_bot):
            found.append("contradicts_itself")
        if said_sentences & _own_sentences(cand.text):
            found.append("repeats_itself")
        if cand.cut:
            found.append("unfinished")
        records.append(_record(cand, found))
        if not cand.text or cand.unk_share > MAX_UNK_SHARE or _norm(cand.text) in said:
            continue
        acceptable = i if acceptable < 0 else acceptable
        if not found and clean < 0:
            clean = i
        if not found and not cand.trimmed and whole < 0:
            whole = i
        if bad_news and not found and kind < 0 and is_sympathetic(cand.text):
            kind = i
    if answer is not None:
        return Choice(answer, PERSONA, records)
    if avoid_defects and answered_before:
        return Choice(f"{LIKE_I_SAID} {answered_before}", ASKED_AGAIN, records)
    pick = next((i for i in (kind, whole, clean) if i >= 0), -1) if avoid_defects else -1
    pick = pick if pick >= 0 else acceptable
    text = candidates[pick].text if pick >= 0 else FALLBACK
    if bad_news and not is_sympathetic(text):
        text = _sympathise(text, stock)
    elif avoid_defects:
        text = _without(text, lambda s: is_stock(s, stock) and not is_stock(message, stock))
    if avoid_defects:
        text = _without(text, life_claims)
    return Choice(text, pick, records)


# The user's turns before a message that still carry their story: bad news told two messages
# ago still makes cheering a defect ("I lost my job today." ... "my company had layoffs and I
# was one of them." got "Nice! What do you do for work?").
STORY_TURNS = 3


def user_turns_before(earlier: Sequence[tuple[str | None, str]], n: int = STORY_TURNS) -> str:
    """The user's last ``n`` turns among the (speaker, text) turns before a message, oldest
    first, joined by spaces ("" if none)."""
    mine = [text for speaker, text in earlier if speaker == "user"]
    return " ".join(mine[-n:]) if n > 0 else ""


# Within this many tokens of the training targets' cut, a reply without a sentence end was
# cut: on 1,000 validation replies, 68% of those 27 tokens or longer lacked one, 20% of the
# shorter ones (chat often ends without punctuation).
CUT_MARGIN = 4


def _stopped_at_the_cut(text: str, length: int, target_len: int | None) -> bool:
    return (
        target_len is not None
        and length >= target_len - CUT_MARGIN
        and not text.rstrip().endswith((".", "!", "?", ")"))
    )


def _whole_sentences(text: str) -> tuple[str, bool]:
    """A cut reply (a third of the ``varied`` test replies: "... But I don't think I")
    without its unfinished last sentence, when a whole one comes before it; the flag says
    whether it is still cut."""
    parts = sentences(text)
    if len(parts) < 2:
        return text, True
    return " ".join(parts[:-1]), False


def _without(text: str, unwanted: Callable[[str], object]) -> str:
    """``text`` without its unwanted sentences when others remain: when every candidate has
    a stock sentence ("We're having a baby in the spring!" → "Oh my goodness, that's so
    cool! I'm going to be a freshman this fall. What about you?") or tells a life, the rest
    can still answer."""
    parts = sentences(text)
    kept = [s for s in parts if not unwanted(s)]
    if not kept or len(kept) == len(parts):
        return text
    return " ".join(s[:1].upper() + s[1:] for s in kept)


def _sympathise(text: str, stock: Stock) -> str:
    """``text`` without its cheering and stock sentences, opening with ``SORRY``."""
    kept = [
        s[:1].upper() + s[1:]
        for s in sentences(text)
        if not is_cheerful(s) and not is_stock(s, stock)
    ]
    if kept and len(kept[-1].split()) < 2 and kept[-1][-1] not in ".!?":
        kept.pop()  # a word left where max_len cut the reply ("... a good person. I")
    return " ".join([SORRY, *kept])


def _scores(item: Hypothesis | Reranked) -> dict[str, float]:
    if isinstance(item, Reranked):
        return {
            "score": round(item.score, 4),
            "forward": round(item.forward, 4),
            "backward": round(item.backward, 4),
        }
    return {"score": round(item.score, 4)}


def _record(cand: Candidate, found: list[str]) -> dict[str, Any]:
    """What the store logs of a candidate: its text, source, scores and defects."""
    entry: dict[str, Any] = {"text": cand.text, "source": cand.source, **cand.scores}
    if found:
        entry["defects"] = found
    return entry


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _own_sentences(text: str) -> set[str]:
    """The sentences of a reply that would read as the bot repeating itself: questions and
    sentences of three words or more ("Nice! What's your major?" five turns running, each
    time with another opener; "Nice!" alone may recur)."""
    found = set()
    for sentence in sentences(text):
        words = re.findall(r"[a-z0-9']+", sentence.lower())
        if len(words) >= 3 or (sentence.rstrip().endswith("?") and len(words) >= 2):
            found.add(" ".join(words))
    return found
