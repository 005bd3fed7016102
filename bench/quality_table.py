"""Side-by-side reply quality from several `s2s eval` runs, as one markdown table.

    python bench/quality_table.py "today's model=eval_today.json:varied" \\
        "cleaned, MMI=eval_new.json:varied" "human references=eval_new.json:references"

Each argument is ``label=FILE:KEY``: the row ``KEY`` (a decoding or ``references``) of the
`s2s eval` JSON in ``FILE``. Rows keep the order given; the columns are those of the model
card (s2s_core/model_card.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

COLUMNS = [
    ("distinct replies", "distinct_replies"),
    ("distinct-2", "distinct_2"),
    ("mean words", "mean_len_words"),
    ("sign-off", "sign_off_rate"),
    ("greeting to non-greeting", "greeting_to_non_greeting_rate"),
    ("repetition", "repetition_rate"),
    ("content word repeated", "content_word_repeat_rate"),
    ("stock sentence", "stock_phrase_rate"),
    ("copy rate", "copy_rate"),
]


def row(label: str, result: dict[str, Any]) -> str:
    cells = [label]
    for _, key in COLUMNS:
        value = result.get(key)
        if value is None:
            cells.append("–")
        elif key in ("distinct_2",):
            cells.append(f"{value:.3f}")
        elif key == "mean_len_words":
            cells.append(f"{value:.1f}")
        else:
            cells.append(f"{value:.1%}")
    hits = (result.get("relevance") or {}).get("hits@1/10")
    cells.append("–" if hits is None else f"{hits:.1%}")
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rows", nargs="+", help="label=FILE:KEY")
    args = parser.parse_args()
    header = ["", *(name for name, _ in COLUMNS), "relevance hits@1/10"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for spec in args.rows:
        label, _, where = spec.partition("=")
        path, _, key = where.rpartition(":")
        if not label or not path or not key:
            parser.error(f"expected label=FILE:KEY, got {spec!r}")
        result = json.loads(Path(path).read_text())
        if key not in result:
            parser.error(f"{path} has no row {key!r}")
        print(row(label, result[key]))


if __name__ == "__main__":
    main()
