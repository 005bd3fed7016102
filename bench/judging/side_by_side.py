"""Written replies side by side: the first N contexts of two `s2s eval` outputs, today's reply
beside a refine model's and the corpus reply its first decode read; prints markdown. Not a
blind reading (the reader knows which is which): a look at what changed.

    python bench/judging/side_by_side.py TODAY.json:varied REFINE.json:varied [-n 30]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def samples(spec: str) -> list[dict[str, Any]]:
    path, _, strategy = spec.rpartition(":")
    result = json.loads(Path(path).read_text())
    if strategy not in result:
        raise SystemExit(f"{path}: no {strategy!r} replies")
    return list(result[strategy]["samples"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("today", help="EVAL.json:STRATEGY of today's model")
    parser.add_argument("refine", help="EVAL.json:STRATEGY of the refine model")
    parser.add_argument("-n", type=int, default=30, help="contexts")
    parser.add_argument("--title", default="30 written replies side by side")
    args = parser.parse_args()
    before, after = samples(args.today), samples(args.refine)
    lines = [f"# {args.title}", ""]
    for i, (a, b) in enumerate(zip(before[: args.n], after[: args.n], strict=False), start=1):
        if a["context"] != b["context"]:
            raise SystemExit(f"context {i} differs between the two outputs")
        *earlier, message = a["context"]
        shown = (f"_{earlier[-1]}_ → " if earlier else "") + f"**{message}**"
        read = (b.get("read") or ["(nothing)"])[0]
        lines += [
            f"**{i}.** {shown}",
            f"- today: {a['reply']}",
            f"- refine: {b['reply']}",
            f"- it read: {read}",
            "",
        ]
    print("\n".join(lines).rstrip())


if __name__ == "__main__":
    main()
