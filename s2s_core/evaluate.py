"""Evaluation of a checkpoint on a split: perplexity, and per decoding strategy the replies
the product would send (MMI and the n-best choice included) with BLEU, corpus-level
distinct-1/2, mean length, distinct replies, sign-off / greeting / repetition / copy rates
and response-selection relevance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from tqdm import tqdm

from s2s_core.choice import Candidate, Choice, as_candidates, choose_among, user_turns_before
from s2s_core.consistency import earlier_answer
from s2s_core.corpora import Example
from s2s_core.data import PairDataset, encode_context
from s2s_core.decoding import DecodeConfig, generate, word_table
from s2s_core.hybrid import Hybrid, Seq2SeqScorer, rank_pools
from s2s_core.metrics import corpus_bleu, distinct_n, distinct_reply_share, perplexity
from s2s_core.mmi import Backward, maybe_rerank
from s2s_core.model import Seq2Seq
from s2s_core.quality import NONE, Stock, quality_rates
from s2s_core.recipe import DataConfig
from s2s_core.refine import COPY_SHARE, Refiner, copy_share
from s2s_core.relevance import response_selection
from s2s_core.tokenizer import Tokenizer
from s2s_core.train import evaluate_loss

DISTRACTORS = 9  # relevance: each reply against the replies to 9 other contexts


def evaluate_perplexity(
    model: Seq2Seq,
    tokenizer: Tokenizer,
    examples: Sequence[Example],
    data: DataConfig,
    refiner: Refiner | None = None,
) -> dict[str, float]:
    """Perplexity of the examples' replies; a refine model reads, after each conversation,
    the best corpus reply retrieved for it, as it does when it replies."""
    retrieved = None
    if refiner is not None:
        found = refiner.retrieve([[t.text for t in ex.context] for ex in examples])
        retrieved = ([texts[0] if texts else "" for texts in found], refiner.marker)
    dataset = PairDataset.from_examples(
        examples, tokenizer, data.max_src_len, data.max_tgt_len, retrieved
    )
    device = next(model.parameters()).device
    loss = evaluate_loss(model, dataset, 64, device)
    return {"loss": loss, "perplexity": perplexity(loss), "tokens": dataset.target_tokens()}


def reply_texts(
    model: Seq2Seq,
    tokenizer: Tokenizer,
    examples: Sequence[Example],
    data: DataConfig,
    cfg: DecodeConfig,
    backward: Backward | None = None,
    batch_size: int = 64,
    progress: bool = False,
    avoid_defects: bool = True,
    hybrid: Hybrid | None = None,
    refiner: Refiner | None = None,
    stock: Stock = NONE,
) -> tuple[list[Choice], list[list[str]]]:
    """The reply the product would send for each example's context: the n-best of ``cfg``
    (a refine model's: decoded on the replies ``refiner`` retrieves), reranked by MMI when
    ``backward`` is given and there is more than one candidate, with ``hybrid`` beside
    corpus replies under one ranker, then the worker's own choice (``s2s_core.choice``);
    and for each, the retrieved replies its decodes read (none for a plain model)."""
    # The last context_turns turns, as the worker reads them (a longer logged context would
    # give the model another source than the one it answered live).
    window = data.context_turns
    sources = [encode_context(tokenizer, ex.context[-window:], data.max_src_len) for ex in examples]
    messages = [tokenizer.encode(ex.context[-1].text) for ex in examples]
    choices: list[Choice] = []
    read: list[list[str]] = []
    words = word_table(tokenizer)
    for start in tqdm(range(0, len(sources), batch_size), disable=not progress, desc=cfg.strategy):
        batch = examples[start : start + batch_size]
        if refiner is None:
            decoded = generate(model, sources[start : start + batch_size], cfg, words)
            read += [[] for _ in batch]
        else:
            turns = [[t.text for t in ex.context[-window:]] for ex in batch]
            decoded, found = refiner.generate(
                model, sources[start : start + batch_size], turns, cfg, words
            )
            read += found
        nbest, _ = maybe_rerank(backward, messages[start : start + batch_size], decoded)
        pools = [
            as_candidates(hyps, tokenizer, data.max_tgt_len, trim=avoid_defects) for hyps in nbest
        ]
        if hybrid is not None:
            turns = [[t.text for t in ex.context[-window:]] for ex in batch]
            scorer = Seq2SeqScorer(model, tokenizer, backward, data.max_tgt_len)
            pools = rank_pools(hybrid, turns, pools, scorer, sources[start : start + batch_size])
        choices += [
            choose_reply(ex, pool, avoid_defects, stock)
            for ex, pool in zip(batch, pools, strict=True)
        ]
    return choices, read


def copy_rates(choices: Sequence[Choice], read: Sequence[Sequence[str]]) -> dict[str, Any]:
    """How much the written replies (source ``generated``) copy the retrieved replies their
    decodes read: the mean share of their words found in one of them, the share at or
    above ``COPY_SHARE`` (copies, word order aside) and the share that is one of them
    verbatim; and the share of all replies that are written and not copies."""
    shares = [
        (
            copy_share(c.text, texts),
            " ".join(c.text.lower().split()) in {" ".join(t.lower().split()) for t in texts},
        )
        for c, texts in zip(choices, read, strict=True)
        if c.source == "generated"
    ]
    written = len(shares)
    return {
        "written": written,
        "mean_word_overlap": sum(s for s, _ in shares) / max(written, 1),
        "copies": sum(s >= COPY_SHARE for s, _ in shares) / max(written, 1),
        "verbatim": sum(v for _, v in shares) / max(written, 1),
        "written_not_copied_share": sum(s < COPY_SHARE for s, _ in shares) / max(len(choices), 1),
    }


def choose_reply(
    example: Example,
    candidates: Sequence[Candidate],
    avoid_defects: bool = True,
    stock: Stock = NONE,
) -> Choice:
    """The worker's choice among ``candidates`` for a logged or corpus example: its last
    turn is the message, the turns before it the conversation the worker would have read;
    ``stock``: the checkpoint's own stock sentences."""
    before = [(t.speaker, t.text) for t in example.context[:-1]]
    return choose_among(
        candidates,
        example.context[-1].text,
        [t.text for t in example.context if t.speaker == "bot"],
        avoid_defects,
        user_before=user_turns_before(before),
        answered_before=earlier_answer(before, example.context[-1].text),
        stock=stock,
    )


def source_shares(choices: Sequence[Choice]) -> dict[str, float]:
    """The share of chosen replies by where they came from: ``generated``, ``retrieved``,
    ``persona`` (the bot's true answer about itself) or ``fallback``."""
    counts: dict[str, int] = {}
    for choice in choices:
        counts[choice.source] = counts.get(choice.source, 0) + 1
    return {k: round(v / max(len(choices), 1), 4) for k, v in sorted(counts.items())}


def text_metrics(
    examples: Sequence[Example],
    texts: Sequence[str],
    relevance: bool = True,
    stock: Stock = NONE,
) -> dict[str, Any]:
    """What a reader sees in ``texts`` as replies to ``examples``: BLEU against the
    references, corpus-level distinct-n, distinct replies, length, the quality rates of
    ``s2s_core.quality`` and, with ``relevance``, response-selection hits."""
    words = [t.split() for t in texts]
    result: dict[str, Any] = {
        "bleu": corpus_bleu(texts, [ex.response for ex in examples]),
        "distinct_1": distinct_n(words, 1),
        "distinct_2": distinct_n(words, 2),
        "distinct_scope": "corpus-level, whitespace words, pooled over all replies",
        "mean_len_words": sum(map(len, words)) / max(len(words), 1),
        "distinct_replies": distinct_reply_share(texts),
        **quality_rates(texts, [ex.context[-1].text for ex in examples], stock),
    }
    if relevance and len(examples) <= DISTRACTORS:
        result["relevance"] = None  # response selection needs a context per candidate
    elif relevance:
        contexts = [" ".join(t.text for t in ex.context) for ex in examples]
        result["relevance"] = response_selection(contexts, texts, DISTRACTORS)
    return result


def evaluate_generation(
    model: Seq2Seq,
    tokenizer: Tokenizer,
    examples: Sequence[Example],
    data: DataConfig,
    cfg: DecodeConfig,
    backward: Backward | None = None,
    progress: bool = False,
    relevance: bool = True,
    avoid_defects: bool = True,
    hybrid: Hybrid | None = None,
    refiner: Refiner | None = None,
    stock: Stock = NONE,
) -> dict[str, Any]:
    choices, read = reply_texts(
        model,
        tokenizer,
        examples,
        data,
        cfg,
        backward,
        progress=progress,
        avoid_defects=avoid_defects,
        hybrid=hybrid,
        refiner=refiner,
        stock=stock,
    )
    texts = [c.text for c in choices]
    metrics = text_metrics(examples, texts, relevance, stock)
    if hybrid is not None and metrics.get("relevance"):
        metrics["relevance"]["independent"] = False  # the same MiniLM family ranked them
    return {
        "decode": cfg.to_dict(),
        "avoid_defects": avoid_defects,
        **({"mmi": asdict(backward.cfg)} if backward and cfg.n_best > 1 else {}),
        **({"hybrid": hybrid.describe()} if hybrid else {}),
        "sources": source_shares(choices),
        **({"refine": copy_rates(choices, read)} if refiner else {}),
        **metrics,
        "samples": [
            {
                "context": [t.text for t in ex.context],
                "reference": ex.response,
                "reply": choice.text,
                "source": choice.source,
                **({"read": texts} if refiner else {}),
            }
            for ex, choice, texts in zip(examples, choices, read, strict=True)
        ],
    }
