"""Training targets a chat partner should learn from: no conversation closers, and greetings
only where the message was a greeting.

Why: the Chit-Chat corpus ends every conversation with a goodbye ("I have to go now, but it
was nice talking to you!") and opens it with "Hey! How are you?". A model trained on it
learns that these are safe, high-probability replies to anything, and beam search (which
prefers predictable tails) then says goodbye to a quarter of the messages and greets people
who just told it bad news. The filter works per sentence: it cuts closer sentences and
out-of-place greetings from a target, keeps what is left, and drops a pair with nothing
left. The counts for the chitchat train split are in the model card's data section
(``s2s_core.cleaning.corpus_report``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from s2s_core.corpora import Example

# Sentences that end a conversation. "have to go" only where the going ends the clause, so
# "go big or go home" and "my loyalty is going to have to go with me" stay; going to class or
# to bed only "now" or "soon" ("I have to go to work tomorrow" is news, not a goodbye).
CLOSER = re.compile(
    r"\b(?:bye+|goodbye|good ?night|ttyl|take care|see (?:you|ya) (?:later|soon|around|"
    r"tomorrow|next time)|talk (?:to you|again) (?:later|soon|sometime)|"
    r"(?:gotta|have to|need to|got to|must|should|going to|gonna) (?:go|run|leave|head out|"
    r"get going|sign off|log off)(?:\s+(?:now|soon|too|though|sorry|for now|unfortunately))?"
    r"(?=\s*(?:[.!,;:)~]|$|but|and|so|bye|sorry|it was|see|thanks|have))|"
    r"(?:gotta|have to|need to|got to|must|should|going to|gonna) (?:go|head) (?:to (?:class|"
    r"bed|sleep|work|school|dinner|lunch|the gym)|eat|sleep) (?:now|soon)|"
    r"(?:nice|great|good|fun|lovely|pleasure|awesome|cool) (?:talking|chatting|speaking|"
    r"meeting) (?:to|with) you|(?:pleasure|nice|fun|great) (?:talking|chatting)|"
    r"(?:been|was) (?:a )?(?:nice|great|good|fun|lovely|pleasure|awesome|cool) meeting you|"
    r"thanks? (?:you )?for (?:the |this |our )?(?:chat|talk|conversation|chatting|talking|"
    r"taking the time)|enjoy(?:ed)? (?:the|our|this) (?:chat|conversation|talk)|"
    r"have a (?:great|good|nice|wonderful|lovely|fantastic) (?:rest of your )?"
    r"(?:day|night|evening|weekend|one|afternoon|morning|week|time))\b",
    re.IGNORECASE,
)
# A greeting word opening a sentence, and the "how are you" family.
GREETING_OPENER = re.compile(
    r"^\W*(?:hi+|hey+o?|hello+|howdy|hiya|heya|yo|greetings|good (?:morning|afternoon|evening))"
    r"(?:\s+(?:there|again|friend|buddy|stranger))?\b[\s!.,~:)]*",
    re.IGNORECASE,
)
HOW_ARE_YOU = re.compile(
    r"\bhow(?:'?s| is| are|'re| r| have| has) (?:you|u|ya|things|everything|life|it going|"
    r"your (?:day|week|weekend|night|morning|evening|evening going))(?: been)?"
    r"(?: going| doing| feeling| holding up)?(?: so far)?(?: today| tonight| this \w+)?"
    r"\s*(?=[?.!,]|$)|\bwhat'?s up\b|\bwhats up\b|\bsup\b|\bnice to meet you\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[A-Za-z0-9']+")


def _has_words(text: str) -> bool:
    return _WORD.search(text) is not None


def sentences(text: str) -> list[str]:
    """Splits after ., ! or ? (chat text often has none: then it is one sentence)."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def is_closer(text: str) -> bool:
    """Whether any sentence of ``text`` ends the conversation."""
    return CLOSER.search(text) is not None


def is_greeting(text: str) -> bool:
    """Whether ``text`` opens with a greeting word or asks how the other one is."""
    return GREETING_OPENER.match(text) is not None or HOW_ARE_YOU.search(text) is not None


def strip_closers(text: str) -> str:
    """``text`` without its closer sentences."""
    return " ".join(s for s in sentences(text) if not is_closer(s))


def strip_greetings(text: str) -> str:
    """``text`` without greeting words at sentence starts and "how are you" sentences."""
    kept = []
    for sentence in sentences(text):
        if HOW_ARE_YOU.search(sentence):
            continue
        rest = sentence
        while (shorter := GREETING_OPENER.sub("", rest, count=1)) != rest:  # "hi hi" too
            rest = shorter
        if _has_words(rest):
            kept.append(rest[:1].upper() + rest[1:])
    return " ".join(kept)


@dataclass(frozen=True)
class CleanResult:
    example: Example | None  # None: dropped
    outcome: str  # kept | closer_trimmed | closer_dropped | greeting_trimmed | greeting_dropped


def clean_example(example: Example) -> CleanResult:
    """One pair through the filter: closers cut from every target, greetings cut from
    targets whose message (the last context turn) is not itself a greeting."""
    response, outcome = example.response, "kept"
    if is_closer(response):
        response = strip_closers(response)
        if not _has_words(response):
            return CleanResult(None, "closer_dropped")
        outcome = "closer_trimmed"
    message = example.context[-1].text if example.context else ""
    if is_greeting(response) and not is_greeting(message):
        response = strip_greetings(response)
        if not _has_words(response):
            return CleanResult(None, "greeting_dropped")
        outcome = "greeting_trimmed" if outcome == "kept" else outcome
    if response == example.response:
        return CleanResult(example, "kept")
    return CleanResult(Example(example.context, response), outcome)


def clean_examples(examples: Iterable[Example]) -> tuple[list[Example], Counter[str]]:
    """The filtered pairs and how many pairs met each outcome."""
    kept, counts = [], Counter[str]()
    for example in examples:
        result = clean_example(example)
        counts[result.outcome] += 1
        if result.example is not None:
            kept.append(result.example)
    return kept, counts


def corpus_report(dialogues: Iterable[list[str]], tail: int = 3) -> dict[str, object]:
    """Where closers and greetings sit in whole conversations: counts of closer targets by
    turns before the end (0 = the last turn; ``tail`` and more pooled) and of greeting
    targets by position (1 = the reply to the first message), with how many of those
    greetings answered a greeting."""
    targets = closers = greetings = greeting_to_greeting = 0
    closer_from_end, greeting_at = Counter[str](), Counter[str]()
    for turns in dialogues:
        for i in range(1, len(turns)):
            targets += 1
            if is_closer(turns[i]):
                closers += 1
                from_end = len(turns) - 1 - i
                closer_from_end[str(from_end) if from_end < tail else f"{tail}+"] += 1
            if is_greeting(turns[i]):
                greetings += 1
                greeting_at[str(i) if i < tail else f"{tail}+"] += 1
                greeting_to_greeting += is_greeting(turns[i - 1])
    return {
        "targets": targets,
        "closer_targets": closers,
        "closer_targets_by_turns_before_end": dict(sorted(closer_from_end.items())),
        "greeting_targets": greetings,
        "greeting_targets_by_position": dict(sorted(greeting_at.items())),
        "greeting_targets_answering_a_greeting": greeting_to_greeting,
    }
