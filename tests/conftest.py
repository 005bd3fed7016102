"""Shared fixtures: a tiny tokenizer and model, and a saved checkpoint of them; and the
suite's last check: no process a test started is still running."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from s2s_core import ModelConfig, Seq2Seq, Tokenizer, save_checkpoint

TEXTS = ["hello there", "how are you", "fine thanks", "what is up", "nothing much"] * 10


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """A command run in-process (CliRunner) points the root logger at its own stderr, which
    is closed when it returns: later tests' records then failed with "I/O operation on
    closed file" and a traceback each. Each test leaves the root logger as it found it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def tiny_tokenizer() -> Tokenizer:
    return Tokenizer.train(TEXTS, vocab_size=300)


def tiny_model(vocab: int, **kw: object) -> Seq2Seq:
    torch.manual_seed(0)
    options = {"emb_dim": 16, "hidden_dim": 24, "n_layers": 2, "dropout": 0.0, **kw}
    return Seq2Seq(ModelConfig(vocab, vocab, **options)).eval()  # type: ignore[arg-type]


@pytest.fixture
def checkpoint_dir(tmp_path: Path, tiny_tokenizer: Tokenizer) -> Path:
    model = tiny_model(tiny_tokenizer.vocab_size, attention="luong")
    meta = {"data": {"task": "tsv", "path": "x.tsv", "max_src_len": 32}, "name": "tiny"}
    return save_checkpoint(tmp_path / "ckpt", model, tiny_tokenizer, meta)


def slow_checkpoint(tmp_path: Path, tokenizer: Tokenizer) -> Path:
    """A wide untrained model: decoding takes long enough to catch a worker mid-batch."""
    model = tiny_model(tokenizer.vocab_size, hidden_dim=256, emb_dim=64)
    return save_checkpoint(tmp_path / "slow", model, tokenizer, {"data": {"max_src_len": 64}})


def live_children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the running (not zombie) children of ``pid`` (Linux /proc;
    elsewhere none are found)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, UnicodeDecodeError):
            continue  # gone meanwhile
        if int(ppid) == pid and state != "Z" and "multiprocessing" not in command:
            found.append((int(stat.parent.name), command.strip()))
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Every process a test starts is stopped by its teardown, even when it fails: one left
    running (a redis-server behind a failed start) fails the run, and is killed."""
    left = live_children(os.getpid())
    for pid, command in left:
        print(f"\nleft running by the tests: pid {pid}: {command}")
        os.kill(pid, signal.SIGKILL)
    if left:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
