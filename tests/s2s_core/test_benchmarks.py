"""The benchmarks run and report what they promise (their numbers are not asserted:
tests never judge wall-clock time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from s2s_core.benchmarks import decode, train

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_train_benchmark_reports_both_comparisons() -> None:
    result = train.run(quick=True, steps=1)
    for part in ("equal_length", "chitchat"):
        assert result[part]["speedup"] > 0
    assert result["chitchat"]["ours_real_tokens_per_s"] > 0


def test_decode_benchmark_reports_every_strategy_and_the_floor() -> None:
    result = decode.run(quick=True, batches=(1, 4), max_len=6)
    assert result["textbook"]["beam5_sentences_per_s"] > 0
    for name in ("greedy", "beam5", "beam5_sibling", "beam5_hamming"):
        assert result[name]["floor_sentences_per_s"] > 0
        assert set(result[name]["by_batch"]) == {"1", "4"}
    assert set(result["beam5_hamming"]["cost_vs_plain_beam"]) == {"1", "4"}
    assert set(result["attention_memory"]["by_batch"]) == {"1", "4"}


def test_bench_script_prints_json() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "decode.py"), "--quick"],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    assert json.loads(out)["benchmark"] == "decode"
