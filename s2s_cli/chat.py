"""``s2s chat``: talk to a model in the terminal.

Interactive on a terminal (a prompt, ``/reset``, ``/quit``); otherwise one utterance per input
line and exactly one reply per output line, nothing else on stdout. The conversation context
is the last turns of this session, built exactly as in training.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from s2s_cli.options import decode_config_from_options, fail, one_line

DEFAULT_STYLE = "hamming"  # the product's default: diversity-penalized beam search


class Conversation:
    """Recent turns and the model that answers them."""

    def __init__(self, model_dir: Path, style: str, device: str) -> None:
        from s2s_core.checkpoint import load_checkpoint

        self.model, self.tokenizer, meta = load_checkpoint(model_dir, device)
        data = meta.get("data", {})
        self.context_turns = int(data.get("context_turns", 3))
        self.max_src_len = int(data.get("max_src_len", 64))
        self.decode = decode_config_from_options(style, meta)
        self.turns: list[tuple[str, str]] = []  # (speaker, text), oldest first

    def reply(self, text: str) -> str:
        from s2s_core.corpora import Turn
        from s2s_core.data import encode_context
        from s2s_core.decoding import generate

        self.turns.append(("user", text))
        recent = [Turn(t, s) for s, t in self.turns[-self.context_turns :]]
        source = encode_context(self.tokenizer, recent, self.max_src_len)
        best = generate(self.model, [source], self.decode)[0][0]
        answer = one_line(self.tokenizer.decode(best.tokens)).strip()
        self.turns.append(("bot", answer))
        return answer

    def reset(self) -> None:
        self.turns.clear()


def chat(
    model: Annotated[Path, typer.Option(envvar="MODEL_DIR", help="Checkpoint folder.")] = Path(
        "models/default"
    ),
    style: Annotated[
        str, typer.Option(help="greedy | beam | sibling | hamming | sample")
    ] = DEFAULT_STYLE,
    device: Annotated[str, typer.Option(envvar="DEVICE", help="cpu | cuda")] = "cpu",
) -> None:
    """Chat with a model in the terminal (one reply per line when stdin is not a terminal)."""
    try:
        conversation = Conversation(model, style, device)
    except (ValueError, OSError) as exc:
        fail(f"{exc} (train one with `s2s train`, or set MODEL_DIR)")
    interactive = sys.stdin.isatty()
    if interactive:
        typer.echo("Talk to the bot. /reset starts over, /quit leaves.", err=True)
    while True:
        try:
            line = input("you> " if interactive else "")
        except EOFError:
            break
        text = line.strip()
        if interactive and text == "/quit":
            break
        if interactive and text == "/reset":
            conversation.reset()
            continue
        if not text:
            if not interactive:
                typer.echo("")  # keep one output line per input line
            continue
        answer = conversation.reply(text)
        typer.echo(f"bot> {answer}" if interactive else answer)
