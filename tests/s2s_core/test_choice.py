"""The n-best choice: acceptable first, defect-free preferred."""

from __future__ import annotations

from s2s_core import Hypothesis, Tokenizer
from s2s_core.choice import (
    FALLBACK,
    PERSONA,
    SORRY,
    Candidate,
    choose,
    choose_among,
    user_turns_before,
)
from s2s_core.mmi import Reranked
from s2s_core.special import EOS_ID, UNK_ID


def hyp(tokenizer: Tokenizer, text: str, score: float, unk: int = 0) -> Hypothesis:
    return Hypothesis([*tokenizer.encode(text), *[UNK_ID] * unk, EOS_ID], score, score)


def test_choice_skips_empty_unk_heavy_and_repeated(tiny_tokenizer: Tokenizer) -> None:
    hyps = [
        Hypothesis([EOS_ID], -0.1, -0.1),
        hyp(tiny_tokenizer, "hi", -0.2, unk=3),
        hyp(tiny_tokenizer, "how are you", -0.3),
        hyp(tiny_tokenizer, "fine thanks", -0.4),
    ]
    choice = choose(hyps, tiny_tokenizer, "what is up", recent_bot=["How  are YOU"])
    assert choice.text == "fine thanks" and choice.index == 3
    assert [c["score"] for c in choice.candidates] == [-0.1, -0.2, -0.3, -0.4]


def test_choice_falls_back_when_nothing_is_usable(tiny_tokenizer: Tokenizer) -> None:
    choice = choose([Hypothesis([EOS_ID], -0.1, -0.1)], tiny_tokenizer, "hello")
    assert choice.text == FALLBACK and choice.index == -1


def test_a_greeting_to_news_is_passed_over(tiny_tokenizer: Tokenizer) -> None:
    hyps = [hyp(tiny_tokenizer, "hello there", -0.1), hyp(tiny_tokenizer, "nothing much", -0.5)]
    choice = choose(hyps, tiny_tokenizer, "I got a new job")
    assert choice.text == "nothing much" and choice.index == 1
    assert choice.candidates[0]["defects"] == ["greeting"]
    assert "defects" not in choice.candidates[1]


def test_a_greeting_answers_a_greeting(tiny_tokenizer: Tokenizer) -> None:
    hyps = [hyp(tiny_tokenizer, "hello there", -0.1), hyp(tiny_tokenizer, "nothing much", -0.5)]
    assert choose(hyps, tiny_tokenizer, "hi!").index == 0


def test_defects_are_kept_when_nothing_else_is_acceptable(tiny_tokenizer: Tokenizer) -> None:
    hyps = [hyp(tiny_tokenizer, "hello there", -0.1), Hypothesis([EOS_ID], -0.2, -0.2)]
    choice = choose(hyps, tiny_tokenizer, "I got a new job")
    assert choice.text == "hello there"


def test_the_defect_rules_can_be_switched_off(tiny_tokenizer: Tokenizer) -> None:
    hyps = [hyp(tiny_tokenizer, "hello there", -0.1), hyp(tiny_tokenizer, "nothing much", -0.5)]
    assert choose(hyps, tiny_tokenizer, "my dog is sick", avoid_defects=False).index == 0


def test_reranked_candidates_carry_both_scores(tiny_tokenizer: Tokenizer) -> None:
    h = hyp(tiny_tokenizer, "fine thanks", -0.4)
    choice = choose([Reranked(h, -0.13, -2.5, -1.3)], tiny_tokenizer, "how are you")
    assert choice.candidates == [
        {
            "text": "fine thanks",
            "source": "generated",
            "score": -1.3,
            "forward": -0.13,
            "backward": -2.5,
        }
    ]


def test_a_reply_cut_at_max_len_is_passed_over(tiny_tokenizer: Tokenizer) -> None:
    cut = Hypothesis(tiny_tokenizer.encode("fine thanks"), -0.1, -0.1)  # no <eos>
    hyps = [cut, hyp(tiny_tokenizer, "nothing much", -0.5)]
    choice = choose(hyps, tiny_tokenizer, "what is up")
    assert choice.index == 1 and choice.candidates[0]["defects"] == ["unfinished"]


def test_a_cut_reply_loses_its_unfinished_sentence(tiny_tokenizer: Tokenizer) -> None:
    """A third of the test replies ended mid-sentence ("... But I don't think I")."""
    cut = Hypothesis(tiny_tokenizer.encode("fine thanks. what about you"), -0.1, -0.1)
    choice = choose([cut], tiny_tokenizer, "hi")
    assert choice.text == "fine thanks." and choice.index == 0
    assert "defects" not in choice.candidates[0]
    # Its MMI rank was earned with the sentence it lost: a whole candidate goes first.
    whole = hyp(tiny_tokenizer, "nothing much", -0.5)
    assert choose([cut, whole], tiny_tokenizer, "hi").text == "nothing much"
    kept = choose([cut], tiny_tokenizer, "hi", avoid_defects=False)
    assert kept.text == "fine thanks. what about you"


def test_a_reply_stopped_where_training_targets_were_cut_is_cut(
    tiny_tokenizer: Tokenizer,
) -> None:
    """Targets cut at max_tgt_len and given <eos> taught the model to stop there
    mid-sentence; near that length a reply without a sentence end is treated as cut."""
    text = "fine thanks. " + "so " * 40
    tokens = [*tiny_tokenizer.encode(text)[:29], EOS_ID]
    long_stop = Hypothesis(tokens, -0.1, -0.1)
    assert choose([long_stop], tiny_tokenizer, "hi", target_len=32).text == "fine thanks."
    assert choose([long_stop], tiny_tokenizer, "hi").text.startswith("fine thanks. so so")
    short = hyp(tiny_tokenizer, "fine thanks. so", -0.1)
    assert choose([short], tiny_tokenizer, "hi", target_len=32).text == "fine thanks. so"


def test_cheering_is_a_defect_while_a_sad_story_goes_on(tiny_tokenizer: Tokenizer) -> None:
    hyps = [hyp(tiny_tokenizer, "that's so cool", -0.1), hyp(tiny_tokenizer, "what happened", -0.5)]
    message = "it split down the middle"
    assert choose(hyps, tiny_tokenizer, message).index == 0
    story = choose(hyps, tiny_tokenizer, message, user_before="i broke my wrist")
    assert story.text == "what happened" and story.index == 1  # no sorry: this message is none
    assert story.candidates[0]["defects"] == ["cheer_to_bad_news"]


def test_the_users_turns_before_a_message() -> None:
    turns = [("user", "i broke my wrist"), ("bot", "how?"), (None, "x")]
    assert user_turns_before(turns) == "i broke my wrist"
    assert user_turns_before([("bot", "hi")]) == ""
    story = [("user", "I lost my job today."), ("bot", "What do you do?")]
    story += [("user", "my company had layoffs and I was one of them."), ("bot", "Oh no")]
    told = user_turns_before(story)
    assert (
        told.startswith("I lost my job today.")
        and choose_among(
            [Candidate("Nice! What do you do for work?"), Candidate("That must be hard.")],
            "I don't know how I'm going to pay rent.",
            user_before=told,
        ).text
        == "That must be hard."
    )
    assert (
        user_turns_before([("user", "a"), ("user", "b"), ("user", "c"), ("user", "d")]) == "b c d"
    )


def test_a_question_about_the_bot_gets_its_one_answer(tiny_tokenizer: Tokenizer) -> None:
    hyps = [hyp(tiny_tokenizer, "fine thanks", -0.1)]
    for message in ("Are you a robot?", "are you a ROBOT", "What's your name?"):
        choice = choose(hyps, tiny_tokenizer, message)
        assert choice.index == PERSONA and "chatbot" in choice.text
        assert choice.candidates[0]["text"] == "fine thanks"  # the n-best is still logged


def test_the_self_description_is_passed_over_when_nobody_asked(
    tiny_tokenizer: Tokenizer,
) -> None:
    text = "I'm a chatbot: a small neural network that learned to chat from conversations."
    canned = Hypothesis([*tiny_tokenizer.encode(text), EOS_ID], -0.1, -0.1)
    hyps = [canned, hyp(tiny_tokenizer, "nothing much", -0.5)]
    choice = choose(hyps, tiny_tokenizer, "I lost my job today")
    assert choice.index == 1
    assert choice.candidates[0]["defects"] == ["unasked_self_description"]


def test_without_the_rules_a_question_about_the_bot_is_decoded(
    tiny_tokenizer: Tokenizer,
) -> None:
    hyps = [hyp(tiny_tokenizer, "fine thanks", -0.1)]
    assert choose(hyps, tiny_tokenizer, "Are you a robot?", avoid_defects=False).index == 0


def test_bad_news_prefers_a_candidate_that_does_not_cheer(tiny_tokenizer: Tokenizer) -> None:
    hyps = [hyp(tiny_tokenizer, "that's so cool", -0.1), hyp(tiny_tokenizer, "what happened", -0.5)]
    choice = choose(hyps, tiny_tokenizer, "my dog is sick")
    assert choice.text == f"{SORRY} What happened" and choice.index == 1
    assert choice.candidates[0]["defects"] == ["cheer_to_bad_news"]
    kind = [hyp(tiny_tokenizer, "oh no, i'm so sorry", -0.1)]
    assert choose(kind, tiny_tokenizer, "my dog is sick").text == "oh no, i'm so sorry"


def test_a_stock_sentence_is_passed_over_and_cut_from_sympathy(tiny_tokenizer: Tokenizer) -> None:
    """The sentences the model falls back on whatever was said are a defect; when bad news
    gets sympathy, they go, with a word max_len left dangling."""
    stock = "i don't think i've ever heard of that one"
    hyps = [hyp(tiny_tokenizer, stock, -0.1), hyp(tiny_tokenizer, "what kind of music", -0.5)]
    choice = choose(hyps, tiny_tokenizer, "tell me a joke")
    assert choice.index == 1 and choice.candidates[0]["defects"] == ["stock_sentence"]
    cut = Hypothesis(tiny_tokenizer.encode("fine thanks. " + stock + ". i"), -0.1, -0.1)
    assert choose([cut], tiny_tokenizer, "my grandmother passed away").text == (
        f"{SORRY} Fine thanks."
    )


def test_when_every_candidate_cheers_at_bad_news_the_reply_sympathises(
    tiny_tokenizer: Tokenizer,
) -> None:
    hyps = [hyp(tiny_tokenizer, "oh nice! what did you do", -0.1)]
    choice = choose(hyps, tiny_tokenizer, "I lost my job today")
    assert choice.text == f"{SORRY} What did you do" and choice.index == 0
    assert choose(hyps, tiny_tokenizer, "I got a new job today").text == "oh nice! what did you do"
    only_cheer = [hyp(tiny_tokenizer, "that's awesome!", -0.1)]
    assert choose(only_cheer, tiny_tokenizer, "my grandmother passed away").text == SORRY
    assert choose(only_cheer, tiny_tokenizer, "my dog died", avoid_defects=False).index == 0


def test_a_stock_sentence_every_candidate_has_is_cut_when_others_remain(
    tiny_tokenizer: Tokenizer,
) -> None:
    stock = "i don't think i've ever heard of that one."
    both = hyp(tiny_tokenizer, "that's so cool. " + stock + " what about you?", -0.1)
    assert (
        choose([both], tiny_tokenizer, "we got a puppy").text == "That's so cool. What about you?"
    )
    alone = hyp(tiny_tokenizer, stock, -0.1)
    assert choose([alone], tiny_tokenizer, "we got a puppy").text == stock
    assert choose([both], tiny_tokenizer, "we got a puppy", avoid_defects=False).text == (
        "that's so cool. " + stock + " what about you?"
    )
