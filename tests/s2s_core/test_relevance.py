"""Response-selection relevance with the shipped sentence-embedding model."""

from __future__ import annotations

import pytest

from s2s_core.relevance import distractor_sets, response_selection

CONTEXTS = [
    "I just adopted a puppy, he is a golden retriever",
    "What is your favorite pizza topping?",
    "I am training for a marathon next month",
    "My laptop keeps crashing when I open the browser",
    "We went skiing in the Alps last winter",
    "I'm learning to play the violin",
    "Do you like reading science fiction novels?",
    "My sister is getting married in June",
    "I planted tomatoes and basil in my garden",
    "The new Star Wars movie was disappointing",
    "I have a job interview at a bank tomorrow",
    "Our cat knocked the christmas tree over",
]
ON_TOPIC = [
    "Golden retrievers are such sweet dogs, what did you name your puppy?",
    "Pepperoni and mushrooms on my pizza, always.",
    "Good luck with the marathon, how many miles do you run a week?",
    "Maybe the browser is using too much memory on your laptop.",
    "Skiing in the Alps sounds amazing, were the slopes crowded?",
    "The violin is hard, how long have you been practicing?",
    "I love science fiction novels, especially Asimov.",
    "Congratulations to your sister on the wedding!",
    "Fresh tomatoes and basil from the garden make the best sauce.",
    "I thought the Star Wars movie was disappointing too.",
    "Good luck with the bank interview tomorrow!",
    "Cats and christmas trees never go well together.",
]


def test_on_topic_replies_beat_generic_ones() -> None:
    on_topic = response_selection(CONTEXTS, ON_TOPIC)
    generic = response_selection(CONTEXTS, ["That's cool. I have to go now."] * len(CONTEXTS))
    assert on_topic["hits@1/10"] >= 0.9
    assert on_topic["mean_rank"] < 1.5
    # The same reply for everything ties with every distractor, and a tie is no hit.
    assert generic["hits@1/10"] == 0.0


def test_shuffled_replies_score_near_chance() -> None:
    shifted = ON_TOPIC[1:] + ON_TOPIC[:1]
    assert response_selection(CONTEXTS, shifted)["hits@1/10"] <= 0.25


def test_distractors_are_fixed_and_exclude_the_context_itself() -> None:
    sets = distractor_sets(12, 9, seed=0)
    assert sets == distractor_sets(12, 9, seed=0)
    assert all(i not in others and len(set(others)) == 9 for i, others in enumerate(sets))
    with pytest.raises(ValueError, match="more than 9"):
        distractor_sets(9)
