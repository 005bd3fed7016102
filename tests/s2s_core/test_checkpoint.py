"""Checkpoints round-trip exactly and every damaged folder fails with one clear line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from s2s_core import CheckpointError, Tokenizer, load_checkpoint, save_checkpoint
from tests.conftest import tiny_model


def logits_of(model: torch.nn.Module) -> torch.Tensor:
    src = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    tgt = torch.tensor([[1, 11, 12, 2], [1, 13, 2, 0]])
    with torch.no_grad():
        return model(src, tgt)


@pytest.mark.parametrize(
    "variant",
    [{}, {"attention": "luong", "bidirectional": True}, {"tie_embeddings": True, "cell": "gru"}],
)
def test_round_trip_gives_identical_logits(
    tmp_path: Path, tiny_tokenizer: Tokenizer, variant: dict[str, object]
) -> None:
    model = tiny_model(tiny_tokenizer.vocab_size, **variant)
    save_checkpoint(tmp_path, model, tiny_tokenizer, {"name": "t", "best": {"valid_ppl": 9.5}})
    loaded, tokenizer, meta = load_checkpoint(tmp_path)
    torch.testing.assert_close(logits_of(loaded), logits_of(model), rtol=0, atol=0)
    assert loaded.config == model.config and not loaded.training
    assert tokenizer.encode("hello there") == tiny_tokenizer.encode("hello there")
    assert meta["best"]["valid_ppl"] == 9.5
    card = (tmp_path / "MODEL_CARD.md").read_text()
    assert "# t" in card and "valid_ppl" in card


def test_fp16_checkpoint_loads_close(tmp_path: Path, tiny_tokenizer: Tokenizer) -> None:
    model = tiny_model(tiny_tokenizer.vocab_size, tie_embeddings=True)
    save_checkpoint(tmp_path, model, tiny_tokenizer, {}, dtype="float16")
    loaded, _, _ = load_checkpoint(tmp_path)
    torch.testing.assert_close(logits_of(loaded), logits_of(model), rtol=1e-2, atol=1e-2)


def _break(path: Path, how: str) -> None:
    if how == "missing":
        (path / "tokenizer.json").unlink()
    elif how == "truncated":
        data = (path / "model.safetensors").read_bytes()
        (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        (path / "model.safetensors").write_bytes(b"\x00" * 64)
    elif how == "config_mismatch":
        config = json.loads((path / "config.json").read_text())
        config["model"]["hidden_dim"] = 32
        (path / "config.json").write_text(json.dumps(config))
    elif how == "config_json":
        (path / "config.json").write_text("{not json")
    elif how == "config_unknown":
        config = json.loads((path / "config.json").read_text())
        config["model"]["heads"] = 8
        (path / "config.json").write_text(json.dumps(config))
    elif how == "format":
        (path / "config.json").write_text(json.dumps({"format": "pickle"}))
    elif how == "tokenizer":
        (path / "tokenizer.json").write_text('{"version": "nope"}')
    elif how == "vocab_mismatch":
        config = json.loads((path / "config.json").read_text())
        config["model"]["tgt_vocab_size"] += 1
        (path / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("missing", "missing tokenizer.json"),
        ("truncated", "unreadable model.safetensors"),
        ("garbage", "unreadable model.safetensors"),
        ("config_mismatch", "has shape"),
        ("config_json", "config.json is not valid JSON"),
        ("config_unknown", "unknown fields: heads"),
        ("format", "not an s2s-checkpoint config"),
        ("tokenizer", "unreadable tokenizer.json"),
        ("vocab_mismatch", "tokenizer has"),
    ],
)
def test_damaged_checkpoint_gives_one_clear_line(
    checkpoint_dir: Path, how: str, message: str
) -> None:
    _break(checkpoint_dir, how)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(checkpoint_dir)
    text = str(info.value)
    assert message in text and str(checkpoint_dir) in text and "\n" not in text


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a directory"):
        load_checkpoint(tmp_path / "nope")


def test_resave_over_existing_folder(checkpoint_dir: Path, tiny_tokenizer: Tokenizer) -> None:
    copy = checkpoint_dir.parent / "copy"
    shutil.copytree(checkpoint_dir, copy)
    model = tiny_model(tiny_tokenizer.vocab_size, attention="luong")
    save_checkpoint(copy, model, tiny_tokenizer, {"name": "again"})
    assert load_checkpoint(copy)[2]["name"] == "again"
    assert not list(copy.glob("*.tmp"))
