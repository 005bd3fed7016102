"""``s2s``: train, evaluate and run the chatbot from one command."""

from __future__ import annotations

import typer

from s2s_cli import chat, train_eval
from s2s_cli.bot_command import bot
from s2s_cli.db import db_app
from s2s_cli.export_command import export
from s2s_cli.logs import setup_logging
from s2s_cli.ranker_command import build_index, train_ranker, train_reranker
from s2s_cli.registry import models_app
from s2s_cli.replay_command import replay, retrain
from s2s_cli.worker_command import worker

app = typer.Typer(
    help="An open Seq2Seq chatbot: train, evaluate, decode, and serve it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("train")(train_eval.train)
app.command("train-ranker")(train_ranker)
app.command("train-reranker")(train_reranker)
app.command("eval")(train_eval.evaluate)
app.command("generate")(train_eval.generate)
app.command("chat")(chat.chat)
app.command("worker")(worker)
app.command("bot")(bot)
app.command("export")(export)
app.command("replay")(replay)
app.command("retrain")(retrain)
app.add_typer(train_eval.bench_app, name="bench")
app.add_typer(db_app, name="db")
models_app.command("index")(build_index)
app.add_typer(models_app, name="models")


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    log_format: str = typer.Option(
        "text", envvar="LOG_FORMAT", help="text, or json (one object per line)."
    ),
) -> None:
    """An open Seq2Seq chatbot: train, evaluate, decode, and serve it."""
    if log_format not in ("text", "json"):
        raise typer.BadParameter("must be text or json", param_hint="--log-format")
    setup_logging(verbose, log_format)
