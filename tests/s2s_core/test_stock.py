"""Stock sentences found by counting: what a model says to unrelated conversations that
people hardly ever say, and the choice and the quality rates treating them as stock."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from s2s_core import ModelConfig, Seq2Seq, Tokenizer, save_checkpoint
from s2s_core.checkpoint import CheckpointError, load_checkpoint
from s2s_core.choice import Candidate, choose_among
from s2s_core.corpora import Example, Turn
from s2s_core.data import encode_context, target_ids
from s2s_core.decoding import DecodeConfig
from s2s_core.quality import defects, is_stock, learned_stock, quality_rates
from s2s_core.stock import find_stock, stock_of
from s2s_core.train import masked_nll

FUN = "i think it's a lot of fun"


def test_a_sentence_said_to_unrelated_conversations_that_people_never_say_is_stock() -> None:
    nbests = [[f"Oh nice. {FUN.capitalize()}!", "What about you?"] for _ in range(10)]
    nbests += [[f"Topic {i} is great, tell me more.", "What about you?"] for i in range(90)]
    people = Counter({"what about you": 500, "topic 3 is great tell me more": 0})
    found = stock_of(nbests, people, replies=100_000)
    assert found == [(FUN, 10, 0)]  # "What about you?" is people's glue; topics are once each


def test_what_people_say_often_enough_is_never_stock() -> None:
    nbests = [[FUN] for _ in range(50)]
    assert stock_of(nbests, Counter({FUN: 5}), replies=100_000) == [(FUN, 50, 5)]
    assert stock_of(nbests, Counter({FUN: 6}), replies=100_000) == []  # over 1 in 20,000


def test_short_sentences_and_a_few_lists_are_never_stock() -> None:
    assert stock_of([["Yes!", "Haha."]] * 100, Counter(), 100) == []
    assert stock_of([[FUN]] * 2, Counter(), 100) == []  # fewer than three conversations


def test_a_sentence_holding_a_stock_one_is_stock() -> None:
    learned = frozenset({FUN})
    assert is_stock("Yeah, I think it's a lot of fun to watch.", learned)
    assert is_stock("Sure. I think it’s a lot of FUN!", learned)
    assert not is_stock("I think it's a lot of work.", learned)
    assert not is_stock("Yeah, I think it's a lot of fun to watch.")  # not hand-written
    assert is_stock("I don't think I've ever heard of that one")  # the hand-written list


def test_the_choice_passes_over_a_candidate_with_the_checkpoints_stock_sentence() -> None:
    learned = frozenset({FUN})
    pool = [Candidate("Surfing? I think it's a lot of fun."), Candidate("Which beach do you surf?")]
    assert choose_among(pool, "I went surfing today", stock=learned).index == 1
    assert choose_among(pool, "I went surfing today").index == 0
    assert defects(pool[0].text, "I went surfing today", learned) == ["stock_sentence"]
    alone = [Candidate("Surfing is hard. I think it's a lot of fun.")]
    assert choose_among(alone, "I went surfing", stock=learned).text == "Surfing is hard."
    rates = quality_rates([pool[0].text], ["I went surfing today"], learned)
    assert rates["stock_phrase_rate"] == 1.0


@pytest.mark.parametrize(
    "entry",
    [["a list, not an object"], {"sentences": "one string"}, {"sentences": [1, 2]}, {}],
)
def test_a_malformed_stock_entry_stops_the_checkpoint_in_one_line(
    entry: object, checkpoint_dir: Path
) -> None:
    meta = json.loads((checkpoint_dir / "metrics.json").read_text())
    (checkpoint_dir / "metrics.json").write_text(json.dumps({**meta, "stock_sentences": entry}))
    with pytest.raises(CheckpointError, match="stock_sentences must hold a list"):
        load_checkpoint(checkpoint_dir)
    with pytest.raises(ValueError):
        learned_stock({"stock_sentences": entry})


def test_a_checkpoint_without_a_list_has_no_learned_stock(checkpoint_dir: Path) -> None:
    _, _, meta = load_checkpoint(checkpoint_dir)
    assert learned_stock(meta) == frozenset()


SAYS = "i like pizza a lot"
TOPICS = ["the weather is nice", "my dog is sick", "we went hiking", "i lost my job", "hi"]


def _parrot(tokenizer: Tokenizer) -> Seq2Seq:
    """A tiny model trained to answer everything with ``SAYS``."""
    torch.manual_seed(0)
    model = Seq2Seq(
        ModelConfig(
            tokenizer.vocab_size,
            tokenizer.vocab_size,
            emb_dim=16,
            hidden_dim=32,
            n_layers=1,
            dropout=0.0,
            attention="luong",
        )
    )
    sources = [encode_context(tokenizer, [Turn(t, "user")], 16) for t in TOPICS]
    target = target_ids(tokenizer.encode(SAYS), 12)
    src = torch.nn.utils.rnn.pad_sequence([torch.tensor(s) for s in sources], batch_first=True)
    tgt = torch.tensor([target] * len(TOPICS))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        loss = masked_nll(model(src, tgt), tgt)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_find_stock_counts_what_a_model_says_to_everything_unless_people_say_it() -> None:
    tokenizer = Tokenizer.train([SAYS, *TOPICS] * 20, vocab_size=300)
    model = _parrot(tokenizer)
    conversations = [Example([Turn(t, "user")], "") for t in TOPICS]
    cfg = DecodeConfig(strategy="greedy", max_len=10)
    found = find_stock(model, tokenizer, conversations, [], cfg, 3, 16)
    assert found["sentences"] == [SAYS] and found["conversations"] == len(TOPICS)
    people = [Example([], f"{SAYS}!") for _ in range(3)]  # 3 in 3 replies: people's words
    assert find_stock(model, tokenizer, conversations, people, cfg, 3, 16)["sentences"] == []


def test_the_stock_command_writes_the_checkpoints_list_and_refuses_other_tasks(
    checkpoint_dir: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from s2s_cli.main import app

    result = CliRunner().invoke(app, ["models", "stock", str(checkpoint_dir)])
    assert result.exit_code == 2 and "chit-chat corpus" in result.output, result.output
    assert "Traceback" not in result.output
    missing = CliRunner().invoke(app, ["models", "stock", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "not a directory" in missing.output


def test_a_saved_list_is_what_the_choice_reads(checkpoint_dir: Path) -> None:
    model, tokenizer, meta = load_checkpoint(checkpoint_dir)
    meta["stock_sentences"] = {"sentences": ["I think it's a lot of fun!"]}
    save_checkpoint(checkpoint_dir, model, tokenizer, meta)
    _, _, again = load_checkpoint(checkpoint_dir)
    assert learned_stock(again) == frozenset({FUN})


@pytest.mark.slow  # loads the chit-chat splits and decodes 300 conversations (~20 s)
def test_export_counts_a_chitchat_checkpoints_stock_sentences(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from s2s_cli.main import app

    tokenizer = Tokenizer.train([SAYS, *TOPICS] * 20, vocab_size=300)
    meta = {"data": {"task": "chitchat", "clean": True, "max_src_len": 16}, "name": "parrot"}
    source = save_checkpoint(tmp_path / "parrot", _parrot(tokenizer), tokenizer, meta)
    result = CliRunner().invoke(app, ["models", "export", str(source), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    _, _, exported = load_checkpoint(tmp_path / "out")
    found = exported["stock_sentences"]
    assert SAYS in found["sentences"] and found["conversations"] == 300
    assert "## Stock sentences" in (tmp_path / "out" / "MODEL_CARD.md").read_text()
