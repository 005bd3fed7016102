"""The textbook model size every benchmark compares on, and a small one for smoke tests."""

from __future__ import annotations

from s2s_core.model import ModelConfig, Seq2Seq

FULL = {"src_vocab": 5000, "tgt_vocab": 4000, "emb": 256, "hidden": 512, "layers": 2}
QUICK = {"src_vocab": 400, "tgt_vocab": 300, "emb": 16, "hidden": 32, "layers": 2}


def sized_model(size: dict[str, int], dropout: float, attention: str | None = None) -> Seq2Seq:
    """Our model at ``size``; vanilla (no attention: the textbook architecture) unless asked."""
    return Seq2Seq(
        ModelConfig(
            size["src_vocab"],
            size["tgt_vocab"],
            size["emb"],
            size["hidden"],
            size["layers"],
            dropout=dropout,
            attention=attention,
        )
    )
