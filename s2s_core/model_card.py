"""MODEL_CARD.md written from the model config and the checkpoint's metadata.

Besides what training records, ``metrics.json`` may hold (``s2s models card`` adds them):

    name, description       the card's title and first paragraph
    evaluations             ``s2s eval`` results: perplexity, per-decoding numbers and samples
    baselines               other checkpoints' summaries, e.g. the textbook model, each with
                            name, parameters, command, training and evaluations of its own
    notes                   paragraphs for people: hardware and time, why these defaults
"""

from __future__ import annotations

from typing import Any

from s2s_core.model import ModelConfig

SAMPLES = 12  # sample exchanges shown per evaluation: the split's first ones, not chosen


def _table(rows: dict[str, Any]) -> list[str]:
    lines = ["| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows.items()]
    return lines


def _cell(text: Any) -> str:
    """Table-safe text: no pipes or line breaks to break the row."""
    return str(text).replace("|", "\\|").replace("\n", " ").strip() or "∅"


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
        "pointer (copies source tokens)": config.pointer,
        "vocabulary": f"{config.src_vocab_size} (source) / {config.tgt_vocab_size} (target)",
    }
    lines += ["## Architecture", "", *_table(arch), ""]
    if meta.get("data"):
        lines += ["## Data", "", *_table(meta["data"]), ""]
    lines += _training(meta, "##")
    if meta.get("loss_curve"):
        lines += ["## Loss curve", "", f"![loss curve]({meta['loss_curve']})", ""]
    for evaluation in meta.get("evaluations", []):
        lines += _evaluation(evaluation, "##")
    for baseline in meta.get("baselines", []):
        lines += [f"## Baseline: {baseline.get('name', 'model')}", ""]
        if baseline.get("description"):
            lines += [str(baseline["description"]), ""]
        if baseline.get("parameters"):
            lines += [f"Parameters: {baseline['parameters']:,}.", ""]
        lines += _training(baseline, "###")
        for evaluation in baseline.get("evaluations", []):
            lines += _evaluation(evaluation, "###")
    lines += _stock(meta.get("stock_sentences"))
    if meta.get("notes"):
        lines += ["## Notes", ""]
        for paragraph in meta["notes"]:
            lines += [str(paragraph), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _stock(found: dict[str, Any] | None) -> list[str]:
    """The checkpoint's stock sentences (``s2s models stock``) and how they were found."""
    if not found or not found.get("sentences"):
        return []
    lines = [
        "## Stock sentences",
        "",
        f"Found by `s2s models stock` in the n-best for {found.get('conversations', '?')} "
        f"validation conversations against {found.get('people_replies', 0):,} people's "
        f"training replies ({found.get('rule', '')}): the reply choice treats a candidate "
        "holding one as it treats a hand-written stock sentence.",
        "",
        "| sentence | n-best lists | people's replies |",
        "|---|---|---|",
    ]
    counts = zip(found.get("in_nbest_lists", []), found.get("in_people_replies", []), strict=False)
    for sentence, (lists, people) in zip(found["sentences"], counts, strict=False):
        lines.append(f"| {_cell(sentence)} | {lists} | {people} |")
    return [*lines, ""]


def _training(meta: dict[str, Any], level: str) -> list[str]:
    lines: list[str] = []
    if meta.get("command"):
        lines += [f"{level} Training command", "", "```", str(meta["command"]), "```", ""]
    if meta.get("training"):
        lines += [f"{level} Training", "", *_table(meta["training"]), ""]
    if meta.get("best"):
        lines += [f"{level} Best validation", "", *_table(meta["best"]), ""]
    return lines


def _evaluation(result: dict[str, Any], level: str) -> list[str]:
    """One ``s2s eval`` result: perplexity, a row per decoding, then the first samples."""
    split = result.get("split", "?")
    what = f"{split} split" if split in ("train", "valid", "test") else f"messages of {split}"
    lines = [f"{level} Evaluation: {what}, {result.get('pairs')} pairs", ""]
    if "perplexity" in result:
        ppl = result["perplexity"]
        lines += [
            f"Perplexity **{ppl['perplexity']:.2f}** (mean token loss {ppl['loss']:.4f} "
            f"over {ppl['tokens']:,} reference tokens).",
            "",
        ]
    if "perplexity_clean_targets" in result:
        clean = result["perplexity_clean_targets"]
        lines += [
            f"On the same contexts with cleaned targets ({clean['pairs']} pairs, closers and "
            f"out-of-place greetings cut, s2s_core/cleaning.py): perplexity "
            f"**{clean['perplexity']:.2f}**.",
            "",
        ]
    decodings = {k: v for k, v in result.items() if isinstance(v, dict) and "distinct_1" in v}
    if not decodings:
        return lines
    lines += _decoding_table(decodings)
    settings = {name: r["decode"] for name, r in decodings.items() if "decode" in r}
    if settings:
        lines += ["Settings:", ""]
        lines += [f"- {name}: `{_compact(cfg)}`" for name, cfg in settings.items()]
        mmi = {name: r["mmi"] for name, r in decodings.items() if "mmi" in r}
        lines += [f"- {name} reranked by MMI: `{_compact(cfg)}`" for name, cfg in mmi.items()]
        lines.append("")
    lines += _samples({k: v for k, v in decodings.items() if v.get("samples")})
    return lines


def _decoding_table(decodings: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| decoding | BLEU | distinct-1 | distinct-2 | distinct replies | mean words "
        "| sign-off | greeting to non-greeting | cheer at bad news | repetition "
        "| content word repeated | stock sentence | copy rate | relevance hits@1/10 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in decodings.items():
        bleu = f"{r['bleu']:.2f}" if "bleu" in r else "–"
        hits = (r.get("relevance") or {}).get("hits@1/10")
        lines.append(
            f"| {name} | {bleu} | {r['distinct_1']:.3f} | {r['distinct_2']:.3f} "
            f"| {r['distinct_replies']:.1%} | {r['mean_len_words']:.1f} "
            + (
                f"| {r['sign_off_rate']:.1%} | {r['greeting_to_non_greeting_rate']:.1%} "
                f"| {_share(r.get('cheer_to_bad_news_rate'))} "
                f"| {r['repetition_rate']:.1%} | {r['content_word_repeat_rate']:.1%} "
                f"| {_share(r.get('stock_phrase_rate'))} | {r['copy_rate']:.1%} "
                if "sign_off_rate" in r
                else "| – | – | – | – | – | – | – "
            )
            + (f"| {hits:.1%} |" if hits is not None else "| – |")
        )
    return [
        *lines,
        "",
        "BLEU: sacreBLEU against the single reference reply. distinct-n: unique n-grams over "
        "all n-grams of all replies (whitespace words), corpus level. Distinct replies: "
        "distinct reply strings ÷ replies. Sign-off: replies that say goodbye to a message "
        "that did not; greeting to non-greeting: replies that greet a message that was no "
        'greeting; cheer at bad news: a cheering reply ("that\'s so cool", "awesome") to '
        'bad news ("passed away", "lost my job", "lonely"); '
        "repetition: a word twice in a row or a non-function word three times; "
        "content word repeated: a non-function word twice; stock sentence: one of the "
        "sentences the model falls back on whatever was said (\u201cI don't think I've ever "
        "heard of that one\u201d); copy rate: mean share of the "
        "reply's words found in the message (s2s_core/quality.py). Relevance: response "
        "selection, the reply ranked against the replies to 9 other contexts by "
        "all-MiniLM-L6-v2 cosine to the context; 10% is chance (s2s_core/relevance.py). "
        "references: the human replies of the corpus, measured the same way.",
        "",
    ]


def _compact(cfg: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in cfg.items() if v not in (None, False))


def _samples(decodings: dict[str, dict[str, Any]]) -> list[str]:
    first = next(iter(decodings.values())).get("samples", [])[:SAMPLES]
    if not first:
        return []
    lines = [f"Samples: the first {len(first)} contexts of the split, every decoding.", ""]
    for i, sample in enumerate(first):
        context = " ⏎ ".join(_cell(turn) for turn in sample["context"])
        lines += [f"**{i + 1}.** {context}", "", f"- reference: {_cell(sample['reference'])}"]
        for name, r in decodings.items():
            replies = r.get("samples", [])
            if i < len(replies):
                lines.append(f"- {name}: {_cell(replies[i]['reply'])}")
        lines.append("")
    return lines


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"
