"""Commands on models: train, eval, generate, bench."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from s2s_cli.options import (
    Device,
    command_line,
    decode_config_from_options,
    fail,
    one_line,
    settings_or_exit,
)

bench_app = typer.Typer(help="Benchmarks that print JSON against a same-run baseline.")

ModelDir = Annotated[Path, typer.Option("--model", help="Checkpoint folder.")]


def train(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Run folder: best checkpoint and resumable state.")],
    task: Annotated[
        str, typer.Option(help="chitchat | tsv | jsonl | copy | reverse | sort")
    ] = "chitchat",
    data: Annotated[Path | None, typer.Option(help="Data file for tsv / jsonl.")] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the run in --out where it stopped.")
    ] = False,
    init_from: Annotated[Path | None, typer.Option(help="Fine-tune this checkpoint.")] = None,
    vocab_size: Annotated[int, typer.Option(help="BPE vocabulary size.")] = 8000,
    context_turns: Annotated[int, typer.Option(help="Dialogue turns in a source.")] = 3,
    max_src_len: Annotated[int, typer.Option(help="Source tokens kept (latest).")] = 64,
    max_tgt_len: Annotated[int, typer.Option(help="Target tokens kept.")] = 32,
    limit: Annotated[int | None, typer.Option(help="Use the first N training pairs.")] = None,
    mix: Annotated[
        float, typer.Option(help="Fine-tuning: share of training pairs from --mix-with.")
    ] = 0.0,
    mix_with: Annotated[
        str, typer.Option(help="Corpus mixed into --data: chitchat (or a synthetic task).")
    ] = "chitchat",
    clean: Annotated[
        bool | None,
        typer.Option(
            "--clean/--no-clean",
            help="chitchat: cut closers and out-of-place greetings from targets [on].",
        ),
    ] = None,
    persona: Annotated[
        bool,
        typer.Option(
            help="chitchat: mix in the bot's answers about itself (learned this way they "
            "became a reply to everything; the n-best choice answers them instead)."
        ),
    ] = False,
    direction: Annotated[
        str,
        typer.Option(help="forward (context -> reply) | backward (reply -> message, for MMI)."),
    ] = "forward",
    tokenizer_from: Annotated[
        Path | None, typer.Option(help="Reuse this checkpoint's tokenizer (backward models).")
    ] = None,
    refine_alpha: Annotated[
        float | None,
        typer.Option(
            help="Retrieve and refine: each source ends with a retrieved corpus reply; this "
            "share of training pairs reads a near copy of the true reply there instead."
        ),
    ] = None,
    refine_pick: Annotated[
        str,
        typer.Option(
            help="The retrieved reply a refine model reads: bm25 (the first) or ranker (the "
            "checkpoint's ranker's best of BM25's first 20; needs `s2s models index`)."
        ),
    ] = "bm25",
    cell: Annotated[str, typer.Option(help="lstm | gru")] = "lstm",
    attention: Annotated[str, typer.Option(help="none | luong")] = "none",
    bidirectional: Annotated[bool, typer.Option(help="Bidirectional encoder.")] = False,
    tie_embeddings: Annotated[bool, typer.Option(help="Tie decoder in/out embeddings.")] = False,
    pointer: Annotated[
        bool,
        typer.Option(
            help="The decoder may copy source tokens (a refine model's: from the retrieved "
            "reply); with --init-from, added to the checkpoint's model."
        ),
    ] = False,
    emb_dim: Annotated[int, typer.Option(help="Embedding width.")] = 256,
    hidden_dim: Annotated[int, typer.Option(help="RNN width.")] = 512,
    layers: Annotated[int, typer.Option(help="RNN layers.")] = 2,
    dropout: Annotated[float, typer.Option(help="Dropout probability.")] = 0.3,
    epochs: Annotated[int, typer.Option(help="Maximum epochs.")] = 10,
    batch_size: Annotated[int, typer.Option(help="Pairs per step.")] = 64,
    lr: Annotated[
        float | None,
        typer.Option(help="Adam peak learning rate [default: 1e-3; with --init-from 3e-4]."),
    ] = None,
    warmup: Annotated[
        int | None,
        typer.Option(
            help="Warmup steps [default: 200; with --init-from a tenth of the run, <= 200]."
        ),
    ] = None,
    clip: Annotated[float, typer.Option(help="Gradient-norm clip.")] = 1.0,
    label_smoothing: Annotated[float, typer.Option(help="Label smoothing.")] = 0.0,
    tf_schedule: Annotated[
        str, typer.Option(help="constant | linear | inverse_sigmoid")
    ] = "constant",
    tf_ratio: Annotated[float, typer.Option(help="Teacher forcing ratio (at start).")] = 1.0,
    tf_floor: Annotated[float, typer.Option(help="Final ratio of decaying schedules.")] = 0.0,
    tf_decay_steps: Annotated[int, typer.Option(help="Steps of the decay.")] = 10_000,
    patience: Annotated[
        int | None,
        typer.Option(help="Epochs without gain before stopping [default: 3; with --init-from 1]."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    max_steps: Annotated[int | None, typer.Option(help="Stop after N steps in total.")] = None,
    max_minutes: Annotated[
        float | None, typer.Option(help="Stop after N minutes; --resume goes on.")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="Torch CPU threads.")] = None,
    device: Device = "auto",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train a Seq2Seq model (or resume / fine-tune one)."""
    from s2s_core.recipe import DataConfig, new_run, resume_run, run_refines
    from s2s_core.train import TrainConfig, fine_tune_config

    try:
        if resume:
            index_dir = retrieval_dir() if run_refines(out) else None
            trainer = resume_run(out, index_dir, max_steps=max_steps, max_minutes=max_minutes)
        else:
            data_cfg = DataConfig(
                task,
                str(data) if data else None,
                vocab_size,
                context_turns,
                max_src_len,
                max_tgt_len,
                limit=limit,
                mix=mix,
                mix_with=mix_with,
                clean=task == "chitchat" if clean is None else clean,
                persona=persona,
                direction=direction,
                refine_alpha=refine_alpha,
                refine_pick=refine_pick,
            )
            model_options = {
                "emb_dim": emb_dim,
                "hidden_dim": hidden_dim,
                "n_layers": layers,
                "dropout": dropout,
                "cell": cell,
                "bidirectional": bidirectional,
                "attention": None if attention == "none" else attention,
                "tie_embeddings": tie_embeddings,
                "pointer": pointer,
            }
            preset = fine_tune_config() if init_from else TrainConfig()
            train_cfg = TrainConfig(
                epochs=epochs,
                batch_size=batch_size,
                lr=preset.lr if lr is None else lr,
                warmup_steps=preset.warmup_steps if warmup is None else warmup,
                clip=clip,
                label_smoothing=label_smoothing,
                tf_schedule=tf_schedule,
                tf_ratio=tf_ratio,
                tf_floor=tf_floor,
                tf_decay_steps=tf_decay_steps,
                patience=preset.patience if patience is None else patience,
                seed=seed,
                max_steps=max_steps,
                max_minutes=max_minutes,
                threads=threads,
            )
            command = command_line(ctx)
            trainer = new_run(
                out,
                data_cfg,
                model_options,
                train_cfg,
                device,
                init_from,
                command,
                tokenizer_from,
                retrieval_dir() if refine_alpha is not None else None,
            )
        trainer.show_progress = progress
    except (ValueError, OSError) as exc:
        fail(str(exc))
    summary = trainer.run()
    typer.echo(json.dumps({"out": str(out), "best": summary["best"]}, indent=2))


def retrieval_dir() -> Path:
    """Where the corpus index is cached (RETRIEVAL_DIR), for a refine model's training."""
    return settings_or_exit().retrieval_dir


def evaluate(
    model: ModelDir,
    split: Annotated[str, typer.Option(help="train | valid | test")] = "test",
    limit: Annotated[int | None, typer.Option(help="First N pairs of the split.")] = None,
    strategies: Annotated[
        str,
        typer.Option(
            help="Comma list: ppl, greedy, beam, sibling, hamming, sample, "
            "or a reply style (focused, varied, playful)."
        ),
    ] = "ppl",
    messages: Annotated[
        Path | None,
        typer.Option(
            help="Instead of the split: a file of single messages (one per line, # comments), "
            "each answered in a fresh conversation."
        ),
    ] = None,
    mmi: Annotated[
        bool, typer.Option(help="Rerank n-best lists with the checkpoint's backward model.")
    ] = True,
    relevance: Annotated[
        bool, typer.Option(help="Response-selection relevance (all-MiniLM-L6-v2).")
    ] = True,
    avoid_defects: Annotated[
        bool,
        typer.Option(help="The n-best choice passes over sign-offs, greetings, repetitions."),
    ] = True,
    device: Device = "auto",
    output: Annotated[Path | None, typer.Option(help="Also write the JSON here.")] = None,
) -> None:
    """Measure a checkpoint: perplexity and the replies of each decoding strategy, as JSON.

    Per strategy, the replies the product would send with BLEU, distinct-n, sign-off /
    greeting / repetition / copy rates and relevance; the human references get the same
    measures."""
    from s2s_contract.styles import CORPUS_STYLES
    from s2s_core.checkpoint import load_checkpoint
    from s2s_core.cleaning import clean_examples
    from s2s_core.evaluate import evaluate_generation, evaluate_perplexity, text_metrics
    from s2s_core.hybrid import load_hybrid
    from s2s_core.mmi import load_backward
    from s2s_core.quality import learned_stock
    from s2s_core.ranker import RankerUnavailable
    from s2s_core.recipe import DataConfig, load_split
    from s2s_core.refine import is_refine, load_refiner
    from s2s_core.retrieval import RetrievalUnavailable

    try:
        net, tokenizer, meta = load_checkpoint(model, device)
        backward = load_backward(model, tokenizer, meta, device) if mmi else None
        data = DataConfig(**meta.get("data", {}))
        names = [s.strip() for s in strategies.split(",") if s.strip()]
        configs = {n: decode_config_from_options(n, meta) for n in names if n != "ppl"}
        examples = read_messages(messages) if messages else load_split(data, split)[:limit]
        hybrid = (
            load_hybrid(
                model, meta, settings_or_exit().retrieval_dir, str(next(net.parameters()).device)
            )
            if any(n in CORPUS_STYLES for n in configs)
            else None
        )
        refiner = load_refiner(
            meta,
            net.config,
            tokenizer,
            settings_or_exit().retrieval_dir if is_refine(meta) else None,
            (hybrid.ranker, hybrid.vectors) if hybrid else None,
            model,
        )
    except (ValueError, OSError, TypeError, RankerUnavailable, RetrievalUnavailable) as exc:
        fail(str(exc))
    source = str(messages) if messages else split
    result: dict[str, Any] = {"model": str(model), "split": source, "pairs": len(examples)}
    try:
        if "ppl" in names and not messages:
            result["perplexity"] = evaluate_perplexity(net, tokenizer, examples, data, refiner)
            cleaned, _ = clean_examples(examples)
            result["perplexity_clean_targets"] = {
                **evaluate_perplexity(net, tokenizer, cleaned, data, refiner),
                "pairs": len(cleaned),
            }
        if configs and not messages:
            texts = [ex.response for ex in examples]
            result["references"] = text_metrics(examples, texts, relevance)
        stock = learned_stock(meta)
        for name, cfg in configs.items():
            result[name] = evaluate_generation(
                net,
                tokenizer,
                examples,
                data,
                cfg,
                backward,
                progress=True,
                relevance=relevance,
                avoid_defects=avoid_defects,
                hybrid=hybrid if name in CORPUS_STYLES else None,
                refiner=refiner,
                stock=stock,
            )
            if messages:
                result[name].pop("bleu")
    except RankerUnavailable as exc:
        fail(f"{exc}, or pass --no-relevance")
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if output:
        output.write_text(text)
    typer.echo(text)


def read_messages(path: Path) -> list[Any]:
    """One opener per line (blank lines and ``#`` comments skipped), each the whole context
    of a fresh conversation, with no reference reply."""
    from s2s_core.corpora import Example, Turn

    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    found = [Example((Turn(line, "user"),), "") for line in lines if line and line[0] != "#"]
    if not found:
        raise ValueError(f"{path}: no messages (one per line)")
    return found


def generate(
    model: ModelDir,
    strategy: Annotated[
        str, typer.Option(help="greedy | beam | sibling | hamming | sample")
    ] = "beam",
    beam_size: Annotated[int, typer.Option(help="Beam width.")] = 5,
    n_best: Annotated[int, typer.Option(help="Print this many scored alternatives.")] = 1,
    max_len: Annotated[int, typer.Option(help="Maximum output tokens.")] = 40,
    length_penalty: Annotated[float, typer.Option(help="alpha in score / len**alpha.")] = 1.0,
    batch_size: Annotated[int, typer.Option(help="Lines decoded together.")] = 32,
    seed: Annotated[int | None, typer.Option(help="Sampling seed.")] = None,
    device: Device = "auto",
) -> None:
    """Translate stdin: one source per line in, one output per line out."""
    from s2s_core.checkpoint import load_checkpoint
    from s2s_core.decoding import generate as run_generate

    try:
        net, tokenizer, meta = load_checkpoint(model, device)
        cfg = decode_config_from_options(
            strategy,
            meta,
            beam_size=beam_size,
            n_best=n_best,
            max_len=max_len,
            length_penalty=length_penalty,
            seed=seed,
        )
    except (ValueError, OSError) as exc:
        fail(str(exc))
    max_src = int(meta.get("data", {}).get("max_src_len", 64))
    lines = [line.rstrip("\n") for line in sys.stdin]
    for start in range(0, len(lines), batch_size):
        chunk = lines[start : start + batch_size]
        sources = [(tokenizer.encode(line) or [3])[-max_src:] for line in chunk]
        for hyps in run_generate(net, sources, cfg):
            if n_best == 1:
                typer.echo(one_line(tokenizer.decode(hyps[0].tokens)))
            else:
                for hyp in hyps:
                    typer.echo(f"{hyp.score:.4f}\t{one_line(tokenizer.decode(hyp.tokens))}")
                typer.echo("")


@bench_app.command("decode")
def bench_decode(
    quick: Annotated[bool, typer.Option(help="Small sizes, for a smoke test.")] = False,
) -> None:
    """Decoding throughput vs the textbook per-hypothesis loops and the compute floor."""
    from s2s_core.benchmarks.decode import run

    typer.echo(json.dumps(run(quick=quick), indent=2))


@bench_app.command("train")
def bench_train(
    quick: Annotated[bool, typer.Option(help="Small sizes, for a smoke test.")] = False,
) -> None:
    """Training throughput vs the textbook per-step decoder loop."""
    from s2s_core.benchmarks.train import run

    typer.echo(json.dumps(run(quick=quick), indent=2))
