"""Replay logged dialogues through a candidate and the current model, side by side.

The inputs are real: the last N logged user turns with the context they had, the exported
human-target pairs (what people actually said), and the stored replies people rated. Both
models answer with the production decoding settings of the default reply style. The report
(Markdown and a self-contained HTML page, with a length-distribution plot) is what a person
reads before promoting a candidate; ``verdict`` is what the retraining gate reads.
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s2s_contract.settings import get_settings
from s2s_contract.styles import CORPUS_STYLES, DEFAULT_STYLE
from s2s_core import load_checkpoint
from s2s_core.checkpoint import weights_digest
from s2s_core.corpora import Example, parse_jsonl_record
from s2s_core.evaluate import evaluate_perplexity, reply_texts, source_shares
from s2s_core.hybrid import load_hybrid
from s2s_core.metrics import distinct_n
from s2s_core.mmi import load_backward
from s2s_core.quality import learned_stock, quality_rates
from s2s_core.recipe import DataConfig
from s2s_core.refine import load_refiner
from worker.replies import decode_config
from worker.service import RECENT_TURNS
from worker.store import DialogueStore
from worker.store.export import (
    EARLIEST,
    LATEST,
    ExportFilter,
    logged_exchanges,
    training_pairs,
)

STYLE = DEFAULT_STYLE  # the product's default reply style
# Shares the gate holds a candidate to (s2s_core.quality: the same detectors as s2s eval).
GATED_RATES = ("sign_off_rate", "greeting_to_non_greeting_rate", "repetition_rate")
SAMPLES = 20


@dataclass
class ReplayInputs:
    logged: list[Example]  # user turns with their original context (response: the logged reply)
    human: list[Example]  # what people said after the bot spoke
    liked: list[Example]  # stored replies rated 👍
    disliked: list[Example]  # stored replies rated 👎
    part: str = "all"  # which conversations: all | held-out | fine-tune (export.in_part)
    # How each logged reply was made: (model version, decoding settings), None where unknown.
    logged_by: list[tuple[str | None, dict[str, Any] | None]] = field(default_factory=list)


@dataclass
class ModelReplay:
    name: str
    path: str
    version: str
    replies: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


def load_inputs(
    store: DialogueStore, limit: int, part: str = "held-out", human_limit: int = 2000
) -> ReplayInputs:
    """The last ``limit`` logged exchanges, up to ``human_limit`` human pairs, rated replies,
    of the conversations in ``part`` (held-out by default: what fine-tuning never saw)."""
    logged: deque[Example] = deque(maxlen=limit)
    made_by: deque[tuple[str | None, dict[str, Any] | None]] = deque(maxlen=limit)
    liked, disliked = [], []
    turns = RECENT_TURNS + 1
    for record in logged_exchanges(store, EARLIEST, LATEST, context_turns=turns, part=part):
        example = parse_jsonl_record(record, "store")
        logged.append(example)
        made_by.append((record["meta"]["model_version"], record["meta"]["decoding"]))
        vote = record["meta"]["feedback"]
        if vote > 0:
            liked.append(example)
        elif vote < 0:
            disliked.append(example)
    pairs = training_pairs(store, ExportFilter(targets="human", context_turns=6, part=part))
    human = deque(
        (parse_jsonl_record(record, "export") for _, record in pairs if record is not None),
        maxlen=human_limit,
    )
    return ReplayInputs(list(logged), list(human), liked, disliked, part, list(made_by))


def replay_model(name: str, path: Path, inputs: ReplayInputs, progress: bool = True) -> ModelReplay:
    model, tokenizer, meta = load_checkpoint(path)
    data = DataConfig(**meta.get("data", {}))
    cfg = decode_config(STYLE, meta.get("decode"))
    backward = load_backward(path, tokenizer, meta)
    hybrid = (
        load_hybrid(path, meta, get_settings().retrieval_dir) if STYLE in CORPUS_STYLES else None
    )
    refiner = load_refiner(
        meta,
        model.config,
        tokenizer,
        get_settings().retrieval_dir,
        (hybrid.ranker, hybrid.vectors) if hybrid else None,
        path,
    )
    # As the worker read each turn: the RECENT_TURNS turns before the message (the n-best
    # choice looks at those), the message last (the source is the last context_turns).
    logged = [Example(ex.context[-(RECENT_TURNS + 1) :], ex.response) for ex in inputs.logged]
    stock = learned_stock(meta)
    start = time.perf_counter()
    choices, _ = reply_texts(
        model,
        tokenizer,
        logged,
        data,
        cfg,
        backward,
        progress=progress,
        hybrid=hybrid,
        refiner=refiner,
        stock=stock,
    )
    replies = [c.text for c in choices]
    seconds = time.perf_counter() - start
    words = [r.split() for r in replies]
    result = ModelReplay(name, str(path), weights_digest(path), replies)
    messages = [ex.context[-1].text if ex.context else "" for ex in inputs.logged]
    rates = quality_rates(replies, messages, stock)
    result.metrics = {
        "distinct_1": distinct_n(words, 1),
        "distinct_2": distinct_n(words, 2),
        "mean_len_words": sum(map(len, words)) / max(len(words), 1),
        **{key: rates[key] for key in GATED_RATES},
        "decode_ms_per_reply": 1000 * seconds / max(len(replies), 1),
        "sources": source_shares(choices),
        "stages": pipeline_stages(backward is not None, hybrid is not None, refiner is not None),
    }
    settings = cfg.to_dict()
    own = [
        reply == ex.response
        for reply, ex, (version, decoding) in zip(
            replies, inputs.logged, inputs.logged_by, strict=True
        )
        if version == result.version
        and decoding is not None
        and {key: decoding.get(key) for key in settings} == settings
        and ("hybrid" in decoding) == (hybrid is not None)
    ]
    if own:  # its own live replies (same weights, same settings): replay must match them
        result.metrics["reproduces_live"] = sum(own) / len(own)
        result.metrics["own_live_replies"] = len(own)
    for key, examples in (
        ("human", inputs.human),
        ("liked", inputs.liked),
        ("disliked", inputs.disliked),
    ):
        if examples:
            ppl = evaluate_perplexity(model, tokenizer, examples, data, refiner)
            if key == "human":
                result.metrics["human_perplexity"] = ppl["perplexity"]
            else:
                result.metrics[f"{key}_loglik_per_token"] = -ppl["loss"]
    return result


@dataclass(frozen=True)
class Gate:
    """Promote only a candidate at least as good as the baseline on what users feel,
    measured on held-out conversations: perplexity on what people said, diversity, and no
    more goodbyes, misplaced greetings or degenerate repetition than the baseline."""

    max_perplexity_ratio: float = 1.0  # candidate human perplexity ≤ baseline's × this
    min_distinct_2_ratio: float = 1.0  # candidate distinct-2 ≥ baseline's × this
    max_rate_increase: float = 0.02  # each GATED_RATES share ≤ baseline's + this

    def verdict(self, candidate: ModelReplay, baseline: ModelReplay) -> tuple[bool, list[str]]:
        reasons, c, b = [], candidate.metrics, baseline.metrics
        if c.get("stages") != b.get("stages"):
            # Not the same product: a candidate without MMI (a fine-tune that lost backward/)
            # decodes 3x faster and reads differently, whatever its weights are worth.
            return False, [
                f"not comparable: the candidate runs {c.get('stages', '?')}, the baseline "
                f"{b.get('stages', '?')} (fine-tune from the baseline with --init-from, which "
                "carries backward/ and ranker/, or copy them into the candidate)"
            ]
        if "human_perplexity" in c and "human_perplexity" in b:
            limit = b["human_perplexity"] * self.max_perplexity_ratio
            passed = c["human_perplexity"] <= limit
            reasons.append(
                f"human-pair perplexity {c['human_perplexity']:.2f} "
                f"{'≤' if passed else '>'} {limit:.2f}"
            )
        else:
            passed = False
            reasons.append("no held-out human pairs to measure perplexity on")
        floor = b["distinct_2"] * self.min_distinct_2_ratio
        diverse = c["distinct_2"] >= floor
        reasons.append(f"distinct-2 {c['distinct_2']:.3f} {'≥' if diverse else '<'} {floor:.3f}")
        passed = passed and diverse
        for key in GATED_RATES:
            limit = b.get(key, 0.0) + self.max_rate_increase
            within = c.get(key, 0.0) <= limit
            reasons.append(
                f"{METRIC_NAMES[key]} {c.get(key, 0.0):.1%} {'≤' if within else '>'} {limit:.1%}"
            )
            passed = passed and within
        return passed, reasons


def pipeline_stages(mmi: bool, hybrid: bool, refine: bool = False) -> str:
    """The stages a reply goes through, in words, for the report and the gate."""
    stages = ["the Seq2Seq n-best, refining retrieved replies" if refine else "the Seq2Seq n-best"]
    stages += ["MMI reranking"] if mmi else []
    stages += ["the corpus pool and its ranker"] if hybrid else []
    return ", ".join(stages)


def compare(candidate: ModelReplay, baseline: ModelReplay) -> None:
    same = sum(a == b for a, b in zip(candidate.replies, baseline.replies, strict=True))
    candidate.metrics["identical_to_baseline"] = same / max(len(candidate.replies), 1)
    baseline.metrics["identical_to_baseline"] = 1.0


METRIC_NAMES = {
    "distinct_1": "distinct-1",
    "distinct_2": "distinct-2",
    "mean_len_words": "mean length (words)",
    "sign_off_rate": "replies saying goodbye to a message that did not",
    "greeting_to_non_greeting_rate": "replies greeting a message that was no greeting",
    "repetition_rate": "replies repeating a word degenerately",
    "identical_to_baseline": "identical to the baseline",
    "human_perplexity": "perplexity on logged human replies",
    "liked_loglik_per_token": "log-likelihood / token of liked (👍) replies",
    "disliked_loglik_per_token": "log-likelihood / token of disliked (👎) replies",
    "decode_ms_per_reply": "decode time per reply (ms, batched)",
    "reproduces_live": "its own live replies (same weights) reproduced exactly",
    "own_live_replies": "live replies it made, among those replayed",
    "sources": "replies by source (generated by the model, retrieved from the corpus)",
    "stages": "pipeline stages",
}


def write_report(
    out: Path,
    inputs: ReplayInputs,
    candidate: ModelReplay,
    baseline: ModelReplay,
    verdict: tuple[bool, list[str]],
) -> dict[str, Any]:
    """report.md, report.html (self-contained), lengths.png and report.json under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    png = _length_plot(candidate, baseline)
    (out / "lengths.png").write_bytes(png)
    rows = [
        (label, _fmt(baseline.metrics.get(key)), _fmt(candidate.metrics.get(key)))
        for key, label in METRIC_NAMES.items()
    ]
    samples = [
        (" ⏎ ".join(t.text for t in ex.context), base, cand)
        for ex, base, cand in zip(inputs.logged, baseline.replies, candidate.replies, strict=True)
    ][:SAMPLES]
    passed, reasons = verdict
    summary = {
        "candidate": {"path": candidate.path, "version": candidate.version, **candidate.metrics},
        "baseline": {"path": baseline.path, "version": baseline.version, **baseline.metrics},
        "inputs": {
            "logged_turns": len(inputs.logged),
            "human_pairs": len(inputs.human),
            "liked": len(inputs.liked),
            "disliked": len(inputs.disliked),
            "part": inputs.part,
        },
        "promote": passed,
        "reasons": reasons,
    }
    (out / "report.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    (out / "report.md").write_text(_markdown(summary, rows, samples), encoding="utf-8")
    (out / "report.html").write_text(_html(summary, rows, samples, png), encoding="utf-8")
    return summary


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v:.0%}" for k, v in value.items())
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _length_plot(candidate: ModelReplay, baseline: ModelReplay) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    lengths = [[len(r.split()) for r in m.replies] for m in (baseline, candidate)]
    top = max([1, *lengths[0], *lengths[1]])
    bins = range(0, top + 2)
    for values, label in zip(lengths, ("baseline", "candidate"), strict=True):
        ax.hist(values, bins=bins, alpha=0.55, label=label)
    ax.set_xlabel("reply length (words)")
    ax.set_ylabel("replies")
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


PART_WORDS = {
    "held-out": "held-out conversations only (never fine-tuned on)",
    "fine-tune": "the conversations fine-tuning used",
    "all": "all logged conversations",
}


def describe_inputs(inputs: dict[str, Any]) -> str:
    """What the replay read, in words (emoji alone render as boxes without an emoji font)."""
    return (
        f"{PART_WORDS[inputs['part']]}: {inputs['logged_turns']} logged user turns, "
        f"{inputs['human_pairs']} human replies, {inputs['liked']} liked (👍) and "
        f"{inputs['disliked']} disliked (👎) stored replies"
    )


def _markdown(summary: dict[str, Any], rows: list[tuple[str, str, str]], samples: list[Any]) -> str:
    b, c, inputs = summary["baseline"], summary["candidate"], summary["inputs"]
    lines = [
        "# Replay report",
        "",
        f"- baseline: `{b['path']}` (version {b['version'][:12]})",
        f"- candidate: `{c['path']}` (version {c['version'][:12]})",
        f"- inputs: {describe_inputs(inputs)}",
        f"- verdict: **{'promote' if summary['promote'] else 'hold back'}** "
        f"({'; '.join(summary['reasons'])})",
        "",
        "| metric | baseline | candidate |",
        "|---|---|---|",
        *[f"| {label} | {base} | {cand} |" for label, base, cand in rows],
        "",
        "![reply lengths](lengths.png)",
        "",
        "| context | baseline | candidate |",
        "|---|---|---|",
    ]
    for context, base, cand in samples:
        cells = [x.replace("|", "\\|").replace("\n", " ") for x in (context, base, cand)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _html(
    summary: dict[str, Any], rows: list[tuple[str, str, str]], samples: list[Any], png: bytes
) -> str:
    e = html.escape
    b, c = summary["baseline"], summary["candidate"]
    metric_rows = "".join(
        f"<tr><td>{e(label)}</td><td>{e(base)}</td><td>{e(cand)}</td></tr>"
        for label, base, cand in rows
    )
    sample_rows = "".join(
        f"<tr><td>{e(ctx)}</td><td>{e(base)}</td><td>{e(cand)}</td></tr>"
        for ctx, base, cand in samples
    )
    image = base64.b64encode(png).decode()
    verdict = "promote" if summary["promote"] else "hold back"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Replay report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse;width:100%;margin:1rem 0}}td,th{{border:1px solid #ccc;
padding:.3rem .5rem;text-align:left;vertical-align:top}}th{{background:#f4f4f4}}</style></head>
<body><h1>Replay report</h1>
<p>Baseline <code>{e(b["path"])}</code> ({e(b["version"][:12])}) ·
candidate <code>{e(c["path"])}</code> ({e(c["version"][:12])})</p>
<p>Inputs: {e(describe_inputs(summary["inputs"]))}</p>
<p>Verdict: <strong>{verdict}</strong> ({e("; ".join(summary["reasons"]))})</p>
<table><tr><th>metric</th><th>baseline</th><th>candidate</th></tr>{metric_rows}</table>
<img alt="reply lengths" src="data:image/png;base64,{image}">
<table><tr><th>context</th><th>baseline</th><th>candidate</th></tr>{sample_rows}</table>
</body></html>
"""
