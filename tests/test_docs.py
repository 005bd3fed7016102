"""The documentation stays short, free of internal process words, in agreement with the
shipped model's metrics.json, linked correctly, and its runnable examples run.

A shell block is runnable when the line ``<!-- runnable -->`` sits directly above its
```sh fence; it runs with bash from the repository root, in a temporary HOME, against a
temporary SQLite database.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MODEL = ROOT / "models" / "default"
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINKED_DOCS = [README, *DOCS, ROOT / "bench" / "README.md"]
CHECKED_FILES = [*LINKED_DOCS, ROOT / "CHANGELOG.md", ROOT / "Makefile"]
RUNNABLE_MARK = "<!-- runnable -->"
MAX_README_LINES = 200

# Words that belong to a tracker or to working notes, not to documentation for users.
PROCESS_WORDS = {
    "an issue number": re.compile(r"\b(?:issue|ticket|pull request|PR)s? ?#?\d+", re.IGNORECASE),
    # "#31" as a tracker reference; not a heading ("## 1"), a link anchor ("](#x)"), an
    # HTML entity ("&#8212;") or part of a word or URL ("page#2").
    "a #number reference": re.compile(r"(?<![\w&/#\]])(?<!\]\()#\d+\b"),
    "'this stop'": re.compile(r"\bthis stop\b", re.IGNORECASE),
    "'the last issue'": re.compile(r"\bthe last issue\b", re.IGNORECASE),
    "'notes to ourselves'": re.compile(r"\bnotes? to ourselves\b", re.IGNORECASE),
    "a path outside the repository": re.compile(r"\.\./shared\b"),
    "an unnamed 'the chapter'": re.compile(r"\bthe chapter's\b", re.IGNORECASE),
}


def _metrics() -> dict:
    return json.loads((MODEL / "metrics.json").read_text(encoding="utf-8"))


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def _decimals(quoted: str) -> int:
    return len(quoted.split(".")[1]) if "." in quoted else 0


def _code_fences(lines: list[str]) -> list[tuple[int, int, str]]:
    """(first line index, closing line index, info string) of each fenced block."""
    blocks, start, info = [], None, ""
    for i, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            if start is None:
                start, info = i, line.strip()[3:].strip()
            else:
                blocks.append((start, i, info))
                start = None
    return blocks


def _prose(text: str) -> str:
    """The text with fenced code blocks blanked (line numbers kept)."""
    lines = text.splitlines()
    for start, end, _ in _code_fences(lines):
        for i in range(start, end + 1):
            lines[i] = ""
    return "\n".join(lines)


def runnable_blocks() -> list[tuple[str, str]]:
    """(file:line, script) of every shell block marked runnable."""
    found = []
    for path in LINKED_DOCS:
        lines = path.read_text(encoding="utf-8").splitlines()
        for start, end, info in _code_fences(lines):
            if start > 0 and lines[start - 1].strip() == RUNNABLE_MARK:
                assert info in ("sh", "bash"), f"{path.name}:{start + 1}: runnable but not sh"
                script = "\n".join(lines[start + 1 : end])
                found.append((f"{path.relative_to(ROOT)}:{start + 1}", script))
    return found


# --- 1. length ---------------------------------------------------------------------------


def test_readme_is_a_short_front_door() -> None:
    n = len(_readme().splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines (at most {MAX_README_LINES})"


# --- 2. internal process words -----------------------------------------------------------


def test_no_tracker_references_or_working_notes() -> None:
    found = []
    for path in CHECKED_FILES:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for what, pattern in PROCESS_WORDS.items():
                match = pattern.search(line)
                if match:
                    where = f"{path.relative_to(ROOT)}:{number}"
                    found.append(f"{where}: {what}: {match.group(0)!r}")
    assert not found, "internal process words:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("line", "flagged"),
    [
        ("see issue 15's notes", True),
        ("fixed in #31", True),
        ("(#582)", True),
        ("as the last issue said", True),
        ("at this stop", True),
        ("`../shared/containers/host-setup.sh`", True),
        ("## 1. Export", False),
        ("[the choice](#the-choice) and [x](decoding.md#mmi)", False),
        ("an em dash &#8212; here", False),
        ("# 1. Logged conversations", False),
    ],
)
def test_process_word_patterns(line: str, flagged: bool) -> None:
    assert any(p.search(line) for p in PROCESS_WORDS.values()) is flagged


# --- 3. one source per number --------------------------------------------------------------


def test_parameter_counts_match_metrics() -> None:
    counts = set(re.findall(r"(\d+(?:\.\d+)?)M\b", _metrics()["name"]))
    assert len(counts) == 2, f"metrics.json name gives no forward + backward counts: {counts}"
    quoted = re.findall(r"\b(\d+(?:\.\d+)?)M(?=[- ]parameter)", _readme())
    assert set(quoted) == counts, (
        f"README.md quotes parameter counts {sorted(set(quoted))}; "
        f"models/default/metrics.json says {sorted(counts)}"
    )


def test_test_perplexity_matches_metrics() -> None:
    tests = [e for e in _metrics()["evaluations"] if e.get("split") == "test" and "perplexity" in e]
    assert tests, "metrics.json has no test perplexity"
    actual = tests[0]["perplexity"]["perplexity"]
    pairs = tests[0]["pairs"]
    quoted = re.findall(r"[Pp]erplexity (\d+(?:\.\d+)?) on the first (\d+) test pairs", _readme())
    for value, n in quoted:
        assert float(value) == round(actual, _decimals(value)), (
            f"README.md quotes test perplexity {value}; metrics.json says {actual:.4f}"
        )
        assert int(n) == pairs, f"README.md says {n} test pairs; metrics.json says {pairs}"
    stray = re.findall(r"perplexity (\d+\.\d+)", _readme(), re.IGNORECASE)
    assert len(stray) == len(quoted), f"README.md quotes a perplexity without its split: {stray}"


def test_retrieved_replies_match_metrics() -> None:
    retrieved = _metrics()["hybrid"]["retrieved"]
    quoted = re.findall(r"\b(\d+) corpus replies\b", _readme())
    assert quoted, "README.md no longer says how many corpus replies the hybrid pool takes"
    assert {int(q) for q in quoted} == {retrieved}, (
        f"README.md says {quoted} corpus replies; metrics.json hybrid.retrieved is {retrieved}"
    )


def _mib(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


@pytest.mark.parametrize(
    ("pattern", "path"),
    [
        (r"forward model \(fp16, (\d+) MB\)", "model.safetensors"),
        (r"backward model for MMI \((\d+) MB\)", "backward"),
        (r"ranker \((\d+) MB\)", "ranker"),
    ],
)
def test_model_sizes_match_the_files(pattern: str, path: str) -> None:
    quoted = re.findall(pattern, _readme())
    actual = _mib(MODEL / path)
    for size in quoted:
        assert abs(int(size) - actual) <= 1, (
            f"README.md says {size} MB for models/default/{path}; it holds {actual:.1f} MiB"
        )


def test_blind_reading_table_matches_the_scores() -> None:
    """The README's one quality table quotes the scores committed with the reading."""
    text = _readme()
    reading = re.search(r"bench/judging/(\d{4}-\d{2}-\d{2}-round\d+)/", text)
    assert reading, "README.md does not name the reading its table quotes"
    folder = ROOT / "bench" / "judging" / reading.group(1)
    rows = {
        "hybrid_tuned": "fine-tuned ranker",
        "hybrid_minilm": "off-the-shelf MiniLM ranker",
        "today": "`varied`",
        "human": "human replies",
    }
    lines = text.splitlines()
    for column, name in enumerate(("test", "openers"), start=1):
        shares = json.loads((folder / f"scores_{name}.json").read_text())["shares"]
        for system, label in rows.items():
            row = next((line for line in lines if line.startswith("|") and label in line), None)
            assert row, f"README.md's table has no row for {label}"
            cell = row.strip("|").split("|")[column]
            if system not in shares:
                assert cell.strip() == "–", (
                    f"{label}: {name} was not read, yet the cell says {cell}"
                )
                continue
            expected = " / ".join(f"{100 * shares[system][k]:.1f}%" for k in ("R", "G", "O"))
            assert cell.replace("*", "").strip() == expected, (
                f"README.md {label} on {name}: {cell.strip()}; "
                f"{folder.relative_to(ROOT)}/scores_{name}.json: {expected}"
            )


# --- 4. links ------------------------------------------------------------------------------

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _anchors(path: Path) -> set[str]:
    """The heading anchors GitHub makes for a markdown file."""
    headings = re.findall(r"^#{1,6} +(.+?) *$", _prose(path.read_text(encoding="utf-8")), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_relative_links_point_at_files() -> None:
    broken = []
    for path in LINKED_DOCS:
        for number, line in enumerate(_prose(path.read_text(encoding="utf-8")).splitlines(), 1):
            for target in LINK.findall(line):
                if re.match(r"[a-z][a-z0-9+.-]*:", target):
                    continue  # a URL or mailto:
                file, _, anchor = target.partition("#")
                linked = (path.parent / file) if file else path
                if not linked.exists():
                    broken.append(f"{path.relative_to(ROOT)}:{number}: {target}")
                elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                    broken.append(f"{path.relative_to(ROOT)}:{number}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


# --- 5. runnable examples ------------------------------------------------------------------


def test_some_blocks_are_runnable() -> None:
    assert runnable_blocks(), f"no block is marked {RUNNABLE_MARK}"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("where", "script"), [pytest.param(w, s, id=w) for w, s in runnable_blocks()]
)
def test_runnable_block(where: str, script: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR")  # nothing else: no REDIS_URL, no token
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        HOME=str(home),
        DATABASE_URL=f"sqlite:///{tmp_path / 's2s.sqlite3'}",
        RETRAIN_DIR=str(tmp_path / "retrain"),
        MODEL_DIR="models/default",
        DEVICE="cpu",
        OMP_NUM_THREADS="1",
    )
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (
        f"{where}: exit {done.returncode}\n--- stdout\n{done.stdout[-2000:]}"
        f"\n--- stderr\n{done.stderr[-4000:]}"
    )
