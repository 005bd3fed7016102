"""Corpora, context building, the flat dataset and length buckets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from s2s_core.corpora import (
    Turn,
    chitchat_dialogues,
    dialogue_examples,
    read_jsonl,
    read_tsv,
    split_dialogues,
    synthetic_sequences,
)
from s2s_core.data import (
    BucketBatchSampler,
    PairDataset,
    collate,
    context_ids,
    pad_batch,
    target_ids,
)
from s2s_core.special import BOT_ID, EOS_ID, SOS_ID, USER_ID


def test_dialogue_examples_alternate_speakers_from_the_reply() -> None:
    examples = list(dialogue_examples(["hi", "hello", "how are you", "fine"], context_turns=2))
    assert [e.response for e in examples] == ["hello", "how are you", "fine"]
    assert examples[2].context == (Turn("hello", "bot"), Turn("how are you", "user"))
    assert examples[0].context == (Turn("hi", "user"),)


def test_context_is_truncated_from_the_left() -> None:
    ids = context_ids([("bot", [10, 11, 12]), ("user", [13, 14])], max_len=4)
    assert ids == [12, USER_ID, 13, 14]
    assert context_ids([("bot", [10]), ("user", [13])], 10) == [BOT_ID, 10, USER_ID, 13]
    assert context_ids([(None, [7, 8])], 10) == [7, 8]


def test_a_cut_target_teaches_no_eos() -> None:
    assert target_ids([7, 8, 9, 10], max_len=4) == [SOS_ID, 7, 8, 9]
    assert target_ids([7, 8], max_len=4) == [SOS_ID, 7, 8, EOS_ID]


@pytest.fixture(scope="module")
def dialogues() -> list[list[str]]:
    return chitchat_dialogues()


def test_chitchat_split_is_by_conversation_and_fixed(dialogues: list[list[str]]) -> None:
    assert len(dialogues) > 4000  # of 7,168: the rest never got a reply
    splits = split_dialogues(dialogues, seed=13)
    keys = {name: {tuple(d) for d in part} for name, part in splits.items()}
    assert not keys["train"] & keys["test"] and not keys["train"] & keys["valid"]
    assert sum(len(p) for p in splits.values()) == len(dialogues)
    assert split_dialogues(dialogues, seed=13)["test"] == splits["test"]
    assert len(splits["test"]) == len(dialogues) // 20


def test_tsv(tmp_path: Path) -> None:
    good = tmp_path / "good.tsv"
    good.write_text("hello\tbonjour\n\nthank you\tmerci\n", encoding="utf-8")
    examples = read_tsv(good)
    assert [(e.context[0].text, e.response) for e in examples] == [
        ("hello", "bonjour"),
        ("thank you", "merci"),
    ]
    bad = tmp_path / "bad.tsv"
    bad.write_text("hello\tbonjour\nno tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.tsv:2"):
        read_tsv(bad)


def test_jsonl(tmp_path: Path) -> None:
    record = {"context": [{"speaker": "user", "text": "hi"}], "response": "hello", "meta": {}}
    path = tmp_path / "log.jsonl"
    path.write_text(json.dumps(record) + "\n")
    assert read_jsonl(path)[0].context == (Turn("hi", "user"),)
    for line, message in [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"context": [], "response": "x"}', "context"),
        ('{"context": [{"speaker": "alien", "text": "x"}], "response": "y"}', "speaker"),
        ('{"context": [{"speaker": "user", "text": "x"}], "response": ""}', "response"),
    ]:
        path.write_text(json.dumps(record) + "\n" + line + "\n")
        with pytest.raises(ValueError, match=rf"log.jsonl:2: .*{message}"):
            read_jsonl(path)


def test_synthetic_tasks() -> None:
    pairs = synthetic_sequences("sort", 50, n_symbols=20, min_len=5, max_len=15, seed=0)
    assert all(t == sorted(s) and 5 <= len(s) <= 15 for s, t in pairs)
    assert synthetic_sequences("sort", 50, 20, 5, 15, seed=0) == pairs
    with pytest.raises(ValueError, match="task"):
        synthetic_sequences("rotate", 1, 20, 5, 15, seed=0)


def test_pair_dataset_is_flat_and_exact() -> None:
    pairs = [([5, 6, 7], [1, 8, 2]), ([9], [1, 10, 11, 12, 2])]
    data = PairDataset(pairs)
    assert len(data) == 2 and data.src.dtype == np.int32
    assert [s.tolist() for s, _ in (data[0], data[1])] == [[5, 6, 7], [9]]
    assert data.target_tokens() == 2 + 4
    src, tgt = collate([data[0], data[1]])
    assert src.tolist() == [[5, 6, 7], [9, 0, 0]]
    assert tgt.tolist() == [[1, 8, 2, 0, 0], [1, 10, 11, 12, 2]]


def test_bucket_sampler_covers_everything_once_and_groups_lengths() -> None:
    lengths = np.random.default_rng(0).integers(1, 60, size=1000)
    sampler = BucketBatchSampler(lengths, batch_size=16, seed=3, pool=10)
    batches = sampler.batches()
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert len(batches) == len(sampler)
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < 10  # random batches would spread over ~50
    assert sampler.batches() == batches  # same epoch, same order: resumable
    sampler.set_epoch(1)
    assert sampler.batches() != batches


def test_pad_batch_right_pads() -> None:
    assert pad_batch([[3], [4, 5]]).tolist() == [[3, 0], [4, 5]]


def test_a_fine_tune_on_few_pairs_validates_on_the_corpus_too(tmp_path: Path) -> None:
    """44 logged pairs hold 2 validation pairs: with --mix the original corpus' validation
    pairs join them (the best checkpoint is never picked on one or two pairs)."""
    from s2s_core.recipe import MIXED_VALID_PAIRS, DataConfig, load_split

    path = tmp_path / "pairs.jsonl"
    turn = {"speaker": "user", "text": "message {}"}
    rows = [
        {"context": [{**turn, "text": f"message {i}"}], "response": f"reply {i}"} for i in range(44)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    alone = DataConfig(task="jsonl", path=str(path), context_turns=1)
    mixed = DataConfig(task="jsonl", path=str(path), context_turns=1, mix=0.5, mix_with="copy")
    own = load_split(alone, "valid")
    assert len(own) == 2
    valid = load_split(mixed, "valid")
    assert valid[:2] == own and len(valid) == 2 + MIXED_VALID_PAIRS
    assert valid == load_split(mixed, "valid")  # the same pairs every run
