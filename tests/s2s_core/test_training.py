"""The trainer really trains: synthetic tasks learned, resume exact, schedules right."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch

from s2s_core import DecodeConfig, Hypothesis, Seq2Seq, Tokenizer, generate
from s2s_core.schedules import teacher_forcing_ratio, warmup_lr
from s2s_core.train import TrainConfig
from tests.utils.training import VOCAB, exact_match, train_synthetic


@pytest.mark.slow
def test_attention_model_learns_reverse(tmp_path: Path, tiny_tokenizer: Tokenizer) -> None:
    model = train_synthetic("reverse", tmp_path, tiny_tokenizer, steps=2500, attention="luong")
    assert exact_match(model, "reverse", 5, 15) >= 0.95


@pytest.mark.slow
def test_vanilla_model_learns_copy(tmp_path: Path, tiny_tokenizer: Tokenizer) -> None:
    model = train_synthetic(
        "copy", tmp_path, tiny_tokenizer, steps=2000, min_len=1, max_len=8, hidden_dim=128
    )
    assert model.config.attention is None
    assert exact_match(model, "copy", 1, 8) >= 0.9


def _ngrams(hyps: list[Hypothesis], n: int) -> int:
    return len({tuple(h.tokens[i : i + n]) for h in hyps for i in range(len(h.tokens) - n + 1)})


@pytest.mark.slow
def test_diverse_beams_are_more_diverse(tmp_path: Path, tiny_tokenizer: Tokenizer) -> None:
    """On a model of a task with many good answers (a Markov-chain walk), Hamming groups
    yield more distinct bigrams per n-best list and the sibling penalty more distinct
    openings (first two tokens) than plain beam search."""
    model = train_synthetic("markov", tmp_path, tiny_tokenizer, steps=400, attention="luong")
    sources = [[s] for s in range(4, VOCAB)]

    def measure(diversity: str, strength: float) -> tuple[float, float]:
        cfg = DecodeConfig(
            beam_size=8,
            n_best=8,
            max_len=10,
            diversity=diversity,
            diversity_strength=strength,
            num_groups=4 if diversity == "hamming" else None,
        )
        lists = generate(model, sources, cfg)
        bigrams = sum(_ngrams(hyps, 2) for hyps in lists) / len(lists)
        openings = sum(len({tuple(h.tokens[:2]) for h in hyps}) for hyps in lists) / len(lists)
        return bigrams, openings

    plain = measure("none", 0.0)
    assert measure("hamming", 1.0)[0] > plain[0] * 1.1
    assert measure("sibling", 2.0)[1] > plain[1] * 1.1


def test_training_run_writes_report_and_resumes_exactly(
    tmp_path: Path, tiny_tokenizer: Tokenizer
) -> None:
    straight = train_synthetic("sort", tmp_path / "a", tiny_tokenizer, steps=30, max_len=6)
    train_synthetic("sort", tmp_path / "b", tiny_tokenizer, steps=12, max_len=6)
    resumed = _resume(tmp_path / "b", tiny_tokenizer, steps=30)
    for (name, a), b in zip(
        straight.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=name)
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["training"]["steps"] == 30 and metrics["history"]
    assert metrics["training"]["epochs"] == pytest.approx(30 / 625, abs=1e-3)
    assert (tmp_path / "a" / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_time_budget_stops_mid_epoch_and_resume_goes_on(
    tmp_path: Path, tiny_tokenizer: Tokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """max_minutes ends the call after the step that crosses it; the epoch is not counted."""
    from s2s_core import train as train_module

    clock = {"now": 0.0}
    monkeypatch.setattr(train_module.time, "monotonic", lambda: clock["now"])
    real_step = train_module.Trainer.train_step

    def slow_step(self: train_module.Trainer, batch: train_module.Batch) -> float:
        clock["now"] += 30.0  # every step "takes" 30 s: a 2-minute budget holds 4
        return real_step(self, batch)

    monkeypatch.setattr(train_module.Trainer, "train_step", slow_step)
    train_synthetic("sort", tmp_path, tiny_tokenizer, steps=None, max_len=6, max_minutes=2.0)
    progress = json.loads((tmp_path / "train_state" / "progress.json").read_text())["progress"]
    assert progress["step"] == 4 and progress["epoch"] == 0 and progress["batch_in_epoch"] == 4
    assert len(progress["history"]) == 1  # the mid-epoch validation
    _resume(tmp_path, tiny_tokenizer, steps=6)
    progress = json.loads((tmp_path / "train_state" / "progress.json").read_text())["progress"]
    assert progress["step"] == 6 and progress["batch_in_epoch"] == 6


def _resume(out: Path, tokenizer: Tokenizer, steps: int) -> Seq2Seq:
    from s2s_core import ModelConfig
    from s2s_core.train import Trainer
    from tests.utils.training import synthetic_set

    model = Seq2Seq(ModelConfig(VOCAB, VOCAB, emb_dim=32, hidden_dim=64, n_layers=1, dropout=0.0))
    cfg = TrainConfig(epochs=100, batch_size=32, lr=3e-3, warmup_steps=50, max_steps=steps)
    trainer = Trainer(
        model,
        tokenizer,
        synthetic_set("sort", 20_000, 1, 5, 6),
        synthetic_set("sort", 200, 2, 5, 6),
        cfg,
        out,
        show_progress=False,
    )
    trainer.resume()
    trainer.run()
    return model


def test_teacher_forcing_schedules() -> None:
    assert teacher_forcing_ratio("constant", 10_000, 0.7, 0.0, 100) == 0.7
    assert teacher_forcing_ratio("linear", 0, 1.0, 0.2, 100) == 1.0
    assert teacher_forcing_ratio("linear", 50, 1.0, 0.2, 100) == pytest.approx(0.6)
    assert teacher_forcing_ratio("linear", 500, 1.0, 0.2, 100) == pytest.approx(0.2)
    sig = [teacher_forcing_ratio("inverse_sigmoid", s, 1.0, 0.0, 1000) for s in (0, 500, 5000)]
    assert sig[0] > 0.95 and sig[1] == pytest.approx(0.5, abs=1e-6) and sig[2] < 0.01
    assert all(a >= b for a, b in itertools.pairwise(sig))
    with pytest.raises(ValueError, match="schedule"):
        teacher_forcing_ratio("cosine", 0, 1.0, 0.0, 10)


def test_warmup_lr() -> None:
    assert warmup_lr(1e-3, 0, 100, 1.0) == pytest.approx(1e-5)
    assert warmup_lr(1e-3, 99, 100, 1.0) == pytest.approx(1e-3)
    assert warmup_lr(1e-3, 5000, 100, 0.25) == pytest.approx(2.5e-4)


@pytest.mark.parametrize(
    ("field", "value"),
    [("tf_schedule", "cosine"), ("tf_ratio", 1.5), ("epochs", 0), ("batch_size", 0), ("lr", 0.0)],
)
def test_bad_train_config(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})  # type: ignore[arg-type]
