"""The committed default model: small, fp16, described by its card, and what `make chat` serves."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from safetensors import safe_open
from typer.testing import CliRunner

from s2s_cli.main import app
from s2s_core import load_checkpoint
from s2s_core.mmi import load_backward

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "models" / "default"


def _card_evaluation(pairs: int) -> dict[str, object]:
    meta = json.loads((DEFAULT / "metrics.json").read_text())
    matches = [e for e in meta["evaluations"] if e["split"] == "test" and e["pairs"] == pairs]
    assert matches, f"the card has no test evaluation over {pairs} pairs"
    return matches[0]


def test_default_model_is_small_fp16_and_loads() -> None:
    size = sum(f.stat().st_size for f in DEFAULT.rglob("*") if f.is_file())
    assert size <= 85_000_000  # the Seq2Seq pair 36 MB, the hybrid pool's ranker 45 MB
    weights = ("model.safetensors", "backward/model.safetensors", "ranker/model.safetensors")
    for weights_file in (DEFAULT / name for name in weights):
        with safe_open(str(weights_file), "pt") as weights:
            assert (weights.metadata() or {}).get("dtype") == "float16"
    model, tokenizer, meta = load_checkpoint(DEFAULT)
    backward = load_backward(DEFAULT, tokenizer, meta)
    assert backward is not None
    assert (backward.cfg.weight, backward.cfg.length_bonus) == (
        meta["mmi"]["weight"],
        meta["mmi"]["length_bonus"],
    )
    assert model.num_parameters() <= 15_000_000
    assert tokenizer.vocab_size == model.config.tgt_vocab_size
    card = (DEFAULT / "MODEL_CARD.md").read_text()
    for strategy in ("greedy", "beam", "hamming", "varied"):
        assert f"| {strategy} |" in card
    assert (DEFAULT / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_the_default_model_ranks_corpus_replies_with_its_own_ranker() -> None:
    from s2s_core.ranker import Ranker

    meta = json.loads((DEFAULT / "metrics.json").read_text())
    assert meta["hybrid"]["retrieved"] == 20
    ranker = Ranker.for_checkpoint(DEFAULT)
    assert ranker.name == "ranker" and ranker.key().startswith("tuned-")
    (scores,) = ranker.scores(
        ["My grandmother passed away last week."],
        [["Oh no, I'm so sorry for your loss. Were you close?", "I love pizza!"]],
    )
    assert scores[0] > scores[1]


def test_eval_reproduces_the_card_perplexity() -> None:
    card = _card_evaluation(200)["perplexity"]["perplexity"]  # type: ignore[index]
    result = CliRunner().invoke(
        app, ["eval", "--model", str(DEFAULT), "--split", "test", "--limit", "200"]
    )
    assert result.exit_code == 0, result.output
    measured = json.loads(result.stdout)["perplexity"]["perplexity"]
    assert measured == pytest.approx(card, rel=0.01)


@pytest.mark.slow
def test_eval_reproduces_the_card_reply_quality() -> None:
    """The shipped style's replies to the card's 200 test contexts, MMI and choice included,
    measure as the card says (decoding is deterministic)."""
    card = _card_evaluation(200)["varied"]
    args = ["--model", str(DEFAULT), "--split", "test", "--limit", "200"]
    result = CliRunner().invoke(app, ["eval", *args, "--strategies", "varied"])
    assert result.exit_code == 0, result.output
    measured = json.loads(result.stdout[result.stdout.index("{") :])["varied"]
    for key in (
        "distinct_replies",
        "sign_off_rate",
        "greeting_to_non_greeting_rate",
        "repetition_rate",
        "content_word_repeat_rate",
    ):
        assert measured[key] == pytest.approx(card[key], abs=0.011), key  # type: ignore[index]
    hits = measured["relevance"]["hits@1/10"]
    assert hits == pytest.approx(card["relevance"]["hits@1/10"], abs=0.021)  # type: ignore[index]


def test_make_chat_answers_each_line_and_keeps_six_turns(tmp_path: Path) -> None:
    from worker.store import DialogueStore

    url = f"sqlite:///{tmp_path / 'chat.sqlite3'}"
    env = {**os.environ, "DATABASE_URL": url, "MODEL_DIR": str(DEFAULT)}
    env.pop("MAKEFLAGS", None)
    done = subprocess.run(
        ["make", "--no-print-directory", "-s", "chat"],
        input="hello\nhow are you?\nwhat do you like to do?\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    replies = done.stdout.splitlines()
    assert len(replies) == 3 and all(r.strip() for r in replies), done.stdout
    store = DialogueStore(url)
    turns = store.recent_context(1, 100)
    store.engine.dispose()
    assert [speaker for speaker, _ in turns] == ["user", "bot"] * 3
    assert [text for speaker, text in turns if speaker == "bot"] == replies
