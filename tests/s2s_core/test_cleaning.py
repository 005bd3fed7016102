"""The training-target filter: closers cut, greetings kept only for greetings."""

from __future__ import annotations

import pytest

from s2s_core.cleaning import (
    clean_example,
    clean_examples,
    corpus_report,
    is_closer,
    is_greeting,
    strip_greetings,
)
from s2s_core.corpora import Example, Turn


def pair(message: str, reply: str) -> Example:
    return Example((Turn("earlier", "bot"), Turn(message, "user")), reply)


@pytest.mark.parametrize(
    "text",
    [
        "I have to go now, but it was nice talking to you!",
        "Thanks for chatting!",
        "ok bye",
        "Have a great day!",
        "Well I gotta go. See you later!",
        "it was a pleasure talking with you",
        "I have to go to class now. It's been good meeting you!",
        "I have to go to class now.",
        "It was nice meeting you",
        "gotta go to bed soon",
    ],
)
def test_closers_are_recognised(text: str) -> None:
    assert is_closer(text)


@pytest.mark.parametrize(
    "text",
    [
        "Nah, gotta go big or go home",
        "my loyalty is going to have to go with me_irl",
        "I have to go to the store tomorrow to buy food.",
        "I see you like dogs",
        "That sounds like a great day out.",
        "I have to go to work tomorrow.",
        "Nice to meet you! I love hiking",
    ],
)
def test_going_somewhere_is_no_closer(text: str) -> None:
    assert not is_closer(text)


@pytest.mark.parametrize("text", ["Hey! How are you?", "hello", "hi hi", "How's it going?"])
def test_greetings_are_recognised(text: str) -> None:
    assert is_greeting(text)


@pytest.mark.parametrize(
    "text", ["How are you getting your green card?", "I love hiking", "They said hi to me"]
)
def test_questions_starting_with_how_are_no_greeting(text: str) -> None:
    assert not is_greeting(text)


def test_a_closer_sentence_is_cut_and_the_rest_kept() -> None:
    result = clean_example(pair("I love tacos", "Me too! I have to go now, nice talking to you!"))
    assert result.outcome == "closer_trimmed"
    assert result.example is not None and result.example.response == "Me too!"


def test_a_pure_goodbye_is_dropped() -> None:
    result = clean_example(pair("I love tacos", "Thanks for chatting! Bye!"))
    assert result.outcome == "closer_dropped" and result.example is None


def test_a_greeting_answering_a_greeting_stays() -> None:
    example = pair("Hi there!", "Hey! How are you?")
    assert clean_example(example) == clean_example(example)
    assert clean_example(example).example == example


def test_a_greeting_to_news_loses_the_greeting() -> None:
    result = clean_example(pair("I finished my thesis", "Hey! That's amazing, congrats!"))
    assert result.outcome == "greeting_trimmed"
    assert result.example is not None and result.example.response == "That's amazing, congrats!"
    dropped = clean_example(pair("I finished my thesis", "Hello! How are you?"))
    assert dropped.outcome == "greeting_dropped" and dropped.example is None


def test_repeated_greeting_words_all_go() -> None:
    assert strip_greetings("hi hi what's new with the dog") == "What's new with the dog"


def test_counts_add_up() -> None:
    examples = [
        pair("I love tacos", "Me too!"),
        pair("I love tacos", "Bye!"),
        pair("news", "Hey! Cool."),
    ]
    kept, counts = clean_examples(examples)
    assert len(kept) == 2 and sum(counts.values()) == 3
    assert counts == {"kept": 1, "closer_dropped": 1, "greeting_trimmed": 1}


def test_corpus_report_places_closers_from_the_end() -> None:
    report = corpus_report([["Hi!", "Hey, how are you?", "Good, I like tacos", "Bye!"]])
    assert report["targets"] == 3
    assert report["closer_targets_by_turns_before_end"] == {"0": 1}
    assert report["greeting_targets_by_position"] == {"1": 1}
    assert report["greeting_targets_answering_a_greeting"] == 1
