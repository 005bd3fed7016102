"""A training run from settings to trainer: data, tokenizer, model, resume and fine-tune.

Everything a run needs to be rebuilt lives in ``<out>/train_state/run.json`` (data, model
and training settings) next to the tokenizer, so ``--resume`` needs no other flags.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from s2s_core.checkpoint import CheckpointError, load_checkpoint
from s2s_core.cleaning import clean_examples
from s2s_core.corpora import (
    DIRECTIONS,
    SPLITS,
    SYNTHETIC_TASKS,
    Example,
    backward_example,
    chitchat_examples,
    persona_examples,
    read_jsonl,
    read_tsv,
    synthetic_examples,
)
from s2s_core.data import PairDataset
from s2s_core.device import resolve_device
from s2s_core.hybrid import cached_vectors
from s2s_core.model import ModelConfig, Seq2Seq, with_pointer
from s2s_core.ranker import Ranker
from s2s_core.refine import (
    Picker,
    is_refine,
    marker_id,
    ranker_pick,
    training_retrievals,
    with_marker,
)
from s2s_core.retrieval import CorpusIndex
from s2s_core.tokenizer import Tokenizer
from s2s_core.train import TrainConfig, Trainer

log = logging.getLogger(__name__)
TASKS = ("chitchat", "tsv", "jsonl", *SYNTHETIC_TASKS)
REFINE_PICKS = ("bm25", "ranker")
MIXED_VALID_PAIRS = 200  # fewest original-corpus pairs a fine-tune with --mix validates on


@dataclass
class DataConfig:
    task: str = "chitchat"  # chitchat | tsv | jsonl | copy | reverse | sort
    path: str | None = None  # the file for tsv / jsonl
    vocab_size: int = 8000  # BPE vocabulary, specials included
    context_turns: int = 3  # dialogue turns before the reply that form the source
    max_src_len: int = 64  # source tokens kept (the most recent)
    max_tgt_len: int = 32  # target tokens kept, <sos> and <eos> included
    split_seed: int = 13  # the fixed train/valid/test split
    limit: int | None = None  # use only the first N training pairs (quick runs)
    # Fine-tuning on a file (tsv / jsonl): this share of the training pairs comes from the
    # corpus named by mix_with, so the model does not forget what it first learned.
    mix: float = 0.0
    mix_with: str = "chitchat"
    # chitchat only: train and valid targets without closers and out-of-place greetings
    # (s2s_core.cleaning); test stays as the corpus has it, so numbers stay comparable.
    clean: bool = False
    persona: bool = False  # chitchat only: mix the bot's answers about itself into train
    # forward: context -> reply; backward: reply -> the message it answered (for MMI)
    direction: str = "forward"
    # Retrieve and refine (s2s_core.refine): the source ends with a retrieved corpus reply;
    # this share of training examples gets a near copy of the true reply there instead.
    # None: a plain model.
    refine_alpha: float | None = None
    # Which retrieved reply a refine model reads: BM25's first, or the best of BM25's first
    # 20 by the checkpoint's ranker (its corpus vectors built by `s2s models index`).
    refine_pick: str = "bm25"

    def __post_init__(self) -> None:
        if not 0.0 <= self.mix < 1.0:
            raise ValueError(f"DataConfig.mix must be in [0, 1), got {self.mix}")
        if self.mix and self.task not in ("tsv", "jsonl"):
            raise ValueError("--mix mixes a corpus into a data file: use --task tsv or jsonl")
        if self.mix and self.mix_with not in ("chitchat", *SYNTHETIC_TASKS):
            raise ValueError(
                f"DataConfig.mix_with must be chitchat or synthetic, got {self.mix_with!r}"
            )
        if self.direction not in DIRECTIONS:
            raise ValueError(f"DataConfig.direction must be one of {DIRECTIONS}")
        if (self.clean or self.persona) and self.task != "chitchat":
            raise ValueError("--clean and --persona apply to --task chitchat")
        if self.task not in TASKS:
            raise ValueError(f"DataConfig.task must be one of {TASKS}, got {self.task!r}")
        if self.task in ("tsv", "jsonl") and not self.path:
            raise ValueError(f"task {self.task} needs a data file (--data)")
        if self.refine_alpha is not None:
            if not 0.0 <= self.refine_alpha <= 1.0:
                raise ValueError(f"--refine-alpha must be in [0, 1], got {self.refine_alpha}")
            if self.task != "chitchat" or self.direction != "forward":
                raise ValueError("--refine-alpha trains a forward model on --task chitchat")
        if self.refine_pick not in REFINE_PICKS:
            raise ValueError(
                f"--refine-pick must be one of {REFINE_PICKS}, got {self.refine_pick!r}"
            )
        if self.max_src_len < 1 or self.max_tgt_len < 3 or self.context_turns < 1:
            raise ValueError("need max_src_len >= 1, max_tgt_len >= 3, context_turns >= 1")


def load_split(data: DataConfig, split: str) -> list[Example]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if data.task == "chitchat":
        examples = chitchat_examples(split, data.context_turns, data.split_seed)
        if data.clean and split != "test":
            examples, counts = clean_examples(examples)
            log.info("cleaned %s targets: %s", split, dict(counts))
        if data.persona and split == "train":
            examples = examples + persona_examples()
    elif data.task in SYNTHETIC_TASKS:
        size = {"train": 20_000, "valid": 1_000, "test": 1_000}[split]
        examples = synthetic_examples(data.task, size, seed=SPLITS.index(split) + data.split_seed)
    else:
        assert data.path is not None
        rows = read_tsv(data.path) if data.task == "tsv" else read_jsonl(data.path)
        examples = _split_rows(rows, split, data.split_seed)
    if split == "train":
        if data.limit:
            examples = examples[: data.limit]
        if data.mix:
            examples = examples + _mixed_in(data, len(examples), "train")
    elif split == "valid" and data.mix:
        # A fine-tune on a few dozen logged pairs validates on two or three of them: the
        # best checkpoint would be picked on noise. Its validation takes the same share of
        # the original corpus' validation pairs, at least MIXED_VALID_PAIRS.
        examples = examples + _mixed_in(data, len(examples), "valid", MIXED_VALID_PAIRS)
    if data.direction == "backward":
        examples = [backward_example(ex) for ex in examples]
    return examples


def _mixed_in(data: DataConfig, new_pairs: int, split: str, at_least: int = 0) -> list[Example]:
    """Original-corpus pairs of ``split`` making up ``data.mix`` of the whole, at least
    ``at_least`` of them (fixed seed)."""
    wanted = max(round(new_pairs * data.mix / (1.0 - data.mix)), at_least)
    source = DataConfig(task=data.mix_with, context_turns=data.context_turns)
    pool = load_split(source, split)
    chosen = random.Random(data.split_seed).sample(range(len(pool)), min(wanted, len(pool)))
    log.info("mixing %d %s %s pairs into %d new ones", len(chosen), data.mix_with, split, new_pairs)
    return [pool[i] for i in sorted(chosen)]


def _split_rows(rows: list[Example], split: str, seed: int) -> list[Example]:
    """90/5/5 by row with a fixed seed (files carry no conversation ids to split by)."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_eval = max(1, len(rows) // 20)
    chosen = {
        "valid": order[:n_eval],
        "test": order[n_eval : 2 * n_eval],
        "train": order[2 * n_eval :],
    }
    return [rows[i] for i in sorted(chosen[split])]


def train_tokenizer(examples: list[Example], vocab_size: int) -> Tokenizer:
    texts = {t.text for ex in examples for t in ex.context} | {ex.response for ex in examples}
    return Tokenizer.train(sorted(texts), vocab_size)


def datasets(
    data: DataConfig,
    tokenizer: Tokenizer,
    marker: int | None = None,
    retrieval_dir: Path | None = None,
    ranker_from: Path | None = None,
) -> tuple[PairDataset, PairDataset]:
    """The training and validation pairs; for a refine model (``marker``: its retrieved-reply
    marker) each source ends with the reply retrieved for it (the corpus index cached in
    ``retrieval_dir``)."""
    train, valid = load_split(data, "train"), load_split(data, "valid")
    if data.refine_alpha is None or marker is None:
        return (
            PairDataset.from_examples(train, tokenizer, data.max_src_len, data.max_tgt_len),
            PairDataset.from_examples(valid, tokenizer, data.max_src_len, data.max_tgt_len),
        )
    if retrieval_dir is None:
        raise ValueError("a refine model trains with retrieval: give the index's folder")
    index = CorpusIndex.cached(retrieval_dir, data.split_seed)
    pick = _ranker_pick(index, ranker_from) if data.refine_pick == "ranker" else None
    # Training retrieves from its own corpus (each pair and its dialogue left out) and reads
    # near copies; validation reads only what retrieval finds, as replies will.
    aligned = data.clean and not data.persona  # train is the index's first rows
    sets = []
    for split, examples, alpha in (("train", train, data.refine_alpha), ("valid", valid, 0.0)):
        own_rows = aligned and split == "train"
        texts, how = training_retrievals(examples, index, alpha, data.split_seed, own_rows, pick)
        log.info("%s: %s", split, how)
        sets.append(
            PairDataset.from_examples(
                examples, tokenizer, data.max_src_len, data.max_tgt_len, (texts, marker)
            )
        )
    return sets[0], sets[1]


def _ranker_pick(index: CorpusIndex, checkpoint: Path | None) -> Picker:
    """The ranker's choice among retrieved replies, with the checkpoint's ranker and the
    corpus vectors `s2s models index` built for it."""
    if checkpoint is None:
        raise ValueError("--refine-pick ranker needs a checkpoint's ranker: use --init-from")
    ranker = Ranker.for_checkpoint(checkpoint)
    vectors = cached_vectors(index, ranker)
    if vectors is None:
        raise ValueError(
            "--refine-pick ranker needs the corpus vectors: run `s2s models index --model "
            f"{checkpoint}` first"
        )
    return ranker_pick(ranker, vectors)


def new_run(
    out_dir: Path,
    data: DataConfig,
    model_options: dict[str, Any],
    train_cfg: TrainConfig,
    device: str = "auto",
    init_from: Path | None = None,
    command: str = "",
    tokenizer_from: Path | None = None,
    retrieval_dir: Path | None = None,
) -> Trainer:
    """Starts a run: a fresh model and tokenizer, or ``init_from``'s (fine-tuning).
    ``tokenizer_from`` gives a fresh model another checkpoint's tokenizer (a backward
    model scores its forward model's candidates token for token)."""
    torch.manual_seed(train_cfg.seed)
    if init_from is not None and tokenizer_from is not None:
        raise ValueError("--init-from brings its own tokenizer: drop --tokenizer-from")
    if init_from is not None:
        model, tokenizer, origin_meta = load_checkpoint(init_from)
        if data.refine_alpha is not None and not is_refine(origin_meta):
            model = with_marker(model)  # a plain model learns to refine
        if model_options.get("pointer") and not model.config.pointer:
            model = with_pointer(model)  # ... and to copy
        model.train()
    else:
        if tokenizer_from is not None:
            if not (tokenizer_from / "tokenizer.json").is_file():
                raise ValueError(f"--tokenizer-from {tokenizer_from}: no tokenizer.json there")
            tokenizer = Tokenizer.load(tokenizer_from / "tokenizer.json")
        else:
            tokenizer = train_tokenizer(load_split(data, "train"), data.vocab_size)
        vocab = tokenizer.vocab_size
        src_vocab = vocab + (data.refine_alpha is not None)  # the refine marker's row
        model = Seq2Seq(
            ModelConfig(src_vocab_size=src_vocab, tgt_vocab_size=vocab, **model_options)
        )
    state_dir = out_dir / "train_state"
    with _removed_on_failure([out_dir, state_dir, *(out_dir / n for n in CARRIED_FOLDERS)]):
        state_dir.mkdir(parents=True, exist_ok=True)
        tokenizer.save(state_dir / "tokenizer.json")
        if init_from is not None:
            carry_reply_pipeline(init_from, out_dir)
        origin = str(init_from) if init_from else None
        run = {
            "data": asdict(data),
            "model": model.config.to_dict(),
            "train": asdict(train_cfg),
            "device": device,
            "command": command,
            "init_from": origin,
        }
        (state_dir / "run.json").write_text(json.dumps(run, indent=2))
        return _trainer(
            out_dir, data, model, tokenizer, train_cfg, device, command, origin, retrieval_dir
        )


@contextmanager
def _removed_on_failure(paths: list[Path]) -> Iterator[None]:
    """Those of ``paths`` that do not exist yet are removed if the block fails: a run that
    fails before it starts (no pairs, a bad path) leaves nothing that a later --resume or
    --out would trip over, and nothing that was there before."""
    made = [p for p in paths if not p.exists()]
    try:
        yield
    except Exception:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)
        raise


# What a checkpoint's replies are made with besides its weights: the backward model (MMI),
# the hybrid pool's ranker, and their tuned settings in metrics.json.
CARRIED_FOLDERS = ("backward", "ranker")
CARRIED_SETTINGS = ("mmi", "hybrid", "decode")


def carry_reply_pipeline(origin: Path, out_dir: Path) -> None:
    """A fine-tune answers through the same stages as the checkpoint it started from: its
    backward model and ranker are copied beside the new weights. Copied, not retrained: the
    fine-tune keeps the origin's tokenizer, so the backward model still scores its tokens,
    and both were trained on far more pairs than a fine-tune on logged chats adds."""
    for name in CARRIED_FOLDERS:
        if (origin / name).is_dir():
            shutil.copytree(origin / name, out_dir / name, dirs_exist_ok=True)


def carried_settings(origin: Path) -> dict[str, Any]:
    """The origin's tuned reply settings (``CARRIED_SETTINGS`` of its metrics.json)."""
    try:
        meta = json.loads((origin / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {key: meta[key] for key in CARRIED_SETTINGS if key in meta}


def run_refines(out_dir: Path) -> bool:
    """Whether the resumable run in ``out_dir`` trains a refine model (it needs retrieval)."""
    try:
        run = json.loads((out_dir / "train_state" / "run.json").read_text())
    except (OSError, ValueError):
        return False
    return (run.get("data") or {}).get("refine_alpha") is not None


def resume_run(
    out_dir: Path, retrieval_dir: Path | None = None, **budget: int | float | None
) -> Trainer:
    """Continues ``out_dir``'s run where its last saved state left off.

    ``budget`` overrides the run's ``epochs``, ``max_steps`` or ``max_minutes`` (None keeps it).
    """
    unknown = set(budget) - {"epochs", "max_steps", "max_minutes"}
    if unknown:
        raise ValueError(f"resume can only change epochs, max_steps, max_minutes: {unknown}")
    state_dir = out_dir / "train_state"
    if not (state_dir / "run.json").is_file():
        raise CheckpointError(f"nothing to resume in {out_dir} (no train_state/run.json)")
    run = json.loads((state_dir / "run.json").read_text())
    data = DataConfig(**run["data"])
    overrides = {name: value for name, value in budget.items() if value is not None}
    train_cfg = TrainConfig(**{**run["train"], **overrides})
    tokenizer = Tokenizer.load(state_dir / "tokenizer.json")
    model = Seq2Seq(ModelConfig.from_dict(run["model"]))
    trainer = _trainer(
        out_dir,
        data,
        model,
        tokenizer,
        train_cfg,
        run["device"],
        run["command"],
        run.get("init_from"),
        retrieval_dir,
    )
    trainer.resume()
    return trainer


def _trainer(
    out_dir: Path,
    data: DataConfig,
    model: Seq2Seq,
    tokenizer: Tokenizer,
    train_cfg: TrainConfig,
    device: str,
    command: str,
    init_from: str | None = None,
    retrieval_dir: Path | None = None,
) -> Trainer:
    marker = marker_id(model.config) if data.refine_alpha is not None else None
    train_set, valid_set = datasets(data, tokenizer, marker, retrieval_dir, out_dir)
    if len(train_set) == 0 or len(valid_set) == 0:
        where = data.path or data.task
        raise ValueError(
            f"{where}: no {'training' if len(train_set) == 0 else 'validation'} pairs "
            "(an empty export? `s2s export` prints how many it wrote)"
        )
    log.info(
        "%d training pairs (%d target tokens), %d validation pairs, %s parameters",
        len(train_set),
        train_set.target_tokens(),
        len(valid_set),
        f"{model.num_parameters():,}",
    )
    meta = {
        **(carried_settings(Path(init_from)) if init_from else {}),
        "data": asdict(data),
        "command": command,
        "init_from": init_from,  # fine-tuned from this checkpoint
        "train_pairs": len(train_set),
    }
    return Trainer(
        model, tokenizer, train_set, valid_set, train_cfg, out_dir, meta, resolve_device(device)
    )
