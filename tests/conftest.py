"""Shared fixtures: a tiny tokenizer and model, and a saved checkpoint of them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from s2s_core import ModelConfig, Seq2Seq, Tokenizer, save_checkpoint

TEXTS = ["hello there", "how are you", "fine thanks", "what is up", "nothing much"] * 10


@pytest.fixture(scope="session")
def tiny_tokenizer() -> Tokenizer:
    return Tokenizer.train(TEXTS, vocab_size=300)


def tiny_model(vocab: int, **kw: object) -> Seq2Seq:
    torch.manual_seed(0)
    options = {"emb_dim": 16, "hidden_dim": 24, "n_layers": 2, "dropout": 0.0, **kw}
    return Seq2Seq(ModelConfig(vocab, vocab, **options)).eval()  # type: ignore[arg-type]


@pytest.fixture
def checkpoint_dir(tmp_path: Path, tiny_tokenizer: Tokenizer) -> Path:
    model = tiny_model(tiny_tokenizer.vocab_size, attention="luong")
    meta = {"data": {"task": "tsv", "path": "x.tsv", "max_src_len": 32}, "name": "tiny"}
    return save_checkpoint(tmp_path / "ckpt", model, tiny_tokenizer, meta)


def slow_checkpoint(tmp_path: Path, tokenizer: Tokenizer) -> Path:
    """A wide untrained model: decoding takes long enough to catch a worker mid-batch."""
    model = tiny_model(tokenizer.vocab_size, hidden_dim=256, emb_dim=64)
    return save_checkpoint(tmp_path / "slow", model, tokenizer, {"data": {"max_src_len": 64}})
