"""Pictures people would rather look at than read: the loss curve."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt


def plot_loss_curve(
    curve: Sequence[Sequence[float]], history: Sequence[dict[str, Any]], path: Path
) -> None:
    """Training loss (per-window means) and validation loss against optimizer steps."""
    fig, ax = plt.subplots(figsize=(7, 4))
    if curve:
        ax.plot([c[0] for c in curve], [c[1] for c in curve], label="train (per 50 steps)", lw=1)
    if history:
        ax.plot(
            [h["step"] for h in history],
            [h["valid_loss"] for h in history],
            "o-",
            label="validation",
        )
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats / token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
