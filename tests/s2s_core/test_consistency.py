"""The bot tells no life and keeps its tastes: the consistency rules and the choice."""

from __future__ import annotations

import pytest

from s2s_core.choice import Candidate, choose_among
from s2s_core.consistency import (
    contradicts,
    earlier_answer,
    favorites,
    life_claims,
    stances,
)

TELLS_A_LIFE = [
    ("I'm a junior at BYU", "studies"),
    ("Yeah, my class got cancelled today", "studies"),
    ("I'm going to be a freshman this fall", "studies"),
    ("I graduated last year", "studies"),
    ("im 21 haha", "age"),
    ("I turned 19 last week", "age"),
    ("I live in Provo", "home"),
    ("I'm from CA, the west coast", "home"),
    ("I work at a bank downtown", "job"),
    ("my boss is the worst", "job"),
    ("Mmhm, my mom makes lasagna with ravioli", "family"),
    ("I've been married for a while.", "family"),
    ("I have two sisters", "family"),
    ("Its going well! I had lunch with my grandparents today", "family"),
    ("Yeah i got a 4.0 it was rough", "studies"),
    ("I only had one class today but I also took a test", "studies"),
    ("I am going to work at Intel when I graduate", "job"),
    ("Hmm I haven't checked the weather. I'm in southern utah", "home"),
    ("My dog is a year and a half old", "pets"),
    ("I have a fish. Do you have any pets?", "pets"),
    ("No. I used to have two cats but they both got old", "pets"),
    ("I am in CS, I just finished my sophomore year.", "studies"),
    ("I want to go into Industrial Design", "job"),
    ("I plan on becoming a doctor, what you study as an undergraduate doesn't matter", "job"),
    ("About how mine wasn't graded yet", "studies"),
    ("I would've studied better had I known what was going to be tested.", "studies"),
    ("Especially when you are in 5th grade i was never really that good at writing", "studies"),
]

TELLS_NONE = [
    "I'm 5 minutes away",
    "I love hiking!",
    "That sounds like so much fun! What did you do?",
    "I'm so tired today",
    "I'm from the future haha",
    "I love dogs, they are the best",
    "I got a lot of work done",
    "I'm in love with this song",
    "Where do you live?",
    "Do you have any siblings?",
    "What's your major?",
    "I'm 100% sure",
]


@pytest.mark.parametrize(("text", "kind"), TELLS_A_LIFE)
def test_a_life_told_as_ones_own_is_found(text: str, kind: str) -> None:
    assert kind in life_claims(text)


@pytest.mark.parametrize("text", TELLS_NONE)
def test_tastes_questions_and_numbers_tell_no_life(text: str) -> None:
    assert life_claims(text) == set()


def test_tastes_and_favorites_are_read() -> None:
    assert stances("I don't really like pizza. I love dogs! I like to think so") == {
        "pizza": False,
        "dog": True,
    }
    assert favorites("My favorite movie is Up and my fave food would be tacos") == {
        "movie": "up",
        "food": "taco",
    }


def test_the_opposite_of_an_earlier_taste_contradicts_it() -> None:
    said = ["Haha yes! I don't like pizza much though.", "My favorite movie is Up."]
    assert contradicts("I love pizza!", said)
    assert contradicts("My favorite movies are Cars", said)
    assert not contradicts("I don't like pizza either", said)
    assert not contradicts("My favorite movie is Up, for sure", said)
    assert not contradicts("I love tacos", said)
    assert contradicts(
        "ohhh yes I love dogs", ["I love cats! I would much rather have a cat than a dog."]
    )


def test_the_choice_passes_over_a_life_and_a_contradiction() -> None:
    pool = [
        Candidate("I'm a junior studying biology.", "retrieved"),
        Candidate("I love pizza!", "retrieved"),
        Candidate("Nice! What kind of pizza do you like?", "generated"),
    ]
    choice = choose_among(pool, "I had pizza for lunch.", ["I don't like pizza much."])
    assert choice.text == "Nice! What kind of pizza do you like?"
    assert "tells_a_life" in choice.candidates[0]["defects"]
    assert "contradicts_itself" in choice.candidates[1]["defects"]


def test_a_chosen_reply_loses_the_sentences_that_tell_a_life() -> None:
    pool = [Candidate("That sounds fun! My brother plays that too. Do you play often?")]
    assert choose_among(pool, "I play chess.").text == "That sounds fun! Do you play often?"
    assert "tells_a_life" in choose_among(pool, "I play chess.").candidates[0]["defects"]
    only = [Candidate("I work at a bank.")]
    assert choose_among(only, "what do you do all day?").text == "I work at a bank."
    assert choose_among(pool, "I play chess.", avoid_defects=False).text == pool[0].text


def test_the_bot_does_not_say_the_same_sentence_again() -> None:
    """ "What's your major?" five turns running, each time after another opener."""
    pool = [
        Candidate("Nice! What's your major?", "generated"),
        Candidate("That's cool. What's your major?", "generated"),
        Candidate("Cool! How long have you been coding?", "generated"),
    ]
    said = ["That's cool. What's your major?", "Nice!"]
    choice = choose_among(pool, "I mostly write Kotlin", said)
    assert choice.text == "Cool! How long have you been coding?"
    assert "repeats_itself" in choice.candidates[0]["defects"]
    again = choose_among([Candidate("Nice! How old is he?")], "I got a puppy", said)
    assert "defects" not in again.candidates[0]  # "Nice!" alone may recur


def test_a_question_asked_again_gets_the_earlier_answer() -> None:
    history = [
        ("user", "what kind of music do you like?"),
        ("bot", "I enjoy pop music. You?"),
        ("user", "I'm really into jazz lately"),
        ("bot", "Yeah jazz is cool"),
    ]
    assert earlier_answer(history, "and what kind of music do you like again?") == (
        "I enjoy pop music."
    )
    assert earlier_answer(history, "what kind of movies do you like?") is None
    assert earlier_answer(history, "I like jazz") is None
    pool = [Candidate("I enjoy classical music, but I will listen to anything.")]
    said = [text for speaker, text in history if speaker == "bot"]
    earlier = earlier_answer(history, "what kind of music do you like again?")
    choice = choose_among(
        pool, "what kind of music do you like again?", said, answered_before=earlier
    )
    assert (choice.text, choice.source) == ("Like I said: I enjoy pop music.", "earlier answer")
