"""The persona file and its rule."""

from __future__ import annotations

from s2s_core.corpora import persona_examples
from s2s_core.persona import describes_the_bot, normalise, persona_answer, persona_pairs


def test_every_answer_is_true_to_the_product() -> None:
    pairs = persona_pairs()
    assert len(pairs) >= 30
    assert all("chatbot" in a or "neural network" in a or "s2s" in a.lower() for _, a in pairs)


def test_questions_match_whatever_their_case_and_punctuation() -> None:
    assert normalise("Are you a ROBOT??") == "are you a robot"
    assert persona_answer("Who made you?!") == persona_answer("who made you")
    assert persona_answer("I like robots") is None


def test_the_self_description_is_recognised() -> None:
    assert describes_the_bot(persona_answer("are you a robot") or "")
    assert not describes_the_bot("I like neural networks and chatbots")


def test_training_pairs_repeat_each_question() -> None:
    examples = persona_examples(repeat=2)
    assert len(examples) == 2 * len(persona_pairs())
    assert examples[0].context[0].speaker == "user"
