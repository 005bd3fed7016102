"""Decode time on the worker's inference thread, by which threads ran torch before; prints
JSON.

PyTorch's CPU build parallelises with libgomp, which keeps a team of helper threads for
every thread that ever ran a parallel region, for as long as that thread lives. Once a
process has more of them than cores, libgomp stops letting helpers spin between regions,
and every small parallel region of a decode pays for waking them. Each case runs in a fresh
process (libgomp's state is per process), alternating, and reports the mean of its rounds:

- ``main_thread``: ``generate()`` on the main thread, as a script calls it (the baseline);
- ``one_thread``: one thread loads the checkpoint and decodes (the engine now: its inference
  thread loads the model);
- ``loaded_by_a_live_thread``: another thread loads the checkpoint and stays alive, a second
  thread decodes (the engine before: a Celery pool thread loaded the model).

    python bench/torch_threads.py [--quick]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

from s2s_core import Seq2Seq, generate, load_checkpoint
from s2s_core.decoding import WordTable, word_table
from s2s_core.tokenizer import Tokenizer
from worker.replies import decode_config

CASES = ("main_thread", "one_thread", "loaded_by_a_live_thread")
VARIED = decode_config("varied")  # the worker's default reply style


def decode_ms(model: Seq2Seq, words: WordTable, rounds: int) -> float:
    batch = [[5 + i % 50 for i in range(j, j + 10)] for j in range(32)]
    generate(model, batch, VARIED, words)  # warm up
    start = time.perf_counter()
    for _ in range(rounds):
        generate(model, batch, VARIED, words)
    return 1000 * (time.perf_counter() - start) / rounds


def measure(case: str, checkpoint: Path, rounds: int) -> float:
    """One case, in this (fresh) process."""
    words = word_table(Tokenizer.load(Path(checkpoint) / "tokenizer.json"))
    if case == "main_thread":
        return decode_ms(load_checkpoint(checkpoint)[0], words, rounds)
    result: dict[str, float] = {}
    models: list[Seq2Seq] = []
    stop = threading.Event()

    def load_and_stay() -> None:
        models.append(load_checkpoint(checkpoint)[0])
        stop.wait()

    def decode() -> None:
        model = models[0] if models else load_checkpoint(checkpoint)[0]
        result["ms"] = decode_ms(model, words, rounds)

    if case == "loaded_by_a_live_thread":
        loader = threading.Thread(target=load_and_stay)
        loader.start()
        while not models:
            time.sleep(0.01)
    decoder = threading.Thread(target=decode)
    decoder.start()
    decoder.join()
    stop.set()
    return result["ms"]


def run(quick: bool = False) -> dict[str, Any]:
    rounds, repeats = (2, 1) if quick else (4, 2)
    times: dict[str, list[float]] = {case: [] for case in CASES}
    with tempfile.TemporaryDirectory() as tmp:
        from pipeline import make_checkpoint  # the pipeline benchmark's model

        checkpoint = make_checkpoint(Path(tmp), quick)
        for _ in range(repeats):
            for case in CASES:
                out = subprocess.run(
                    [sys.executable, __file__, "--case", case, str(checkpoint), str(rounds)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                times[case].append(float(out.stdout))
    ms = {case: statistics.mean(values) for case, values in times.items()}
    return {
        "benchmark": "torch_threads",
        "batch": 32,
        "decode": VARIED.to_dict(),
        "torch_threads": torch.get_num_threads(),
        "decode_ms": ms,
        "one_thread_vs_main": ms["one_thread"] / ms["main_thread"],
        "loaded_by_a_live_thread_vs_one_thread": ms["loaded_by_a_live_thread"] / ms["one_thread"],
    }


if __name__ == "__main__":
    if "--case" in sys.argv:
        case, checkpoint, rounds = sys.argv[sys.argv.index("--case") + 1 :][:3]
        print(measure(case, Path(checkpoint), int(rounds)))
    else:
        print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
