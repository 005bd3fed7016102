"""Plays the scripted conversations of ``conversations.txt`` through ``s2s chat`` (the
product's own reply path: the store, the 40-turn history, the hybrid pool, the choice) and
writes what the bot said, as JSON and as a reader's packet.

    python bench/consistency/run.py OUT_DIR [--model DIR] [--style hybrid]

Each conversation asks the bot about itself twice, far apart; a reader (who did not build
the bot) marks every bot turn that contradicts an earlier one or tells a life as the bot's
own (``RUBRIC.md``). A fresh SQLite database per run: nothing of an earlier chat leaks in.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


def conversations(path: Path) -> list[list[str]]:
    """The scripted conversations: blocks of lines separated by a blank line, comments out."""
    blocks: list[list[str]] = []
    current: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                blocks.append(current)
            current = []
        else:
            current.append(line.strip())
    if current:
        blocks.append(current)
    return blocks


def play(scripts: list[list[str]], model: str | None, style: str) -> list[list[str]]:
    """The bot's replies to each script, one ``s2s chat`` process for all (``/reset``
    between conversations)."""
    lines = [line for script in scripts for line in [*script, "/reset"]]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp}/chat.sqlite3"}
        command = [str(ROOT / ".venv/bin/s2s"), "chat", "--style", style]
        command += ["--model", model] if model else []
        done = subprocess.run(
            command,
            input="\n".join(lines) + "\n",
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            check=False,
        )
    if done.returncode != 0:
        sys.exit(f"s2s chat failed: {done.stderr.strip().splitlines()[-1:]}")
    replies = done.stdout.splitlines()
    if len(replies) != len(lines):  # a piped /reset answers with an empty line
        sys.exit(f"expected {len(lines)} lines from s2s chat, got {len(replies)}")
    out, start = [], 0
    for script in scripts:
        out.append(replies[start : start + len(script)])
        start += len(script) + 1
    return out


def packet(scripts: list[list[str]], replies: list[list[str]]) -> str:
    lines = ["# Consistency packet", "", (HERE / "RUBRIC.md").read_text(encoding="utf-8"), ""]
    for n, (script, said) in enumerate(zip(scripts, replies, strict=True), 1):
        lines += [f"## Conversation {n}", ""]
        for turn, (user, bot) in enumerate(zip(script, said, strict=True), 1):
            lines += [f"- User: {user}", f"- Bot [{n}.{turn}]: {bot}"]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--model", help="checkpoint (default: what s2s chat serves)")
    parser.add_argument("--style", default="hybrid")
    parser.add_argument("--script", type=Path, default=HERE / "conversations.txt")
    args = parser.parse_args()
    scripts = conversations(args.script)
    replies = play(scripts, args.model, args.style)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    record = [{"user": script, "bot": said} for script, said in zip(scripts, replies, strict=True)]
    (args.out_dir / "replies.json").write_text(
        json.dumps(record, indent=1, ensure_ascii=False), encoding="utf-8"
    )
    (args.out_dir / "packet.md").write_text(packet(scripts, replies), encoding="utf-8")
    print(json.dumps({"conversations": len(scripts), "out": str(args.out_dir)}))


if __name__ == "__main__":
    main()
