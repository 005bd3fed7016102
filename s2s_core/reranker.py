"""The hybrid pool's second stage: a cross-encoder that reads the conversation and a
candidate together and scores how well the candidate answers it.

The bi-encoder (``s2s_core.ranker``) compares two vectors made apart: it cannot see that
"No mountains?? :(" answers "I just got back from a hike in the mountains" badly, only that
both are about mountains. Blind readers labelled every candidate of 160 validation pools:
79% of the pools held a relevant reply, the bi-encoder's choice was relevant in 44%. A
cross-encoder (the conversation and the candidate in one input, every word attending to
every other) is the usual second stage for that gap (Nogueira and Cho 2019, "Passage
Re-ranking with BERT"; Humeau et al. 2020, "Poly-encoders"). It costs one encoder pass per
candidate, so it reorders only the bi-encoder's first ``top`` candidates.

It starts from the checkpoint's fine-tuned bi-encoder (its first ``layers`` transformer
layers, a fresh one-score head) and is trained on the corpus: each conversation's true
reply against replies retrieved for the same conversation (``fine_tune``). Off by default:
500 steps on two CPU cores taught it to reject random replies, not retrieved ones (it chose
worse than the bi-encoder); it needs the steps a GPU gives.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from s2s_core.ranker import step_rows, steps_done, take_step

log = logging.getLogger(__name__)

RERANKER_DIR = "reranker"  # a checkpoint's cross-encoder lives in this sub-folder
CONVERSATION_PIECES = 56  # word pieces of the conversation read: its end, the message
REPLY_PIECES = 40  # word pieces of the candidate read: its start
HEAD_LR_SCALE = 30.0  # the fresh score head learns at this multiple of the encoder's rate
HEAD_FILE = "score_head.safetensors"  # the one-score head beside the encoder's files


class RerankerUnavailable(RuntimeError):
    """transformers is missing or the folder is not a cross-encoder."""


def _transformers() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub at run time
    try:
        import transformers
    except ImportError:
        raise RerankerUnavailable(
            "the reranker needs transformers: .venv/bin/pip install -e '.[eval]'"
        ) from None
    transformers.logging.set_verbosity_error()  # dropping layers is meant, not worth a warning
    return transformers


class CrossEncoder(torch.nn.Module):
    """An encoder over ``[CLS] conversation [SEP] candidate [SEP]``, its states averaged
    over the real tokens, and one linear score. Mean pooling, not the ``[CLS]`` state:
    the bi-encoder it starts from was trained to mean-pool, its ``[CLS]`` state says
    nearly the same for every input (a ``[CLS]`` head stayed at chance for hundreds of
    steps; this one learns a toy task in forty)."""

    def __init__(self, encoder: Any) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = torch.nn.Linear(encoder.config.hidden_size, 1)

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        states = self.encoder(**inputs).last_hidden_state  # states: [pairs, pieces, hidden]
        mask = inputs["attention_mask"].unsqueeze(-1).to(states.dtype)
        return self.head((states * mask).sum(1) / mask.sum(1).clamp(min=1.0))[:, 0]


class Reranker:
    """Scores (conversation, candidate) pairs with a cross-encoder."""

    def __init__(self, model: CrossEncoder, tokenizer: Any, name: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> Reranker:
        """A trained cross-encoder folder (``fine_tune``'s output, a checkpoint's
        ``reranker/``)."""
        from safetensors.torch import load_file

        path = Path(folder)
        if not (path / HEAD_FILE).is_file():
            raise RerankerUnavailable(f"reranker {path}: not a cross-encoder (no {HEAD_FILE})")
        model, tokenizer = _encoder(path, layers=None, what="reranker")
        try:
            model.head.load_state_dict(load_file(str(path / HEAD_FILE)))
        except (OSError, RuntimeError) as exc:
            raise RerankerUnavailable(
                f"reranker {path}: unreadable score head ({type(exc).__name__})"
            ) from None
        return cls(model.float().to(device).eval(), tokenizer, path.name)

    @classmethod
    def from_bi_encoder(cls, folder: str | Path, layers: int, device: str = "cpu") -> Reranker:
        """A cross-encoder to train: the bi-encoder's word pieces and first ``layers``
        transformer layers, and a fresh head."""
        model, tokenizer = _encoder(Path(folder), layers, what="encoder folder")
        return cls(model.float().to(device), tokenizer, Path(folder).name)

    def inputs(self, pairs: Sequence[tuple[str, str]]) -> dict[str, torch.Tensor]:
        """``[CLS] conversation [SEP] candidate [SEP]``, the conversation cut from its
        start (its end is the message being answered), the candidate from its end."""
        tok = self.tokenizer
        convs = tok([c for c, _ in pairs], add_special_tokens=False)["input_ids"]
        cands = tok([r for _, r in pairs], add_special_tokens=False)["input_ids"]
        rows, types = [], []
        for conv, cand in zip(convs, cands, strict=True):
            first = [tok.cls_token_id, *conv[-CONVERSATION_PIECES:], tok.sep_token_id]
            second = [*cand[:REPLY_PIECES], tok.sep_token_id]
            rows.append(first + second)
            types.append([0] * len(first) + [1] * len(second))
        width = max(map(len, rows))
        device = next(self.model.parameters()).device
        ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
        token_types = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (row, kind) in enumerate(zip(rows, types, strict=True)):
            ids[i, : len(row)] = torch.tensor(row)
            token_types[i, : len(row)] = torch.tensor(kind)
            mask[i, : len(row)] = 1
        return {
            "input_ids": ids.to(device),
            "token_type_ids": token_types.to(device),
            "attention_mask": mask.to(device),
        }

    def logits(self, pairs: Sequence[tuple[str, str]]) -> torch.Tensor:
        """One score per pair, ``[len(pairs)]`` (with gradients when training)."""
        return self.model(**self.inputs(pairs))

    @torch.inference_mode()
    def scores(
        self, conversations: Sequence[str], candidates: Sequence[Sequence[str]], chunk: int = 64
    ) -> list[list[float]]:
        """The score of each conversation with each of its candidates, for a whole batch:
        the pairs sorted by length and scored in chunks of ``chunk`` (little padding)."""
        if len(conversations) != len(candidates):
            raise ValueError(f"{len(conversations)} conversations for {len(candidates)} lists")
        pairs = [(c, t) for c, texts in zip(conversations, candidates, strict=True) for t in texts]
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        flat = [0.0] * len(pairs)
        for start in range(0, len(order), chunk):
            part = order[start : start + chunk]
            for i, value in zip(part, self.logits([pairs[i] for i in part]).tolist(), strict=True):
                flat[i] = value
        out, at = [], 0
        for texts in candidates:
            out.append(flat[at : at + len(texts)])
            at += len(texts)
        return out

    def eval(self) -> Reranker:
        """Scoring mode (no dropout), as ``load`` gives it."""
        self.model.eval()
        return self

    def save(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        self.model.encoder.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))
        save_file(self.model.head.state_dict(), str(Path(folder) / HEAD_FILE))


def _encoder(path: Path, layers: int | None, what: str) -> tuple[CrossEncoder, Any]:
    """The encoder (its first ``layers`` layers, all when None) and word pieces in
    ``path``, under a fresh head."""
    transformers = _transformers()
    # No dropout: with it a short fine-tune stayed near chance on a toy task it learns
    # without it in forty steps; a few thousand steps over 100k pairs do not overfit.
    extra = (
        {
            "num_hidden_layers": layers,
            "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0,
        }
        if layers
        else {}
    )
    try:
        encoder = transformers.AutoModel.from_pretrained(str(path), **extra)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise RerankerUnavailable(f"{path}: not an {what} ({type(exc).__name__})") from None
    return CrossEncoder(encoder), tokenizer


def fine_tune(
    reranker: Reranker,
    pairs: Sequence[tuple[str, str]],
    negatives: Callable[[Sequence[int]], Sequence[Sequence[str]]],
    out: str | Path,
    *,
    steps: int,
    batch_size: int = 8,
    hard: int = 5,
    easy: int = 2,
    lr: float = 3e-5,
    seed: int = 0,
    save_every: int = 100,
    progress: bool = True,
) -> None:
    """Trains for response selection, listwise: each conversation's true reply must score
    above ``hard`` replies retrieved for the same conversation (``negatives``, what the
    reranker meets at reply time) and ``easy`` replies of other conversations (cross-entropy
    over the group's scores). Saved to ``out`` every ``save_every`` steps and at the end; a
    run started again on ``out`` goes on from its save (``progress.txt``)."""
    from tqdm import tqdm

    folder = Path(out)
    done = steps_done(folder)
    rng = random.Random(seed)
    order = list(range(len(pairs)))
    rng.shuffle(order)
    model = reranker.model
    model.train()
    # The score head starts from nothing: it learns at HEAD_LR_SCALE x the encoder's rate.
    optimizer = torch.optim.AdamW(
        [
            {"params": model.encoder.parameters(), "scale": 1.0},
            {"params": model.head.parameters(), "scale": HEAD_LR_SCALE},
        ],
        lr=lr,
    )
    if (folder / "optimizer.pt").is_file() and done:
        optimizer.load_state_dict(torch.load(folder / "optimizer.pt"))
    for step in tqdm(range(done, steps), initial=done, total=steps, disable=not progress):
        chosen = step_rows(order, step, batch_size)
        groups = []
        for row, found in zip(chosen, negatives(chosen), strict=True):
            conversation, reply = pairs[row]
            others = [pairs[r][1] for r in rng.sample(range(len(pairs)), easy + 1) if r != row]
            texts = [reply, *rng.sample(list(found), min(hard, len(found))), *others[:easy]]
            groups.append([(conversation, t) for t in texts])
        loss = _listwise_loss(reranker, groups)
        take_step(model, optimizer, loss, lr * min(1.0, (step + 1) / 50))  # 50 warm-up steps
        if (step + 1) % save_every == 0 or step + 1 == steps:
            _save(reranker, optimizer, folder, step + 1, loss.item())
    model.eval()


def _listwise_loss(reranker: Reranker, groups: list[list[tuple[str, str]]]) -> torch.Tensor:
    """Cross-entropy of each group's scores with its first pair (the true reply) right."""
    flat = [p for g in groups for p in g]
    scores = reranker.logits(flat)
    losses, at = [], 0
    for group in groups:
        part = scores[at : at + len(group)]
        losses.append(-torch.log_softmax(part, dim=0)[0])
        at += len(group)
    return torch.stack(losses).mean()


def _save(reranker: Reranker, optimizer: Any, folder: Path, step: int, loss: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    reranker.save(folder)
    torch.save(optimizer.state_dict(), folder / "optimizer.pt")
    (folder / "progress.txt").write_text(f"{step} steps, last loss {loss:.4f}\n")
    log.info("reranker saved at step %d (loss %.4f)", step, loss)
