"""What the bot says, and how text is cleaned on the way in and out."""

from __future__ import annotations

import unicodedata

from s2s_contract.tasks import MAX_TEXT

GREETING = (
    "Hi! I am a small open-source chatbot: a sequence-to-sequence neural network (an LSTM "
    "encoder-decoder with attention) trained on casual conversations. Just write to me.\n\n"
    "/help lists what I understand."
)
HELP = (
    "Write anything and I will answer; I read the last few turns of our chat.\n\n"
    "/reset – start a new conversation\n"
    "/settings – how I choose replies\n"
    "/forget – delete everything you told me\n"
    "/about – the model behind me\n\n"
    "Rate my replies with 👍/👎: it helps train the next model."
)
TEXT_ONLY = "I can only read text messages, sorry. Write to me in words!"
BUSY = "This is taking longer than usual: your reply is on its way, no need to send again."
DOWN = "Sorry, I can't think right now: my reply service is unreachable. Try again soon."
RATE_LIMITED = "You are writing faster than I can think. Give me a minute, please."
TRUNCATED = "(Your message was long: I read only its last {n} characters.)"
RESET_DONE = "Fresh start: I have forgotten our conversation so far."
FORGET_ASK = "Delete everything you have told me (all your messages and my replies to them)?"
FORGET_DONE = "Done: your messages and my replies are being deleted from my history."
FORGET_KEPT = "Nothing was deleted."
STYLE_ASK = "How should I choose my replies?"
NOT_ANSWERED_YET = "An LSTM encoder-decoder chatbot. The serving model has not answered yet."
THANKS_FOR_VOTE = "Thanks for the feedback!"


def clean_text(text: str) -> str:
    """Control and format characters go (newlines and tabs become spaces); trimmed."""
    kept = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch in "\n\t\r" or category in ("Zl", "Zp"):
            kept.append(" ")
        elif category in ("Cc", "Cs") or (category == "Cf" and ch != "\u200d"):
            continue  # lone surrogates cannot be encoded; keep the zero-width joiner (emoji)
        else:
            kept.append(ch)
    return " ".join("".join(kept).split())


def printable(text: str) -> str:
    """A reply as sent: control characters a byte-level model may emit become spaces."""
    return " ".join("".join(" " if unicodedata.category(c) == "Cc" else c for c in text).split())


def split_message(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Telegram's 4,096-character limit: cut at the last space before it where there is one."""
    parts = []
    while len(text) > limit:
        cut = text.rfind(" ", 0, limit)
        cut = cut if cut > limit // 2 else limit
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    return [*parts, text] if text else parts


# /about: how a reply is made, with and without the hybrid pool.
HOW_REPLIES_ARE_MADE = {
    True: "Each reply is either written by this model or taken from a public chat corpus "
    "(people's replies in similar conversations): one ranker picks the best fit. "
    "/settings → varied for the model's own words only.",
    False: "Each reply is written by this model.",
}
