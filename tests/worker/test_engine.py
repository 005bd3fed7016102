"""The engine: one generate() per group of equal settings across the batches queued, each
request its own result or exception, and model swaps between batches."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

import pytest

from s2s_core import (
    CheckpointError,
    DecodeConfig,
    Tokenizer,
    generate,
    load_checkpoint,
    save_checkpoint,
)
from tests.conftest import tiny_model
from worker.engine import Decoded, DecodeItem, Engine, company_wait, default_source

GREEDY = DecodeConfig(strategy="greedy", max_len=6)
BEAM = DecodeConfig(beam_size=3, max_len=6)


def one(engine: Engine) -> Decoded:
    """A batch of one, decoded."""
    return engine.submit([DecodeItem([5], GREEDY)])[0].result(timeout=30)


def test_requests_batch_by_settings_and_match_direct_decoding(checkpoint_dir: Path) -> None:
    engine = Engine(default_source(checkpoint_dir), "cpu", max_batch=16)
    sources = [[5 + i, 6, 7] for i in range(10)]
    futures: list[Future[Decoded]] = engine.submit(
        [DecodeItem(src, GREEDY if i % 2 else BEAM) for i, src in enumerate(sources)]
    )
    results = [f.result(timeout=30) for f in futures]
    model, _, _ = load_checkpoint(checkpoint_dir)
    for i, (src, got) in enumerate(zip(sources, results, strict=True)):
        expected = generate(model, [src], GREEDY if i % 2 else BEAM)[0]
        assert [h.tokens for h in got.hypotheses] == [h.tokens for h in expected]
    assert {r.batch_size for r in results} == {5}  # one call per settings
    engine.close()


def test_a_bad_request_fails_alone(checkpoint_dir: Path) -> None:
    engine = Engine(default_source(checkpoint_dir), "cpu")
    good, bad, also_good = engine.submit(
        [
            DecodeItem([5, 6], GREEDY),
            DecodeItem([5, 10**6], GREEDY),  # id outside the vocabulary
            DecodeItem([7], GREEDY),
        ]
    )
    assert good.result(timeout=30).hypotheses and also_good.result(timeout=30).hypotheses
    with pytest.raises(ValueError, match="outside"):
        bad.result(timeout=30)
    engine.close()


def test_model_swaps_between_batches(tmp_path: Path, tiny_tokenizer: Tokenizer) -> None:
    vocab = tiny_tokenizer.vocab_size
    old = save_checkpoint(tmp_path / "old", tiny_model(vocab), tiny_tokenizer, {})
    new = save_checkpoint(tmp_path / "new", tiny_model(vocab, cell="gru"), tiny_tokenizer, {})
    active = {"version": ("old", old)}
    engine = Engine(lambda: active["version"], "cpu", reload_every_s=0.0)
    assert one(engine).version == "old"
    active["version"] = ("new", new)
    assert one(engine).version == "new"
    active["version"] = ("broken", tmp_path / "missing")  # a failed reload keeps serving
    assert one(engine).version == "new"
    engine.close()


def test_only_the_inference_thread_runs_torch(
    checkpoint_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller asks for the model first, yet the inference thread loads it (a pool
    thread that once ran torch slows every later decode; see the module docstring), and a
    broken checkpoint is still the caller's error."""
    import threading

    import worker.engine

    loaders: list[str] = []

    def recording_load(*args: object, **kwargs: object) -> object:
        loaders.append(threading.current_thread().name)
        return load_checkpoint(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(worker.engine, "load_checkpoint", recording_load)
    engine = Engine(default_source(checkpoint_dir), "cpu")
    assert engine.loaded().tokenizer.vocab_size > 0
    assert one(engine).hypotheses
    assert loaders == ["s2s-inference"]
    engine.close()

    broken = Engine(lambda: ("v", checkpoint_dir / "missing"), "cpu")
    with pytest.raises(CheckpointError):
        broken.loaded()
    broken.close()


def test_batches_queued_while_one_decodes_are_decoded_together(
    checkpoint_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inference thread never waits for company, and takes every batch queued while it
    was busy in one call."""
    import threading

    import worker.engine

    release, sizes = threading.Event(), []
    real_generate = worker.engine.generate

    def held_generate(model: object, sources: list[list[int]], *args: object) -> object:
        sizes.append(len(sources))
        release.wait(30)
        return real_generate(model, sources, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(worker.engine, "generate", held_generate)
    engine = Engine(default_source(checkpoint_dir), "cpu", max_batch=16)
    engine.loaded()
    first = engine.submit([DecodeItem([5], GREEDY)])
    while not sizes:  # the first batch is decoding
        threading.Event().wait(0.01)
    later = [
        engine.submit([DecodeItem([6 + i], GREEDY), DecodeItem([7], GREEDY)]) for i in range(3)
    ]
    release.set()
    assert first[0].result(timeout=30).batch_size == 1
    assert {f.result(timeout=30).batch_size for batch in later for f in batch} == {6}
    assert sizes == [1, 6]
    engine.close()


def test_a_group_larger_than_the_max_batch_is_decoded_in_chunks(checkpoint_dir: Path) -> None:
    engine = Engine(default_source(checkpoint_dir), "cpu", max_batch=4)
    futures = engine.submit([DecodeItem([5 + i % 3], GREEDY) for i in range(10)])
    assert [f.result(timeout=30).batch_size for f in futures] == [4] * 8 + [2] * 2
    engine.close()


def test_loading_a_model_freezes_the_heap(checkpoint_dir: Path) -> None:
    """What the process holds once it serves is out of the collector's reach, so a full
    collection no longer walks it all (it stopped every thread for ~100 ms)."""
    import gc

    gc.unfreeze()
    engine = Engine(default_source(checkpoint_dir), "cpu")
    try:
        engine.loaded()
        assert gc.get_freeze_count() > 10_000
    finally:
        engine.close()
        gc.unfreeze()


def test_a_broken_checkpoint_is_loaded_once_per_batch(
    checkpoint_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of N that cannot load its model fails as a whole after one load, instead of
    retrying each request alone and loading N + 1 times."""
    import worker.engine

    loads: list[Path] = []

    def counting_load(path: Path, *args: object, **kwargs: object) -> object:
        loads.append(path)
        return load_checkpoint(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(worker.engine, "load_checkpoint", counting_load)
    engine = Engine(lambda: ("v", checkpoint_dir / "missing"), "cpu")
    futures = engine.submit([DecodeItem([5 + i], GREEDY) for i in range(4)])
    for future in futures:
        with pytest.raises(CheckpointError):
            future.result(timeout=30)
    engine.close()
    assert len(loads) == 1


def test_a_hot_reload_does_not_freeze_the_heap_again(
    tmp_path: Path, tiny_tokenizer: Tokenizer
) -> None:
    """Frozen objects are never collected: freezing at every reload would keep each
    replaced model's cyclic garbage for the life of the worker."""
    import gc

    vocab = tiny_tokenizer.vocab_size
    old = save_checkpoint(tmp_path / "old", tiny_model(vocab), tiny_tokenizer, {})
    new = save_checkpoint(tmp_path / "new", tiny_model(vocab, cell="gru"), tiny_tokenizer, {})
    active = {"version": ("old", old)}
    engine = Engine(lambda: active["version"], "cpu", reload_every_s=0.0)
    try:
        assert one(engine).version == "old"
        gc.unfreeze()
        active["version"] = ("new", new)
        assert one(engine).version == "new"
        assert gc.get_freeze_count() == 0
    finally:
        engine.close()
        gc.unfreeze()


@pytest.mark.parametrize(
    ("have", "cohort", "waited_s", "last_busy_s", "wait_s"),
    [
        (1, 0, 0.0, 0.0, 0.0),  # idle: a lone message goes at once
        (1, 1, 0.0, 2.0, 0.0),  # its cohort is whole
        (16, 32, 0.0, 2.0, 0.5),  # half the cohort: a quarter of the last decode's time
        (16, 32, 0.3, 2.0, 0.2),  # ... less what it waited already
        (16, 32, 0.6, 2.0, 0.0),  # ... and no more
        (33, 32, 0.0, 2.0, 0.0),  # more than the cohort
        (4, 32, 0.0, 0.004, 0.001),  # a GPU's 4 ms decode: a 1 ms wait at most
    ],
)
def test_company_wait(
    have: int, cohort: int, waited_s: float, last_busy_s: float, wait_s: float
) -> None:
    assert company_wait(have, cohort, waited_s, last_busy_s) == pytest.approx(wait_s)


def test_a_cohort_split_in_two_batches_is_decoded_together_again(
    checkpoint_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last decode's 8 requests come back as two worker batches, the second a moment
    after the first: the engine waits for it (within a quarter of the last decode's time)
    instead of decoding two half batches that then alternate."""
    import threading

    import worker.engine

    sizes: list[int] = []
    real_generate = worker.engine.generate

    def slow_generate(model: object, sources: list[list[int]], *args: object) -> object:
        sizes.append(len(sources))
        threading.Event().wait(0.4)  # a decode long enough to make the wait worth it
        return real_generate(model, sources, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(worker.engine, "generate", slow_generate)
    engine = Engine(default_source(checkpoint_dir), "cpu", max_batch=16)
    whole = engine.submit([DecodeItem([5 + i % 3], GREEDY) for i in range(8)])
    [f.result(timeout=30) for f in whole]
    first = engine.submit([DecodeItem([5], GREEDY)] * 4)
    threading.Event().wait(0.05)  # the second half of the cohort, 50 ms later
    second = engine.submit([DecodeItem([6], GREEDY)] * 4)
    assert {f.result(timeout=30).batch_size for f in first + second} == {8}
    assert sizes == [8, 8]
    engine.close()
