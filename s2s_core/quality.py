"""What a person notices in a reply, measured without the model: saying goodbye, greeting
someone who did not greet, cheering at bad news, repeating a word, echoing the message,
falling back on a stock sentence that answers nothing.

distinct-n and BLEU stayed healthy while a quarter of the replies said goodbye; these rates
say what a reader sees. Words are lower-cased runs of letters, digits and apostrophes.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Sequence

from s2s_core.cleaning import is_closer, is_greeting, sentences
from s2s_core.consistency import life_claims

_WORD = re.compile(r"[a-z0-9']+")
# Words that recur in any fluent sentence ("I think I ..."), so repeating them is no defect.
_FUNCTION_WORDS = """a an the and or but so if then than that this these those there here it its
it's i i'm i've i'd i'll me my mine you you're you've your yours we we're our us he she him her
his they them their they're is am are was were be been being do does did doing have has had
having to of in on at by for with about from as into like just not no yes too very really also
what when where which who why how can could would should will shall may might must don't didn't
doesn't can't won't isn't aren't wasn't all any some more most much many one up out get got go
going oh well yeah haha lol ok okay s t"""
FUNCTION_WORDS = frozenset(_FUNCTION_WORDS.split())


# Bad news a person tells ("my grandmother passed away", "I lost my job", "I feel lonely"),
# not a fear of something ("I would be too afraid of sharks" is no news to be sorry for),
# and the cheering a chit-chat model answers everything with ("That's so cool! I love it").
BAD_NEWS = re.compile(
    r"\b(passed away|died|dead|death|funeral|cancer|hospital|sick|ill|hurt|injur\w*|accident"
    r"|lost my|losing my|lose my|laid off|fired|broke up|broke (my|his|her)|broken|dumped"
    r"|fractur\w*|sprain\w*|surgery|stitches|plate and \d+ screws|screws in my"
    r"|divorc\w*|failed|fail|lonely|depress\w*|sad|stress\w*|anxious|anxiety|worried|worry"
    r"|nervous|scared(?! of)|afraid(?! of)|grie\w+|miss (him|her))\b",
    re.IGNORECASE,
)
CHEER = re.compile(
    r"\b(that'?s|thats|that is|how|so|sounds) (a |so |really |very |pretty )?"
    r"(cool|awesome|great|nice|amazing|fun|exciting|good|fantastic|wonderful)\b"
    r"|\b(awesome|congrat\w*|yay|woo+|wow|lucky)\b|\boh,? (nice|cool|good)\b"
    r"|\bi love (it|that)\b|\bgood for you\b|\b(i'?m|i am) (so |really )?excited\b"
    r"|^\s*(nice|cool|great|sweet|neat)\s*!",  # "Nice! What do you do for work?"
    re.IGNORECASE,
)


# The sentences the first model fell back on whatever was said, found by reading its replies
# to bench/openers.txt: they answer nothing ("I don't think I've ever heard of that one" to a
# breakup, a joke request or "hmm"; BYU and the freshman year are the corpus speakers' own
# lives, told to anyone). Every checkpoint's own are counted at export (s2s_core.stock);
# these stay for the variants no count finds ("I'm going to be a freshman next semester").
STOCK = re.compile(
    r"\b(i've|i have|i) (ever |never )?heard of\b"
    r"|\bnot sure what i'?m going to do with (it|that)\b"
    r"|\bi don'?t know what (i'?m|you'?re) saying\b"
    r"|\bi'?m going to be a freshman\b"
    r"|\bbyu\b",
    re.IGNORECASE,
)


Stock = frozenset[str]  # a checkpoint's own stock sentences, normalized (s2s_core.stock)
NONE: Stock = frozenset()
STOCK_MIN_WORDS = 3  # shorter sentences ("Yes!", "Haha.") are how people talk, never stock
_NOT_A_WORD = re.compile(r"[^a-z0-9' ]+")


def is_stock(text: str, learned: Stock = NONE) -> bool:
    """A hand-written stock sentence (``STOCK``), or a sentence holding one of the
    checkpoint's own ("Yeah, I think it's a lot of fun to watch." holds "i think it's a lot
    of fun": 60% of the hand-written list's finds in the default model's n-best are found
    this way, against 47% by equality)."""
    if STOCK.search(text) is not None:
        return True
    if not learned:
        return False
    padded = [f" {normalized(s)} " for s in sentences(text)]
    return any(f" {known} " in sentence for sentence in padded for known in learned)


def normalized(sentence: str) -> str:
    """How sentences are compared: lower case, punctuation off, spaces collapsed."""
    return " ".join(_NOT_A_WORD.sub(" ", sentence.lower().replace("’", "'")).split())


def sentence_keys(text: str) -> set[str]:
    """The normalized sentences of a text long enough to be stock."""
    keys = (normalized(s) for s in sentences(text))
    return {k for k in keys if len(k.split()) >= STOCK_MIN_WORDS}


def learned_stock(meta: dict[str, object]) -> Stock:
    """The stock sentences a checkpoint's metrics.json lists (``s2s models stock``; none
    when it lists none). ValueError when the entry is malformed."""
    if not isinstance(meta, dict):
        raise ValueError("metrics.json must hold an object")
    entry = meta.get("stock_sentences")
    if entry is None:
        return NONE
    found = entry.get("sentences") if isinstance(entry, dict) else None
    if not isinstance(found, list) or not all(isinstance(s, str) for s in found):
        raise ValueError("metrics.json stock_sentences must hold a list of sentences")
    return frozenset(normalized(s) for s in found)


SYMPATHY = re.compile(
    r"\b(sorry|oh no|that'?s (too )?bad|that sucks|so sad|condolences|hope (you|he|she|it))\b",
    re.IGNORECASE,
)


def is_sympathetic(text: str) -> bool:
    return SYMPATHY.search(text) is not None


def is_bad_news(text: str) -> bool:
    return BAD_NEWS.search(text) is not None


def is_cheerful(text: str) -> bool:
    return CHEER.search(text) is not None


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def has_repetition(text: str) -> bool:
    """Degenerate repetition: the same word twice in a row ("food food"), or a word that is
    not a function word used three times ("I think I ..." is how people talk)."""
    tokens = words(text)
    if any(a == b for a, b in itertools.pairwise(tokens)):
        return True
    return any(n >= 3 for w, n in Counter(tokens).items() if w not in FUNCTION_WORDS)


def repeats_content_word(text: str) -> bool:
    """A word that carries meaning (not a function word) said twice in one reply."""
    counts = Counter(w for w in words(text) if w not in FUNCTION_WORDS)
    return any(n >= 2 for n in counts.values())


def copy_rate(reply: str, context: str) -> float:
    """Share of the reply's words that also occur in the context: echoing scores high."""
    reply_words, seen = words(reply), set(words(context))
    return sum(w in seen for w in reply_words) / len(reply_words) if reply_words else 0.0


def defects(reply: str, message: str, stock: Stock = NONE, by_people: bool = False) -> list[str]:
    """What is wrong with ``reply`` as an answer to ``message`` (empty: nothing found);
    ``stock``: the checkpoint's own stock sentences beside the hand-written ones.
    ``by_people``: the reply is a person's (a corpus reply), whose content word said twice
    is how people talk ("Snowboarding is cool too. I just favor skiing more" after a word
    on skiing), not a decoder's loop: only a degenerate repetition counts then."""
    found = []
    if is_closer(reply) and not is_closer(message):
        found.append("sign_off")
    if is_greeting(reply) and not is_greeting(message):
        found.append("greeting")
    if is_cheerful(reply) and is_bad_news(message):
        found.append("cheer_to_bad_news")
    if has_repetition(reply) or (repeats_content_word(reply) and not by_people):
        found.append("repetition")
    if is_stock(reply, stock) and not is_stock(message, stock):
        found.append("stock_sentence")
    return found


def quality_rates(
    replies: Sequence[str], messages: Sequence[str], stock: Stock = NONE
) -> dict[str, float]:
    """Shares of replies that say goodbye (to a message that did not), greet a message that
    was no greeting, repeat a word (``has_repetition``), use a stock sentence (``STOCK``,
    or one of ``stock``), or tell a life as the speaker's own (``consistency.life_claims``:
    untrue of the bot, normal for the corpus' people); the mean copy rate from the message."""
    n = max(len(replies), 1)
    pairs = list(zip(replies, messages, strict=True))
    return {
        "sign_off_rate": sum(is_closer(r) and not is_closer(m) for r, m in pairs) / n,
        "greeting_to_non_greeting_rate": sum(
            is_greeting(r) and not is_greeting(m) for r, m in pairs
        )
        / n,
        "cheer_to_bad_news_rate": sum(is_cheerful(r) and is_bad_news(m) for r, m in pairs) / n,
        "repetition_rate": sum(has_repetition(r) for r in replies) / n,
        "content_word_repeat_rate": sum(repeats_content_word(r) for r in replies) / n,
        "stock_phrase_rate": sum(is_stock(r, stock) and not is_stock(m, stock) for r, m in pairs)
        / n,
        "life_claim_rate": sum(bool(life_claims(r)) for r in replies) / n,
        "copy_rate": sum(copy_rate(r, m) for r, m in pairs) / n,
    }
