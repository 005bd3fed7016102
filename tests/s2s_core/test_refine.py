"""Retrieve and refine: the source layout, the marker row, and what training reads there."""

from __future__ import annotations

import random

import pytest
import torch

from s2s_core.corpora import Example, Turn
from s2s_core.data import MAX_RETRIEVED_TOKENS, PairDataset, refine_source
from s2s_core.refine import (
    is_refine,
    marker_id,
    near_copy,
    training_retrievals,
    with_marker,
)
from s2s_core.retrieval import NEARBY, CorpusIndex
from tests.conftest import tiny_model


def pair(message: str, reply: str) -> Example:
    return Example((Turn("hello", "bot"), Turn(message, "user")), reply)


def test_the_source_keeps_the_retrieved_reply_and_the_latest_conversation() -> None:
    context = list(range(100, 160))
    retrieved = list(range(200, 240))
    source = refine_source(context, retrieved, marker=9, max_len=64)
    assert len(source) == 64
    assert source[-MAX_RETRIEVED_TOKENS - 1] == 9  # the marker, then the retrieved reply's start
    assert source[-MAX_RETRIEVED_TOKENS:] == retrieved[:MAX_RETRIEVED_TOKENS]
    assert source[: 64 - MAX_RETRIEVED_TOKENS - 1] == context[-(64 - MAX_RETRIEVED_TOKENS - 1) :]
    assert refine_source([5, 6], [], marker=9, max_len=64) == [5, 6, 9]  # nothing retrieved


def test_the_marker_is_a_new_encoder_row_and_nothing_else_changes(tiny_tokenizer: object) -> None:
    vocab = tiny_tokenizer.vocab_size  # type: ignore[attr-defined]
    plain = tiny_model(vocab, attention="luong")
    grown = with_marker(plain).eval()
    assert grown.config.src_vocab_size == vocab + 1 == marker_id(grown.config) + 1
    assert grown.config.tgt_vocab_size == vocab  # the decoder never writes the marker
    src = torch.tensor([[7, 8, 9, 10]])
    tgt = torch.tensor([[1, 11, 12]])
    with torch.no_grad():  # the same function on every input the plain model could read
        assert torch.allclose(plain(src, tgt), grown(src, tgt), atol=1e-6)
        marked = grown(torch.tensor([[7, 8, marker_id(grown.config), 10]]), tgt)
    assert torch.isfinite(marked).all()


def test_training_never_reads_its_own_reply_or_its_dialogue_as_the_retrieved_one() -> None:
    examples = [pair(f"I play soccer on day {i}", f"Which position, day {i}?") for i in range(8)]
    examples += [pair(f"my cat number {i}", f"Cute cat {i}!") for i in range(12)]
    examples += [pair("I play soccer with friends", "Soccer is the best sport")]
    index = CorpusIndex.build(examples)
    texts, how = training_retrievals(examples, index, alpha=0.0, seed=0, aligned=True)
    assert how.near_copies == 0 and how.retrieved + how.none_found == len(examples)
    for row, text in enumerate(texts):
        assert text != examples[row].response
        if text:
            found = [i for i, ex in enumerate(examples) if ex.response == text]
            assert all(abs(i - row) > NEARBY for i in found)
    assert texts[0] == "Soccer is the best sport"  # rows 1-7: its own dialogue


def test_alpha_is_the_share_of_near_copies_of_the_true_reply() -> None:
    examples = [
        pair(f"message {i}", f"reply number {i} with several words in it") for i in range(400)
    ]
    index = CorpusIndex.build(examples)
    texts, how = training_retrievals(examples, index, alpha=0.25, seed=3, aligned=True)
    assert 70 <= how.near_copies <= 130
    copies = [
        t
        for t, ex in zip(texts, examples, strict=True)
        if set(t.split()) <= set(ex.response.split()) and t
    ]
    assert len(copies) >= how.near_copies
    assert texts == training_retrievals(examples, index, 0.25, seed=3, aligned=True)[0]  # resumable
    with pytest.raises(ValueError, match="alpha"):
        training_retrievals(examples, index, 1.5, seed=3, aligned=True)
    with pytest.raises(ValueError, match="rows"):  # more examples than the index has rows
        training_retrievals([*examples, examples[0]], index, 0.25, seed=3, aligned=True)
    first, _ = training_retrievals(examples[:10], index, 0.0, seed=3, aligned=True)  # --limit
    assert len(first) == 10 and all(first)


def test_a_near_copy_drops_some_words_and_never_all() -> None:
    rng = random.Random(0)
    text = "I have two cats and a very old dog named Rex"
    copies = [near_copy(text, rng) for _ in range(200)]
    assert all(c and set(c.split()) <= set(text.split()) for c in copies)
    assert 0.6 < sum(len(c.split()) for c in copies) / (200 * len(text.split())) < 0.9
    assert near_copy("Hi", random.Random(1)) == "Hi"


def test_pairs_end_with_the_marker_and_the_retrieved_reply(tiny_tokenizer: object) -> None:
    examples = [pair("how are you", "fine thanks"), pair("what is up", "nothing much")]
    data = PairDataset.from_examples(
        examples,
        tiny_tokenizer,
        32,
        16,
        (["nothing much", ""], 300),  # type: ignore[arg-type]
    )
    first, second = data[0][0].tolist(), data[1][0].tolist()
    cut = first.index(300)
    assert tiny_tokenizer.decode(first[cut + 1 :]) == "nothing much"  # type: ignore[attr-defined]
    assert second[-1] == 300


def test_a_checkpoint_says_whether_it_refines() -> None:
    assert is_refine({"data": {"refine_alpha": 0.25}})
    assert is_refine({"data": {"refine_alpha": 0.0}})
    assert not is_refine({"data": {"refine_alpha": None}}) and not is_refine({})


def test_each_retrieved_reply_conditions_a_share_of_the_beams(tiny_tokenizer: object) -> None:
    from s2s_core.decoding import DecodeConfig
    from s2s_core.refine import Refiner, share_of

    varied = DecodeConfig(beam_size=6, n_best=6, diversity="hamming", num_groups=3)
    assert (share_of(varied, 3).beam_size, share_of(varied, 3).n_best) == (2, 2)
    assert share_of(varied, 3).groups == 1
    assert share_of(DecodeConfig(beam_size=4, n_best=4), 3).beam_size == 1
    assert share_of(DecodeConfig(strategy="sample", n_best=5), 3).n_best == 2
    assert share_of(varied, 1) == varied

    vocab = tiny_tokenizer.vocab_size  # type: ignore[attr-defined]
    model = with_marker(tiny_model(vocab, attention="luong")).eval()
    index = CorpusIndex.build(
        [pair("do you like soccer", "fine thanks"), pair("any pets", "nothing much")]
        + [pair(f"filler {i}", f"what is up {i}") for i in range(12)]
    )
    refiner = Refiner(index, tiny_tokenizer, marker_id(model.config), 32)  # type: ignore[arg-type]
    cfg = DecodeConfig(beam_size=6, n_best=6, max_len=6)
    nbest, read = refiner.generate(model, [[7, 8, 9], [10, 11]], [["soccer"], ["?!"]], cfg)
    assert read[0] == ["fine thanks"] and read[1] == []  # nothing found: the slot stays empty
    assert 1 <= len(nbest[0]) <= 2 and 1 <= len(nbest[1]) <= 2  # one decode of 2 beams each
    assert nbest[0] == sorted(nbest[0], key=lambda h: -h.score)
    empty = Refiner(None, tiny_tokenizer, marker_id(model.config), 32)  # type: ignore[arg-type]
    assert empty.retrieve([["soccer"]]) == [[]]


def test_copy_share_counts_the_reply_words_found_in_one_retrieved_reply() -> None:
    from s2s_core.refine import copy_share

    assert copy_share("I love soccer!", ["i LOVE soccer"]) == 1.0
    assert copy_share("I love soccer too", ["I love", "soccer too"]) == 0.5
    assert copy_share("Which team?", []) == 0.0 and copy_share("", ["x"]) == 0.0


@pytest.mark.slow  # the corpus index of the training split (~30 s)
def test_a_plain_checkpoint_learns_to_refine_and_resumes(
    tmp_path: object, checkpoint_dir: object
) -> None:
    """``s2s train --init-from PLAIN --refine-alpha --pointer``: the model gains the marker
    row and a pointer head, every source carries the marker, the run resumes with the same
    data and the same model."""
    from pathlib import Path

    from s2s_core.recipe import DataConfig, new_run, resume_run, run_refines
    from s2s_core.train import TrainConfig

    out, cache = Path(str(tmp_path)) / "run", Path(str(tmp_path)) / "retrieval"
    data = DataConfig(limit=40, refine_alpha=0.5, max_src_len=32, max_tgt_len=12)
    cfg = TrainConfig(epochs=1, batch_size=8, max_steps=2)
    plain = Path(str(checkpoint_dir))
    trainer = new_run(out, data, {"pointer": True}, cfg, "cpu", plain, retrieval_dir=cache)
    assert trainer.model.config.pointer
    marker = marker_id(trainer.model.config)
    assert marker == trainer.tokenizer.vocab_size
    sources = [trainer.train_set[i][0].tolist() for i in range(len(trainer.train_set))]
    assert all(marker in src for src in sources)
    trainer.run()
    assert run_refines(out) and not run_refines(out / "nothing-here")
    again = resume_run(out, cache, max_steps=3)
    assert again.train_set[0][0].tolist() == sources[0]
    assert again.model.config.pointer
