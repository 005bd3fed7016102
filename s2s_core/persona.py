"""Who the bot says it is: the questions about itself it answers with one true answer each
(``resources/persona.tsv``), and the rule that gives those answers.

Why a rule and not training: mixed into the chitchat training pairs (20 copies of 42 pairs),
the answers were learned, and then "I'm a chatbot: a small neural network that learned to
chat from conversations." became the model's favourite reply to everything: the one
predictable sentence that fits any first message. So the n-best choice (``s2s_core.choice``)
answers a question found here with its answer, and passes over candidates that describe the
bot when nobody asked.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

# Phrases only the bot's self-description uses; a reply with one of them describes the bot.
SELF_DESCRIPTION = ("small neural network", "open-source chatbot", "s2s-chatbot")
_NOT_WORD = re.compile(r"[^a-z0-9']+")


def normalise(text: str) -> str:
    """Lower case, words only: "Are you a ROBOT??" and "are you a robot" are one question."""
    return " ".join(_NOT_WORD.sub(" ", text.lower().replace("’", "'")).split())


@lru_cache(maxsize=1)
def persona_pairs() -> tuple[tuple[str, str], ...]:
    """(question, answer) pairs, in file order."""
    source = resources.files("s2s_core").joinpath("resources/persona.tsv")
    pairs = []
    for line in source.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            question, answer = line.split("\t")
            pairs.append((question, answer))
    return tuple(pairs)


@lru_cache(maxsize=1)
def _answers() -> dict[str, str]:
    return {normalise(question): answer for question, answer in persona_pairs()}


# The same questions in other words ("are you a real person or a bot?", "r u human",
# "who coded this bot"), typos included: each kind of question, by the file's question
# whose answer it gets. Anchored on "you"/"your" (or "this bot"), so that "how old are your
# kids?", "are you a morning person?" or "who made this cake?" stay the model's to answer.
_YOU = r"(?:you|u|yu|yuo|yo|ya|youu)"
_ARE = r"(?:are|r|ar|re)"
_YOUR = r"(?:your|ur|yur|yor)"
_BOT = (
    r"(?:bot|robot|chatbot|chat bot|ai|a i|human|human being|person|machine|computer|"
    r"program|computer program|alive|real|artificial intelligence|language model)"
)
_BOT_NOUN = r"(?:bot|robot|chatbot|chat bot|ai|human|person|machine|computer|program)"
_KINDS: tuple[tuple[str, str], ...] = (
    (
        rf"\b{_ARE} {_YOU} (?:still )?(?:a |an )?(?:student|in college|in school|in high school|"
        r"freshman|sophomore|junior|senior)\b|\bdo {_YOU} (?:go to|attend) (?:school|college)\b"
        rf"|\bwhere do {_YOU} go to (?:school|college)\b",
        "are you a student?",
    ),
    (
        rf"\bwhat (?:do|did) {_YOU} (?:study|major in)\b|\b{_YOUR} major\b"
        rf"|\bwhat {_ARE} {_YOU} (?:studying|majoring in)\b|\bwhat year {_ARE} {_YOU}\b",
        "what do you study?",
    ),
    (
        rf"\bdo {_YOU} (?:have a job|work(?: anywhere| full time| part time)?$)\b"
        rf"|\bwhat do {_YOU} do (?:for (?:work|a living)|$)|\bwhere do {_YOU} work\b"
        rf"|\b{_YOUR} job\b",
        "do you have a job?",
    ),
    (
        rf"\bdo {_YOU} have (?:any )?(?:siblings|brothers|sisters|brothers or sisters|a family)\b",
        "do you have siblings?",
    ),
    (
        rf"\b{_ARE} {_YOU} (?:married|engaged)\b|\bhow long have {_YOU} been married\b",
        "are you married?",
    ),
    (rf"\b{_ARE} {_YOU} single\b", "are you single?"),
    (
        rf"\bdo {_YOU} have (?:any |a |an )?(?:pets?|dogs?|cats?|fish|puppy|kitten|hamster)\b",
        "do you have any pets?",
    ),
    (rf"\bdo {_YOU} have (?:any )?(?:kids|children|a son|a daughter)\b", "do you have kids?"),
    (
        rf"\bdo {_YOU} have (?:a )?(?:girlfriend|boyfriend|gf|bf|partner|wife|husband)\b"
        rf"|\b{_ARE} {_YOU} (?:dating|seeing) (?:anyone|someone)\b",
        "do you have a girlfriend?",
    ),
    (
        rf"\b{_ARE} {_YOU}(?: really| actually| even)? (?:a |an )?(?:real |actual |live )?{_BOT}\b",
        "are you a bot or a person?",
    ),
    (
        rf"\bis this (?:a |an )?(?:real |actual )?(?:{_BOT_NOUN}|automated)\b",
        "are you a bot or a person?",
    ),
    (
        rf"\bam i (?:talking|chatting|speaking|texting) (?:to|with) (?:a |an )?(?:real )?{_BOT}\b",
        "are you a bot or a person?",
    ),
    (
        rf"\b(?:you're|youre|you are|{_YOU} {_ARE}|ur) (?:just |such )?(?:a |an )?"
        r"(?:bot|robot|chatbot|ai|machine|computer|program)\b",
        "are you a bot or a person?",
    ),
    (
        r"^(?:human|person|bot|robot|ai) or (?:human|person|bot|robot|ai|not)$",
        "are you a bot or a person?",
    ),
    (
        rf"\b{_YOUR} name\b|\b(?:do|did) {_YOU} have a name\b|"
        rf"\b(?:what|how) (?:should|do|can|shall) i call {_YOU}\b|"
        rf"^who {_ARE} {_YOU}$|^who is this$",
        "what's your name?",
    ),
    (
        rf"\b(?:tell me (?:about|something about) {_YOU}(?:rself)?|introduce {_YOU}rself)\b",
        "tell me about yourself",
    ),
    (
        rf"\bwho (?:made|created|built|programmed|developed|designed|trained|wrote|coded|owns|"
        rf"runs|invented) (?:{_YOU}|this bot|this chatbot|this thing)\b|\b{_YOUR} (?:creator|"
        r"maker|developer|programmer|owner|author|inventor)s?\b",
        "who made you?",
    ),
    (
        rf"\bhow (?:were|was) {_YOU} (?:made|built|created|trained|programmed)\b",
        "how were you made?",
    ),
    (rf"\bhow (?:do|does) (?:{_YOU}|this bot|this chatbot|this thing) work\b", "how do you work?"),
    (rf"\bhow old (?:{_ARE}|were|did {_YOU} say) {_YOU}\b|\b{_YOUR} age\b", "how old are you?"),
    (
        rf"\b{_YOUR} birthday\b|\bwhen (?:were|was) {_YOU} (?:born|made|created)\b",
        "when is your birthday?",
    ),
    (
        rf"\bwhere {_ARE} {_YOU} (?:from|located|based)\b|\bwhere do {_YOU} (?:live|come from)\b"
        rf"|\b(?:weather|time) (?:like )?(?:where|there where) {_YOU} (?:are|live|r)\b",
        "where are you from?",
    ),
    (
        rf"\b{_ARE} {_YOU} (?:a )?(?:boy|girl|guy|man|woman|male|female|dude|lady)(?: or .*)?$|"
        rf"\b{_YOUR} (?:gender|sex)\b",
        "are you a boy or a girl?",
    ),
    (
        rf"\bdo {_YOU} (?:have|feel) (?:any )?(?:feelings|emotions)\b|\bcan {_YOU} feel "
        r"(?:anything|emotions|feelings|pain|love)\b",
        "do you have feelings?",
    ),
    (rf"\bdo {_YOU} have a body\b", "do you have a body?"),
    (
        rf"\bcan {_YOU} (?:really )?think\b|\b{_ARE} {_YOU} (?:conscious|sentient|self aware)\b",
        "can you think?",
    ),
    (rf"\b{_ARE} {_YOU} (?:smart|intelligent|clever)\b", "are you smart?"),
    (
        rf"\b{_ARE} {_YOU} (?:chatgpt|chat gpt|gpt\d*|siri|alexa|cortana|bard|gemini|claude|"
        r"google assistant)\b",
        "are you siri?",
    ),
)


@lru_cache(maxsize=1)
def _kinds() -> tuple[tuple[re.Pattern[str], str], ...]:
    answers = _answers()
    return tuple((re.compile(pattern), answers[normalise(q)]) for pattern, q in _KINDS)


def persona_answer(message: str) -> str | None:
    """The answer when ``message`` asks about the bot: one of the file's questions word for
    word, else one of the kinds of question above in other words."""
    text = normalise(message)
    exact = _answers().get(text)
    if exact is not None or not text:
        return exact
    return next((answer for pattern, answer in _kinds() if pattern.search(text)), None)


def describes_the_bot(text: str) -> bool:
    """Whether ``text`` gives the bot's self-description."""
    lowered = text.lower()
    return any(phrase in lowered for phrase in SELF_DESCRIPTION)
