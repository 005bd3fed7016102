"""Resumable training state, stored without pickle: tensors in safetensors, the rest in JSON.

train_state/state.safetensors   model weights + Adam moments, by parameter index
train_state/progress.json       position (epoch, batch), counters, curve, history
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from s2s_core.checkpoint import CheckpointError
from s2s_core.model import Seq2Seq


@dataclass
class TrainProgress:
    epoch: int = 0  # completed epochs
    batch_in_epoch: int = 0  # batches of the current epoch already trained on
    step: int = 0  # optimizer steps so far
    train_tokens: int = 0
    lr_factor: float = 1.0  # product of plateau decays
    best_valid_loss: float = float("inf")
    bad_epochs: int = 0
    stopped: bool = False  # early stopping fired
    best: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per validation
    curve: list[list[float]] = field(default_factory=list)  # [step, mean train loss] points


def save_train_state(
    directory: Path, model: Seq2Seq, optimizer: torch.optim.Optimizer, progress: TrainProgress
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_embeddings:
        del tensors["model.decoder.out.weight"]  # the same storage as the decoder embedding
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        for key, value in state.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    groups = [{k: v for k, v in g.items()} for g in opt["param_groups"]]
    tmp = directory / "state.safetensors.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, directory / "state.safetensors")
    record = {"progress": asdict(progress), "param_groups": groups}
    (directory / "progress.json.tmp").write_text(json.dumps(record))
    os.replace(directory / "progress.json.tmp", directory / "progress.json")


def load_train_state(
    directory: Path, model: Seq2Seq, optimizer: torch.optim.Optimizer
) -> TrainProgress:
    if not (directory / "progress.json").is_file():
        raise CheckpointError(f"no resumable state in {directory}")
    record = json.loads((directory / "progress.json").read_text())
    tensors = load_file(str(directory / "state.safetensors"))
    weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(weights, strict=not model.config.tie_embeddings)
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": record["param_groups"]})
    return TrainProgress(**record["progress"])
