"""``s2s train-ranker``: fine-tune the hybrid pool's ranker for response selection."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from s2s_cli.options import Device, fail, settings_or_exit


def train_ranker(
    out: Annotated[
        Path, typer.Option(help="Folder of the fine-tuned ranker (resumed if it holds one).")
    ],
    steps: Annotated[
        int, typer.Option(min=1, help="Optimizer steps in all (a resumed run goes on to this).")
    ] = 1000,
    batch_size: Annotated[
        int,
        typer.Option(min=2, help="Pairs per step; the other replies of a batch are its negatives."),
    ] = 64,
    lr: Annotated[
        float, typer.Option(min=0.0, help="Peak learning rate (AdamW, 100 warm-up steps).")
    ] = 2e-5,
    init: Annotated[
        Path | None,
        typer.Option(help="Start from this ranker folder (e.g. a checkpoint's ranker/)."),
    ] = None,
    hard_negatives: Annotated[
        bool,
        typer.Option(
            help="Add to each pair one corpus reply retrieved for its own conversation as a "
            "negative (the kind of candidate the ranker meets at reply time)."
        ),
    ] = True,
    threads: Annotated[int | None, typer.Option(min=1, help="torch CPU threads.")] = None,
    device: Device = "auto",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Fine-tune the hybrid pool's ranker for response selection.

    Trains all-MiniLM-L6-v2 (or --init) on the cleaned Chit-Chat training split: each
    conversation's last two turns against the reply people gave; the batch's other replies
    and, with --hard-negatives, replies retrieved for similar conversations as negatives.
    Saves it to --out every 100 steps; copy the folder into a checkpoint as ranker/ to rank
    its hybrid pool with it."""
    import torch

    from s2s_core.device import resolve_device
    from s2s_core.ranker import Ranker, RankerUnavailable, conversation_text, fine_tune
    from s2s_core.retrieval import CorpusIndex, RetrievalUnavailable, corpus_pairs
    from s2s_core.retrieval import hard_negatives as retrieved_negatives

    if threads:
        torch.set_num_threads(threads)
    if init is not None and not init.is_dir():
        fail(f"--init {init}: not a ranker folder")
    start = out if (out / "progress.txt").is_file() else init
    try:
        ranker = Ranker.load(start, str(resolve_device(device)))
    except RankerUnavailable as exc:
        fail(str(exc))
    examples = corpus_pairs()
    pairs = [(conversation_text([t.text for t in ex.context]), ex.response) for ex in examples]
    negatives = None
    if hard_negatives:
        try:
            index = CorpusIndex.cached(settings_or_exit().retrieval_dir)
        except (RetrievalUnavailable, OSError) as exc:
            fail(f"hard negatives need the corpus index: {exc}")
        negatives = retrieved_negatives(index, examples)
    typer.echo(f"{len(pairs):,} training pairs; saving to {out}", err=True)
    fine_tune(
        ranker,
        pairs,
        out,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        save_every=100,
        progress=progress,
        negatives=negatives,
    )
    typer.echo(str(out))


def train_reranker(
    out: Annotated[
        Path, typer.Option(help="Folder of the cross-encoder (resumed if it holds one).")
    ],
    init: Annotated[
        Path | None,
        typer.Option(help="The bi-encoder to start from (default: MODEL_DIR's ranker/)."),
    ] = None,
    layers: Annotated[
        int,
        typer.Option(min=1, max=12, help="Transformer layers kept from --init (speed vs skill)."),
    ] = 3,
    steps: Annotated[
        int, typer.Option(min=1, help="Optimizer steps in all (a resumed run goes on to this).")
    ] = 1500,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Conversations per step, each with its 8 candidates.")
    ] = 8,
    lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate (AdamW).")] = 3e-5,
    threads: Annotated[int | None, typer.Option(min=1, help="torch CPU threads.")] = None,
    device: Device = "auto",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train the hybrid pool's cross-encoder (its second stage).

    Starts from --init's first --layers layers with a fresh score head and trains on the
    cleaned Chit-Chat training split: each conversation's true reply must score above 5
    replies retrieved for the same conversation and 2 of other conversations. Saves to
    --out every 100 steps; copy the folder into a checkpoint as reranker/ and set
    "rerank" in its metrics.json "hybrid" to use it."""
    import torch

    from s2s_core.device import resolve_device
    from s2s_core.ranker import RANKER_DIR, conversation_text
    from s2s_core.reranker import Reranker, RerankerUnavailable, fine_tune
    from s2s_core.retrieval import CorpusIndex, RetrievalUnavailable, corpus_pairs, hard_negatives

    if threads:
        torch.set_num_threads(threads)
    settings = settings_or_exit()
    start = init or settings.model_dir / RANKER_DIR
    where = str(resolve_device(device))
    try:
        if (out / "progress.txt").is_file():
            reranker = Reranker.load(out, where)
        elif not start.is_dir():
            fail(f"--init {start}: not an encoder folder")
        else:
            reranker = Reranker.from_bi_encoder(start, layers, where)
        index = CorpusIndex.cached(settings.retrieval_dir)
    except (RerankerUnavailable, RetrievalUnavailable, OSError) as exc:
        fail(str(exc))
    examples = corpus_pairs()
    pairs = [(conversation_text([t.text for t in ex.context]), ex.response) for ex in examples]
    typer.echo(f"{len(pairs):,} training pairs; saving to {out}", err=True)
    fine_tune(
        reranker,
        pairs,
        hard_negatives(index, examples),
        out,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        progress=progress,
    )
    typer.echo(str(out))


def build_index(
    model: Annotated[
        Path | None,
        typer.Option(help="Checkpoint whose ranker ranks the corpus (default: MODEL_DIR)."),
    ] = None,
    device: Device = "auto",
) -> None:
    """Build the corpus index and reply vectors the hybrid style needs (once).

    The public corpus' search index and the checkpoint's ranker's vectors of every corpus
    reply (~10 minutes on two CPU cores), cached under var/retrieval/. Workers and `s2s
    chat` read them at start; without the vectors each retrieved reply is encoded as it is
    ranked (slower)."""
    from s2s_core.device import resolve_device
    from s2s_core.hybrid import build_vectors, cached_vectors
    from s2s_core.ranker import Ranker, RankerUnavailable
    from s2s_core.retrieval import CorpusIndex, RetrievalUnavailable

    settings = settings_or_exit()
    checkpoint = model or settings.model_dir
    if not checkpoint.is_dir():
        fail(f"checkpoint {checkpoint}: not a directory")
    try:
        index = CorpusIndex.cached(settings.retrieval_dir)
        ranker = Ranker.for_checkpoint(checkpoint, str(resolve_device(device)))
    except (RankerUnavailable, RetrievalUnavailable) as exc:
        fail(str(exc))
    if cached_vectors(index, ranker) is None:
        build_vectors(index, ranker)
    typer.echo(
        f"{len(index):,} corpus replies indexed and embedded by {ranker.name} in {index.folder}"
    )
