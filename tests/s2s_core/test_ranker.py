"""The ranker's training loss: in-batch negatives, hard negatives, duplicates masked."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from s2s_core.ranker import _in_batch_loss


class TableEncoder:
    """Embeds each text by a fixed table: what the loss does with the vectors is tested."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    def preprocess(self, texts: Sequence[str]) -> list[str]:
        return list(texts)

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return {"sentence_embedding": torch.tensor([self.table[t] for t in texts])}


TABLE = {
    "I broke my wrist": [1.0, 0.0, 0.0],
    "Ouch! How?": [0.9, 0.1, 0.0],
    "I love pizza": [0.0, 1.0, 0.0],
    "Me too!": [0.0, 0.9, 0.1],
    "Ouch, my wrist too": [0.9, 0.0, 0.1],  # a reply to a similar conversation
    "ouch!  how?": [0.9, 0.1, 0.0],  # the right reply, written again
}
BATCH = [("I broke my wrist", "Ouch! How?"), ("I love pizza", "Me too!")]


def test_a_hard_negative_makes_the_task_harder() -> None:
    encoder = TableEncoder(TABLE)
    easy = _in_batch_loss(encoder, BATCH, scale=20.0)
    hard = _in_batch_loss(encoder, BATCH, 20.0, ["Ouch, my wrist too"])
    assert hard > easy


def test_a_negative_equal_to_the_right_reply_is_not_counted_as_wrong() -> None:
    encoder = TableEncoder(TABLE)
    alone = _in_batch_loss(encoder, BATCH, 20.0)
    same = _in_batch_loss(encoder, BATCH, 20.0, ["ouch!  how?"])  # the same text, masked
    assert torch.isclose(alone, same)
