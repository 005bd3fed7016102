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


# Questions about the bot in other words than the file's, typos and lower case included,
# with the kind of answer each must get (a word the true answer holds).
OTHER_WORDS = [
    ("are you a real person or a bot?", "chatbot, not a person"),
    ("r u human", "chatbot, not a person"),
    ("ARE U A ROBOT", "chatbot, not a person"),
    ("ar you a bot", "chatbot, not a person"),
    ("are yuo a bot", "chatbot, not a person"),
    ("is this a bot?", "chatbot, not a person"),
    ("am i chatting with a bot", "chatbot, not a person"),
    ("you're a bot lol", "chatbot, not a person"),
    ("human or bot?", "chatbot, not a person"),
    ("are you even real?", "chatbot, not a person"),
    ("whats ur name", "S2S"),
    ("what should i call you", "S2S"),
    ("who r u", "S2S"),
    ("tell me about urself", "S2S"),
    ("who coded you", "made by the people"),
    ("who's your creator?", "made by the people"),
    ("who programmed this bot", "made by the people"),
    ("how were you trained", "trained on thousands"),
    ("how does this bot work", "write a reply word by word"),
    ("how old r u", "don't have an age"),
    ("whats your age", "don't have an age"),
    ("how old did you say you were?", "don't have an age"),
    ("when were you born", "don't have a birthday"),
    ("where r u from", "live on a computer"),
    ("what's the weather like where you are?", "live on a computer"),
    ("are you a guy or a girl", "neither"),
    ("what's your gender", "neither"),
    ("do you have emotions", "don't have feelings"),
    ("are you sentient?", "Not like you do"),
    ("are you intelligent", "not very"),
    ("r u siri", "S2S"),
    ("r u in college", "don't go to school"),
    ("what year are you?", "don't go to school"),
    ("whats ur major", "don't go to school"),
    ("do you work?", "only job"),
    ("do you have any brothers or sisters", "don't have a family"),
    ("are you single?", "don't date"),
    ("Are you married?", "not married"),
    ("Cool. How long have you been married?", "not married"),
    ("do you have a dog?", "don't have pets"),
]

# Ordinary chit-chat that mentions "you", names or robots: the model's to answer.
NOT_ABOUT_THE_BOT = [
    "how old are your kids?",
    "are you a morning person?",
    "who made this cake?",
    "what's your dog's name?",
    "is this real life?",
    "where are you going?",
    "are you a fan of ai movies?",
    "are you from utah?",
    "are you a people person",
    "what do you think about ai?",
    "my name is bob",
    "the robot was cool",
    "do you work out?",
    "what do you do for fun?",
    "do you like dogs?",
]


def test_questions_about_the_bot_in_other_words_get_a_true_answer() -> None:
    wrong = [
        (q, persona_answer(q)) for q, want in OTHER_WORDS if want not in (persona_answer(q) or "")
    ]
    assert not wrong


def test_chit_chat_about_other_things_is_left_to_the_model() -> None:
    assert [q for q in NOT_ABOUT_THE_BOT if persona_answer(q) is not None] == []
