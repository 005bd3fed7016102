"""MODEL_CARD.md written from the model config and the checkpoint's metadata."""

from __future__ import annotations

import json
from typing import Any

from s2s_core.model import ModelConfig


def _table(rows: dict[str, Any]) -> list[str]:
    lines = ["| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows.items()]
    return lines


def render_model_card(config: ModelConfig, n_params: int, meta: dict[str, Any]) -> str:
    lines = [f"# {meta.get('name', 'Seq2Seq model')}", ""]
    if meta.get("description"):
        lines += [str(meta["description"]), ""]
    arch = {
        "parameters": f"{n_params:,}",
        "cell": config.cell,
        "layers": config.n_layers,
        "embedding / hidden": f"{config.emb_dim} / {config.hidden_dim}",
        "bidirectional encoder": config.bidirectional,
        "attention": config.attention or "none (context vector = final encoder state)",
        "tied embeddings": config.tie_embeddings,
        "vocabulary": f"{config.src_vocab_size} (source) / {config.tgt_vocab_size} (target)",
    }
    lines += ["## Architecture", "", *_table(arch), ""]
    if meta.get("data"):
        lines += ["## Data", "", *_table(meta["data"]), ""]
    if meta.get("command"):
        lines += ["## Training command", "", "```", str(meta["command"]), "```", ""]
    if meta.get("training"):
        lines += ["## Training", "", *_table(meta["training"]), ""]
    if meta.get("best"):
        lines += ["## Best validation", "", *_table(meta["best"]), ""]
    if meta.get("loss_curve"):
        lines += ["## Loss curve", "", f"![loss curve]({meta['loss_curve']})", ""]
    if meta.get("evaluation"):
        lines += ["## Evaluation", "", "```json", json.dumps(meta["evaluation"], indent=2), "```"]
    return "\n".join(lines) + "\n"
