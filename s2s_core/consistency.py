"""What the bot says about itself stays true and consistent within a conversation.

The bot is a chatbot (``s2s_core.persona``): it has no age, home, school, job, family or
pets. The corpus replies of the hybrid pool, and the Seq2Seq that learned from the same
corpus, speak as the students who wrote them ("I'm a junior at BYU", "my brother plays
that too", "I've been married for a while"): told as the bot's own, such a life is untrue,
and the next such reply tells another one ("I'm a freshman" three turns after "I graduated
last year"). So a candidate that tells a life (``life_claims``) is a defect of the choice, always: a
life told before anyone asks is contradicted by the true answer when someone does ("My dog
is a year and a half old", then "do you have any pets?"). Blind readers of relevance, who
read the test conversations as between two people, judged the replies this changed worse
(``bench/judging/2026-12-07-round3``); readers of whole conversations found 17 of 110 bot
turns contradicting or telling a life before these rules, 3 when only lives told unasked
were allowed (``bench/judging/2026-12-07-consistency``). So is a candidate that
contradicts what the bot already said about its tastes in this conversation ("I love
pizza" after "I don't like pizza"; "my favorite movie is Up" after "... is Cars").

Patterns, not a model: each kind lists the first-person phrasings found in the corpus'
replies; tests hold examples of each and of ordinary replies that must pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from s2s_core.cleaning import sentences

_I_AM = r"(?:i'?m|i am|im)"
LIFE: dict[str, re.Pattern[str]] = {
    "age": re.compile(
        rf"\b{_I_AM} (?:only |just |almost |turning )?\d{{1,2}}(?: years old| yrs| yo)?\b"
        r"(?! ?(?:minutes?|mins?|hours?|hrs?|days?|weeks?|months?|percent|%|times|miles|"
        r"dollars|bucks|pages|points|pounds|lbs|feet|ft|inches|am|pm|o'?clock|:))"
        r"|\bi turned \d{1,2}\b|\bi was born in (?:19|20)\d\d\b",
        re.I,
    ),
    "home": re.compile(
        r"\bi (?:live|grew up|was born|was raised) (?:in|near|outside of|on) \w+|\bwhere i live\b"
        rf"|\b{_I_AM} in (?:southern|northern|eastern|western|central|north|south|east|west) \w+"
        r"|\b(?:here|back home) in [a-z]+\b"
        rf"|\b{_I_AM} (?:originally )?from (?!the )\w+"
        r"|\bmy (?:hometown|home town|apartment|dorm)\b",
        re.I,
    ),
    "studies": re.compile(
        rf"\b{_I_AM} (?:a |an )?(?:freshman|sophomore|junior|senior|student|grad student|"
        r"graduate student|ta)\b"
        rf"|\b{_I_AM} going to be a (?:freshman|sophomore|junior|senior)\b"
        r"|\bmy (?:freshman|sophomore|junior|senior) year\b"
        rf"|\b{_I_AM} in (?:cs|computer science|engineering|nursing|biology|pre-?med|law school|"
        r"med school)\b"
        rf"|\b{_I_AM} (?:majoring|studying|double majoring|graduating|in college|in school|"
        r"in high school|in grad school|taking \d+ credits)\b"
        r"|\bmy (?:major|minor|classes|class|professors?|teachers?|school|college|"
        r"university|homework|exams?|finals|midterms?|degree|semester|mission)\b"
        r"|\bi (?:study|major in|graduated|go to (?:college|school|byu|uvu|usu))\b"
        r"|\b(?:when|after|before|once) i graduate\b|\bgraduate sooner\b|\bget a minor\b"
        r"|\bi (?:only |just |also )?(?:had|have|took|failed|passed|aced) (?:a |an |one |two |"
        r"my |the )?"
        r"(?:class|classes|test|exam|quiz|midterm|final|finals)\b"
        r"|\bi got an? (?:[0-4]\.\d+|a|b|c|d|f)\b(?! (?:lot|few|bit|new|good|great))"
        r"|\bi(?: would've| would have| have| had|'ve|'d)? (?:studied|been studying)\b"
        r"|\bmy gpa\b|\b(?:mine|my \w+) (?:was|wasn't|isn't|is|got) graded\b"
        r"|\b(?:as an|an|my) undergrad(?:uate)?\b|\bin (?:\d+(?:st|nd|rd|th)|first|second|"
        r"third|fourth|fifth|sixth) grade\b",
        re.I,
    ),
    "job": re.compile(
        r"\bi (?:work|worked) (?:at|for|as|in|on|full time|part time)\b"
        r"|\bmy (?:job|boss|coworkers?|co-workers?|internship|manager|shift|paycheck)\b"
        rf"|\b{_I_AM} (?:a |an )?(?:nurse|teacher|engineer|developer|programmer|accountant|"
        r"cashier|waiter|waitress|intern|manager|lawyer|doctor)\b"
        r"|\bi want to (?:go|get) into [a-z]+ (?:design|engineering|medicine|law|business)\b"
        r"|\bi (?:plan on|am planning on|'m planning on|plan to) becom(?:e|ing) an? \w+"
        rf"|\b{_I_AM} (?:going to|gonna) work (?:at|for)\b|\bi want to (?:eventually )?become an? "
        r"(?:judge|lawyer|doctor|nurse|teacher|engineer|dentist)\b",
        re.I,
    ),
    "family": re.compile(
        r"\bmy (?:wife|husband|girlfriend|boyfriend|gf|bf|sons?|daughters?|kids?|children|"
        r"baby|brothers?|sisters?|siblings?|mom|dad|mother|father|parents|family|grandma|"
        r"grandpa|grandmother|grandfather|grandparents|cousins?|fiance|fiancee|fiancé|roommates?|uncle|"
        r"aunt|niece|nephew)\b"
        rf"|\b{_I_AM} (?:married|engaged|pregnant)\b|\bi(?:'ve| have) been married\b"
        r"|\bi have (?:a |\d+ |two |three |four |five )?(?:kids|children|brothers?|"
        r"sisters?|siblings|sons?|daughters?|wife|husband|girlfriend|boyfriend)\b",
        re.I,
    ),
    "pets": re.compile(
        r"\bmy (?:dog|dogs|cat|cats|puppy|kitten|fish|hamster|bird|pets?|bunny|rabbit|horse)\b"
        r"|\bi (?:have|own|got) (?:a |an |two |three |\d+ )?(?:dog|dogs|cat|cats|puppy|puppies|"
        r"kitten|kittens|fish|hamster|bird|pets?|bunny|rabbit|horse)\b"
        r"|\bi used to have (?:a |an |two |three |\d+ )?(?:dog|dogs|cat|cats|fish|pets?|"
        r"hamster|bird|bunny|rabbit|horse)\b",
        re.I,
    ),
}


def life_claims(text: str) -> set[str]:
    """The kinds of life (age, home, studies, job, family, pets) ``text`` tells as the
    speaker's own."""
    return {kind for kind, pattern in LIFE.items() if pattern.search(text)}


_WORD = r"[a-z][a-z'-]+"
_LIKE = re.compile(
    rf"\bi (?:really |absolutely |totally |just )?(?P<verb>love|like|enjoy|adore|hate|"
    rf"dislike|can't stand|cant stand|don'?t (?:really )?(?:like|love|enjoy)|"
    rf"do not (?:really )?(?:like|love|enjoy)|never liked) (?:the |a |an |to )?(?P<what>{_WORD})",
    re.I,
)
_RATHER = re.compile(
    rf"\bi(?:'d| would) (?:much )?rather (?:have|get|own|eat|watch|play) (?:a |an )?"
    rf"(?P<liked>{_WORD}) than (?:a |an )?(?P<less>{_WORD})",
    re.I,
)
_WOULD_GET = re.compile(
    rf"\bi(?:'d| would) (?:probably |definitely )?(?:get|choose|pick|go with) (?:a |an )?"
    rf"(?P<what>{_WORD})",
    re.I,
)
_FAVORITE = re.compile(
    rf"\bmy (?:fav|fave|favorite|favourite) (?P<kind>{_WORD}(?: {_WORD})?) (?:is|are|was|were|"
    rf"would be|has to be) (?:probably |definitely |the |a |an )?(?P<what>{_WORD})",
    re.I,
)
_NEGATIVE = ("hate", "dislike", "can't", "cant", "don", "do not", "never")
# Words too general to hold a taste about: "I like to think", "I love that".
_GENERAL = """that this it them those these you your to be do go see think know say get have make
it's that's what how when"""
_NOT_A_THING = frozenset(_GENERAL.split())


def stances(text: str) -> dict[str, bool]:
    """What ``text`` says the speaker likes (True) or dislikes (False), by its first word:
    "I don't really like pizza" → {"pizza": False}."""
    found = {}
    for match in _LIKE.finditer(text):
        what = match.group("what").lower()
        if what not in _NOT_A_THING:
            found[_stem(what)] = not match.group("verb").lower().startswith(_NEGATIVE)
    for match in _WOULD_GET.finditer(text):  # "I'd probably get a dog"
        found.setdefault(_stem(match.group("what").lower()), True)
    for match in _RATHER.finditer(text):  # "I'd rather have a cat than a dog"
        found.setdefault(_stem(match.group("liked").lower()), True)
        found.setdefault(_stem(match.group("less").lower()), False)
    return found


def favorites(text: str) -> dict[str, str]:
    """The speaker's favorites ``text`` names: "My favorite food is pizza" → {"food": "pizza"}."""
    return {
        _stem(m.group("kind").lower()): _stem(m.group("what").lower())
        for m in _FAVORITE.finditer(text)
    }


def contradicts(candidate: str, said: Iterable[str]) -> bool:
    """Whether ``candidate`` says the opposite of the bot's earlier turns ``said`` about its
    tastes: likes what it disliked (or the reverse), or names another favorite of a kind."""
    mine, my_favorites = stances(candidate), favorites(candidate)
    if not mine and not my_favorites:
        return False
    for turn in said:
        before = stances(turn)
        if any(what in before and before[what] != liked for what, liked in mine.items()):
            return True
        named = favorites(turn)
        if any(kind in named and named[kind] != what for kind, what in my_favorites.items()):
            return True
    return False


# Words around a question that do not change it: "and what's your favorite food again?"
# asks "what's your favorite food?" once more.
_AROUND = """and so ok okay oh wait hey um sorry cool haha lol but remind me"""
_LEADING = frozenset(_AROUND.split())
_TRAILING = frozenset(("again", "now", "then"))


def _questions(text: str) -> set[str]:
    found = set()
    for sentence in sentences(text):
        if not sentence.rstrip().endswith("?"):
            continue
        words = re.findall(r"[a-z0-9']+", sentence.lower())
        while words and words[0] in _LEADING:
            words.pop(0)
        while words and words[-1] in _TRAILING:
            words.pop()
        if len(words) >= 3:
            found.add(" ".join(words))
    return found


def earlier_answer(history: Sequence[tuple[str | None, str]], message: str) -> str | None:
    """What the bot answered when the user asked ``message``'s question before in this
    chat (its statements, without the questions it asked back), or None. Asked again,
    the bot gives the same answer instead of a new one from another corpus speaker ("I
    enjoy pop music" at turn 5, "I enjoy classical music" at turn 20)."""
    asked = _questions(message)
    if not asked:
        return None
    for i in range(len(history) - 2, -1, -1):
        speaker, text = history[i]
        if speaker == "user" and history[i + 1][0] == "bot" and asked & _questions(text):
            said = [s for s in sentences(history[i + 1][1]) if not s.rstrip().endswith("?")]
            return " ".join(said) or None
    return None


def _stem(word: str) -> str:
    """Plural and singular as one: "movies" and "movie", "dogs" and "dog"."""
    return word[:-1] if word.endswith("s") and not word.endswith("ss") and len(word) > 3 else word
