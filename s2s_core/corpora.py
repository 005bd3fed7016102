"""Where training pairs come from: the Chit-Chat dataset, parallel TSV, exported JSONL logs,
and synthetic copy/reverse/sort tasks.

Every corpus yields ``Example``s: a dialogue context (turns, oldest first, each with its
speaker relative to the reply: ``user`` is the person answered, ``bot`` the replier) and the
response text. Translation-style TSV has one context turn with no speaker.

Exported-log JSONL schema (one object per line)::

    {"context": [{"speaker": "user" | "bot", "text": str}, ...],   # oldest first
     "response": str,                                            # the bot turn
     "conversation_id": str, "meta": {...}}                      # optional, ignored here
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from s2s_core.persona import persona_pairs

SPEAKERS = ("user", "bot")
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Turn:
    text: str
    speaker: str | None = None  # "user", "bot", or None for plain translation-style sources


@dataclass(frozen=True)
class Example:
    context: tuple[Turn, ...]
    response: str


def chitchat_dialogues() -> list[list[str]]:
    """Every Chit-Chat conversation with a reply, as its list of turns (a sender's
    consecutive messages joined), without duplicates, in a fixed order so that splits
    are reproducible."""
    # Read the package's JSON directly: its own loader leaves the file open.
    source = resources.files("chitchat_dataset").joinpath("dataset.json")
    data = json.loads(source.read_text(encoding="utf-8"))
    dialogues, seen = [], set()
    for key in sorted(data):
        turns = [" ".join(m["text"].strip() for m in group) for group in data[key]["messages"]]
        turns = [t for t in turns if t]
        # Some conversations occur twice; a copy in train and in test would leak.
        if len(turns) >= 2 and tuple(turns) not in seen:
            seen.add(tuple(turns))
            dialogues.append(turns)
    return dialogues


def split_dialogues(
    dialogues: Sequence[list[str]], seed: int = 13, valid: float = 0.05, test: float = 0.05
) -> dict[str, list[list[str]]]:
    """Splits by conversation (never by turn, so no context leaks across splits)."""
    order = list(range(len(dialogues)))
    random.Random(seed).shuffle(order)
    n_valid, n_test = int(len(order) * valid), int(len(order) * test)
    parts = {
        "valid": order[:n_valid],
        "test": order[n_valid : n_valid + n_test],
        "train": order[n_valid + n_test :],
    }
    return {name: [dialogues[i] for i in sorted(idx)] for name, idx in parts.items()}


def dialogue_examples(turns: Sequence[str], context_turns: int) -> Iterator[Example]:
    """One example per reply: the previous ``context_turns`` turns predict turn i."""
    for i in range(1, len(turns)):
        window = turns[max(0, i - context_turns) : i]
        # Speakers alternate; the turn right before the reply belongs to the "user".
        context = tuple(
            Turn(text, SPEAKERS[(len(window) - 1 - j) % 2]) for j, text in enumerate(window)
        )
        yield Example(context, turns[i])


def chitchat_examples(split: str, context_turns: int = 3, seed: int = 13) -> list[Example]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    dialogues = split_dialogues(chitchat_dialogues(), seed=seed)[split]
    return [ex for turns in dialogues for ex in dialogue_examples(turns, context_turns)]


DIRECTIONS = ("forward", "backward")


def backward_example(example: Example) -> Example:
    """The pair turned around for a backward model p(message | reply) (MMI reranking): the
    reply, spoken by the bot, is the source; the message it answered is the target."""
    return Example((Turn(example.response, "bot"),), example.context[-1].text)


def persona_examples(repeat: int = 20) -> list[Example]:
    """The bot's answers to questions about itself (``s2s_core.persona``), each pair
    ``repeat`` times, so a few dozen pairs weigh enough among 120k to be learned. Off by
    default: learned this way, the answer became a reply to everything (see persona.py)."""
    return [Example((Turn(q, "user"),), a) for q, a in persona_pairs()] * repeat


def read_tsv(path: str | Path) -> list[Example]:
    """Parallel ``source<TAB>target`` lines; a malformed line is an error naming its number."""
    examples = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
                raise ValueError(f"{path}:{number}: expected 'source<TAB>target'")
            examples.append(Example((Turn(parts[0]),), parts[1]))
    return examples


def parse_jsonl_record(record: object, where: str) -> Example:
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object")
    context, response = record.get("context"), record.get("response")
    if not isinstance(response, str) or not response.strip():
        raise ValueError(f"{where}: 'response' must be a non-empty string")
    if not isinstance(context, list) or not context:
        raise ValueError(f"{where}: 'context' must be a non-empty list of turns")
    turns = []
    for turn in context:
        if not isinstance(turn, dict) or turn.get("speaker") not in SPEAKERS:
            raise ValueError(f"{where}: each turn needs 'speaker' in {SPEAKERS}")
        if not isinstance(turn.get("text"), str):
            raise ValueError(f"{where}: each turn needs a string 'text'")
        turns.append(Turn(turn["text"], turn["speaker"]))
    return Example(tuple(turns), response)


def read_jsonl(path: str | Path) -> list[Example]:
    examples = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
            examples.append(parse_jsonl_record(record, f"{path}:{number}"))
    return examples


SYNTHETIC_TASKS = ("copy", "reverse", "sort")


def synthetic_sequences(
    task: str, n: int, n_symbols: int, min_len: int, max_len: int, seed: int, offset: int = 4
) -> list[tuple[list[int], list[int]]]:
    """(source ids, target ids) pairs over symbols ``offset .. offset + n_symbols - 1``:
    tiny tasks a model must learn in seconds, used to prove that training works."""
    if task not in SYNTHETIC_TASKS:
        raise ValueError(f"task must be one of {SYNTHETIC_TASKS}, got {task!r}")
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        src = [offset + rng.randrange(n_symbols) for _ in range(rng.randint(min_len, max_len))]
        tgt = {"copy": src, "reverse": src[::-1], "sort": sorted(src)}[task]
        pairs.append((src, list(tgt)))
    return pairs


def synthetic_examples(task: str, n: int, seed: int, n_symbols: int = 20) -> list[Example]:
    """The synthetic tasks as text (letters separated by spaces), for the CLI."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    pairs = synthetic_sequences(task, n, min(n_symbols, 26), 5, 15, seed, offset=0)
    return [
        Example((Turn(" ".join(letters[i] for i in s)),), " ".join(letters[i] for i in t))
        for s, t in pairs
    ]
