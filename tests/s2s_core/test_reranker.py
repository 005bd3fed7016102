"""The cross-encoder: what it reads, one score per pair for a whole batch, training that
learns and resumes, bad folders refused in one line, and its place in the hybrid pool."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from s2s_core.checkpoint import CheckpointError
from s2s_core.choice import Candidate
from s2s_core.hybrid import Hybrid, HybridConfig, load_hybrid, rank_pools
from s2s_core.reranker import (
    CONVERSATION_PIECES,
    REPLY_PIECES,
    Reranker,
    RerankerUnavailable,
    _listwise_loss,
    fine_tune,
)
from s2s_core.retrieval import CorpusIndex
from tests.s2s_core.test_hybrid import CORPUS_PAIRS, ScriptedRanker

BI_ENCODER = Path(__file__).parents[2] / "models" / "default" / "ranker"


@pytest.fixture(scope="module")
def reranker() -> Reranker:
    torch.manual_seed(0)
    model = Reranker.from_bi_encoder(BI_ENCODER, layers=1)
    # A fresh head scores every pair alike; a spread one tells misplaced scores apart.
    torch.nn.init.normal_(model.model.head.weight, std=50.0)
    return model.eval()


def test_it_reads_the_end_of_the_conversation_and_the_start_of_the_reply(
    reranker: Reranker,
) -> None:
    conversation = "word " * 200 + "what is your favorite movie"
    reply = "Star Wars " + "and more " * 100
    batch = reranker.inputs([(conversation, reply), ("hi", "hello")])
    tok = reranker.tokenizer
    first = batch["input_ids"][0].tolist()
    assert len(first) == CONVERSATION_PIECES + REPLY_PIECES + 3  # [CLS] and two [SEP]
    text = tok.decode(first)
    assert "favorite movie [SEP] star wars" in text
    assert batch["token_type_ids"][0].sum().item() == REPLY_PIECES + 1
    assert batch["attention_mask"][1].sum().item() == len(tok("hi", "hello")["input_ids"])


def test_a_batch_scores_each_pair_as_it_would_alone(reranker: Reranker) -> None:
    conversations = ["I just got back from a hike", "my cat is sick"]
    candidates = [["Where did you go?", "cool", "I like turtles a lot, do you?"], ["Oh no!"]]
    together = reranker.scores(conversations, candidates, chunk=2)
    assert [len(s) for s in together] == [3, 1]
    alone = [
        [reranker.scores([c], [[t]])[0][0] for t in texts]
        for c, texts in zip(conversations, candidates, strict=True)
    ]
    assert [s for row in together for s in row] == pytest.approx(
        [s for row in alone for s in row], abs=1e-3
    )
    assert len({round(s, 3) for row in together for s in row}) == 4
    with pytest.raises(ValueError, match="2 conversations for 1 lists"):
        reranker.scores(conversations, candidates[:1])


TOPICS = ["dogs", "pizza", "soccer", "guitar", "rain", "physics", "coffee", "winter"]


def topic_pairs() -> tuple[list[tuple[str, str]], list[list[str]]]:
    """Conversations about one topic each, whose true reply is about it; the negatives are
    replies about the others (what retrieval would bring, minus the right one)."""
    pairs = [(f"I have been thinking about {t} all day", f"Oh, {t}! Tell me more.") for t in TOPICS]
    negatives = [[r for j, (_, r) in enumerate(pairs) if j != i] for i in range(len(pairs))]
    return pairs, negatives


def group_loss(model: Reranker, pairs: list[tuple[str, str]], negatives: list[list[str]]) -> float:
    groups = [[(c, t) for t in [r, *negatives[i]]] for i, (c, r) in enumerate(pairs)]
    with torch.no_grad():
        return _listwise_loss(model, groups).item()


@pytest.mark.slow
def test_training_learns_to_put_the_true_reply_first_and_resumes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Reranker.from_bi_encoder(BI_ENCODER, layers=1)
    pairs, negatives = topic_pairs()
    before = group_loss(model, pairs, negatives)
    found = lambda rows: [negatives[r] for r in rows]  # noqa: E731
    out = tmp_path / "reranker"
    fine_tune(model, pairs, found, out, steps=3, batch_size=4, lr=3e-4, progress=False)
    assert (out / "progress.txt").read_text().startswith("3 steps")
    again = Reranker.load(out)
    assert group_loss(again, pairs, negatives) == pytest.approx(
        group_loss(model.eval(), pairs, negatives), abs=1e-4
    )  # what was saved is what was trained
    fine_tune(again, pairs, found, out, steps=40, batch_size=4, lr=3e-4, progress=False)
    assert (out / "progress.txt").read_text().startswith("40 steps")
    assert before == pytest.approx(2.08, abs=0.05)  # chance: one right among 8
    assert group_loss(again.eval(), pairs, negatives) < before / 2


def test_a_folder_that_is_not_a_cross_encoder_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(RerankerUnavailable, match="not a cross-encoder"):
        Reranker.load(tmp_path / "nothing")
    with pytest.raises(RerankerUnavailable, match="not an encoder folder"):
        Reranker.from_bi_encoder(tmp_path, layers=1)
    with pytest.raises(RerankerUnavailable, match="not a cross-encoder"):
        Reranker.load(BI_ENCODER)  # a bi-encoder's folder: no score head of one label


class ScriptedReranker:
    """Scores each candidate by a table; records what it was asked."""

    name = "scripted-cross"

    def __init__(self, table: dict[str, float]) -> None:
        self.table, self.asked = table, []  # type: ignore[var-annotated]

    def scores(self, queries: Sequence[str], candidates: Sequence[Sequence[str]]) -> list:
        self.asked.append((list(queries), [list(c) for c in candidates]))
        return [[self.table.get(t, 0.0) for t in texts] for texts in candidates]


def test_the_cross_encoder_reorders_only_the_first_candidates() -> None:
    ranker = ScriptedRanker({"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6})
    cross = ScriptedReranker({"a": 0.0, "b": 1.0, "c": 2.0, "d": 9.0})
    cfg = HybridConfig(retrieved=0, rerank=3)
    hybrid = Hybrid(CorpusIndex.build(CORPUS_PAIRS), ranker, cfg, reranker=cross)  # type: ignore[arg-type]
    own = [Candidate(t, "generated", {"score": -1.0}) for t in "abcd"]
    (pool,) = rank_pools(hybrid, [["hi", "I broke my wrist"]], [own])
    assert [c.text for c in pool] == ["c", "b", "a", "d"]  # d: not among the first 3
    assert pool[0].scores["reranker"] == 2.0 and "reranker" not in pool[3].scores
    assert cross.asked == [(["hi I broke my wrist"], [["a", "b", "c"]])]
    assert hybrid.describe()["reranker"] == "scripted-cross"
    with pytest.raises(ValueError, match="needs a reranker"):
        Hybrid(CorpusIndex.build(CORPUS_PAIRS), ranker, cfg)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rerank must be in"):
        HybridConfig(rerank=-1)


def test_a_checkpoint_asking_for_a_reranker_it_lacks_is_one_line(tmp_path: Path) -> None:
    meta = {"hybrid": {"retrieved": 2, "rerank": 4}, "data": {"split_seed": 13}}
    (tmp_path / "ckpt").mkdir()
    with pytest.raises(CheckpointError, match="rerank is 4 but it has no reranker/ folder"):
        load_hybrid(tmp_path / "ckpt", meta, tmp_path / "cache")
    (tmp_path / "ckpt" / "reranker").mkdir()  # a folder that holds no cross-encoder
    with pytest.raises(CheckpointError, match=r"reranker .*: not a cross-encoder"):
        load_hybrid(tmp_path / "ckpt", meta, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # refused before the corpus index is built
