"""Checkpoints: one folder a model, readable without unpickling anything.

    model.safetensors  weights (fp32, or fp16/bf16 for shipping; tied weights stored once)
    config.json        {"format": "s2s-checkpoint", "version": 1, "model": ModelConfig}
    tokenizer.json     the tokenizer, shared by source and target
    metrics.json       free-form metadata: training settings, history, evaluation numbers
    MODEL_CARD.md      the same, written for people

Loading rebuilds the model from config.json and checks every tensor name and shape against
it, so a damaged or mismatched folder fails with one ``CheckpointError`` line.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from s2s_core.device import resolve_device
from s2s_core.model import ModelConfig, Seq2Seq
from s2s_core.model_card import render_model_card
from s2s_core.quality import learned_stock
from s2s_core.tokenizer import Tokenizer

FORMAT, VERSION = "s2s-checkpoint", 1
FILES = ("model.safetensors", "config.json", "tokenizer.json", "metrics.json")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be loaded; the message names the folder and the fault."""


def save_checkpoint(
    directory: str | Path,
    model: Seq2Seq,
    tokenizer: Tokenizer,
    meta: dict[str, Any],
    dtype: str = "float32",
) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {
        name: t.detach().to("cpu", DTYPES[dtype]).contiguous()
        for name, t in model.state_dict().items()
        if not _is_tied_copy(model, name)
    }
    _atomic(directory / "model.safetensors", lambda p: save_file(tensors, p, {"dtype": dtype}))
    config = {"format": FORMAT, "version": VERSION, "model": model.config.to_dict()}
    _atomic(directory / "config.json", lambda p: Path(p).write_text(json.dumps(config, indent=2)))
    _atomic(directory / "tokenizer.json", tokenizer.save)
    save_card(directory, model, meta)
    return directory


def save_card(directory: str | Path, model: Seq2Seq, meta: dict[str, Any]) -> None:
    """Writes metrics.json and the MODEL_CARD.md rendered from it; the weights stay."""
    directory = Path(directory)
    text = json.dumps(meta, indent=2, ensure_ascii=False)  # in the order it was written
    _atomic(directory / "metrics.json", lambda p: Path(p).write_text(text, encoding="utf-8"))
    card = render_model_card(model.config, model.num_parameters(), meta)
    _atomic(directory / "MODEL_CARD.md", lambda p: Path(p).write_text(card, encoding="utf-8"))


def _is_tied_copy(model: Seq2Seq, name: str) -> bool:
    return model.config.tie_embeddings and name == "decoder.out.weight"


def _atomic(path: Path, write: Any) -> None:
    """Writes beside the target and renames, so a crash never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    write(str(tmp))
    os.replace(tmp, path)


def weights_digest(directory: str | Path) -> str:
    """A checkpoint's identity (the model registry's id): the sha256 of its weights file,
    and of its backward model's (``backward/``, MMI reranking) when it carries one, since
    that changes the replies too."""
    digest = hashlib.sha256()
    files = [Path(directory) / "model.safetensors"]
    backward = Path(directory) / "backward" / "model.safetensors"
    files += [backward] if backward.is_file() else []
    for path in files:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def load_checkpoint(
    directory: str | Path, device: str | torch.device = "cpu"
) -> tuple[Seq2Seq, Tokenizer, dict[str, Any]]:
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint {directory}: not a directory")
    for name in FILES:
        if not (directory / name).is_file():
            raise CheckpointError(f"checkpoint {directory}: missing {name}")
    config = _read_config(directory)
    tokenizer = _read_tokenizer(directory)
    if tokenizer.vocab_size != config.tgt_vocab_size:
        raise CheckpointError(
            f"checkpoint {directory}: tokenizer has {tokenizer.vocab_size} tokens "
            f"but the model expects {config.tgt_vocab_size}"
        )
    model = Seq2Seq(config)
    _load_weights(directory, model)
    meta = _read_json(directory / "metrics.json", directory)
    try:
        learned_stock(meta)
    except (ValueError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint {directory}: {exc}") from None
    return model.to(resolve_device(str(device))).eval(), tokenizer, meta


def _read_json(path: Path, directory: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"checkpoint {directory}: {path.name} is not valid JSON ({exc})"
        ) from None


def _read_config(directory: Path) -> ModelConfig:
    data = _read_json(directory / "config.json", directory)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {directory}: config.json is not an {FORMAT} config")
    if data.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {directory}: unsupported version {data.get('version')}")
    try:
        return ModelConfig.from_dict(data["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {directory}: bad model config ({exc})") from None


def _read_tokenizer(directory: Path) -> Tokenizer:
    try:
        return Tokenizer.load(directory / "tokenizer.json")
    except Exception as exc:  # the Rust backend raises its own exception type
        raise CheckpointError(
            f"checkpoint {directory}: unreadable tokenizer.json ({exc})"
        ) from None


def _load_weights(directory: Path, model: Seq2Seq) -> None:
    try:
        tensors = load_file(str(directory / "model.safetensors"))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(
            f"checkpoint {directory}: unreadable model.safetensors ({exc})"
        ) from None
    expected = {k: v for k, v in model.state_dict().items() if not _is_tied_copy(model, k)}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {directory}: weights do not match config.json "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"checkpoint {directory}: {name} has shape {tuple(tensor.shape)}, "
                f"config.json implies {tuple(expected[name].shape)}"
            )
    model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=False)
