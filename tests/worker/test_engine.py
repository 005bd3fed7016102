"""The dynamic batcher: one generate() per group of equal settings, each request its own
result or exception, and model swaps between batches."""

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
from worker.engine import Decoded, Engine, default_source

GREEDY = DecodeConfig(strategy="greedy", max_len=6)
BEAM = DecodeConfig(beam_size=3, max_len=6)


def test_requests_batch_by_settings_and_match_direct_decoding(checkpoint_dir: Path) -> None:
    engine = Engine(default_source(checkpoint_dir), "cpu", max_batch=16, max_wait_ms=200)
    sources = [[5 + i, 6, 7] for i in range(10)]
    futures: list[Future[Decoded]] = [
        engine.submit(src, GREEDY if i % 2 else BEAM) for i, src in enumerate(sources)
    ]
    results = [f.result(timeout=30) for f in futures]
    model, _, _ = load_checkpoint(checkpoint_dir)
    for i, (src, got) in enumerate(zip(sources, results, strict=True)):
        expected = generate(model, [src], GREEDY if i % 2 else BEAM)[0]
        assert [h.tokens for h in got.hypotheses] == [h.tokens for h in expected]
    assert max(r.batch_size for r in results) > 1
    engine.close()


def test_a_bad_request_fails_alone(checkpoint_dir: Path) -> None:
    engine = Engine(default_source(checkpoint_dir), "cpu", max_wait_ms=200)
    good = engine.submit([5, 6], GREEDY)
    bad = engine.submit([5, 10**6], GREEDY)  # id outside the vocabulary
    also_good = engine.submit([7], GREEDY)
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
    assert engine.submit([5], GREEDY).result(timeout=30).version == "old"
    active["version"] = ("new", new)
    assert engine.submit([5], GREEDY).result(timeout=30).version == "new"
    active["version"] = ("broken", tmp_path / "missing")  # a failed reload keeps serving
    assert engine.submit([5], GREEDY).result(timeout=30).version == "new"
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
    assert engine.submit([5], GREEDY).result(timeout=30).hypotheses
    assert loaders == ["s2s-inference"]
    engine.close()

    broken = Engine(lambda: ("v", checkpoint_dir / "missing"), "cpu")
    with pytest.raises(CheckpointError):
        broken.loaded()
    broken.close()


def test_gathering_stops_once_the_last_cohort_is_back(checkpoint_dir: Path) -> None:
    """Under load the first request may wait for company, but not for more than came last
    time: once as many as the last batch are in, it goes, and takes what is already queued."""
    import threading

    from worker.engine import _Request

    engine = Engine(default_source(checkpoint_dir), "cpu", max_batch=8, max_wait_ms=3_600_000)
    engine._last_batch = 3
    for i in range(5):
        engine._queue.put(_Request([5 + i], GREEDY, [5 + i]))
    gathered: list[list[_Request] | None] = []
    worker = threading.Thread(target=lambda: gathered.append(engine._gather()), daemon=True)
    worker.start()
    worker.join(timeout=30)  # the hour-long deadline would still be running
    assert gathered and gathered[0] is not None and len(gathered[0]) == 5


def test_gathering_merges_alternating_cohorts(checkpoint_dir: Path) -> None:
    """A batch of 5 decoded while 3 others queued: the next batch waits for all 8 instead
    of going with the 3 and leaving the 5 to the batch after."""
    import threading

    from worker.engine import _Request

    engine = Engine(default_source(checkpoint_dir), "cpu", max_batch=16, max_wait_ms=3_600_000)
    engine._last_batch, engine._queued_after = 5, 3
    for i in range(3):
        engine._queue.put(_Request([5 + i], GREEDY, [5 + i]))
    gathered: list[list[_Request] | None] = []
    worker = threading.Thread(target=lambda: gathered.append(engine._gather()), daemon=True)
    worker.start()
    worker.join(timeout=0.5)
    assert worker.is_alive()  # still waiting for the other cohort
    for i in range(5):
        engine._queue.put(_Request([5 + i], GREEDY, [5 + i]))
    worker.join(timeout=30)
    assert gathered and gathered[0] is not None and len(gathered[0]) == 8


def test_an_idle_engine_takes_a_burst_whole_while_it_keeps_coming(checkpoint_dir: Path) -> None:
    """No cohort to wait for: each arrival extends the wait by max_wait_ms (here far longer
    than the gaps), so the whole burst lands in one batch; a lone request goes alone."""
    import threading
    import time

    from worker.engine import _Request

    engine = Engine(default_source(checkpoint_dir), "cpu", max_batch=16, max_wait_ms=500)
    engine._last_busy = 3600.0  # the cap (a share of the last decode) is no limit here
    engine._queue.put(_Request([5], GREEDY, [5]))

    def burst() -> None:
        for i in range(5):
            time.sleep(0.05)
            engine._queue.put(_Request([6 + i], GREEDY, [6 + i]))

    sender = threading.Thread(target=burst, daemon=True)
    sender.start()
    batch = engine._gather()
    assert batch is not None and len(batch) == 6
    sender.join()

    engine.max_wait = 0.05
    engine._queue.put(_Request([5], GREEDY, [5]))
    lone = engine._gather()
    assert lone is not None and len(lone) == 1


def test_an_idle_engine_waits_for_announced_requests_only(checkpoint_dir: Path) -> None:
    """With max_wait_ms near zero, a request announced while its caller prepares it still
    joins the batch; a withdrawn announcement ends the wait at once, not at the cap."""
    import threading
    import time

    from worker.engine import _Request

    engine = Engine(default_source(checkpoint_dir), "cpu", max_batch=16, max_wait_ms=1)
    engine._last_busy = 80.0  # a cap of 20 s: far longer than the lookup below
    announced = threading.Event()

    def prepare_then(submit: bool) -> None:
        with engine.preparing():
            announced.set()
            time.sleep(0.3)  # the context lookup
            if submit:
                engine.submit([6], GREEDY)

    caller = threading.Thread(target=prepare_then, args=(True,), daemon=True)
    caller.start()
    assert announced.wait(timeout=10)
    engine._queue.put(_Request([5], GREEDY, [5]))
    batch = engine._gather()
    assert batch is not None and [r.source for r in batch] == [[5], [6]]
    caller.join()

    announced.clear()
    caller = threading.Thread(target=prepare_then, args=(False,), daemon=True)
    caller.start()
    assert announced.wait(timeout=10)
    engine._queue.put(_Request([5], GREEDY, [5]))
    start = time.monotonic()
    batch = engine._gather()
    assert batch is not None and len(batch) == 1
    assert time.monotonic() - start < 5  # back with the withdrawal, long before the cap
    caller.join()

    engine._queue.put(_Request([5], GREEDY, [5]))  # nothing announced: max_wait_ms only
    lone = engine._gather()
    assert lone is not None and len(lone) == 1


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
    engine = Engine(lambda: ("v", checkpoint_dir / "missing"), "cpu", max_wait_ms=500)
    futures = [engine.submit([5 + i], GREEDY) for i in range(4)]
    for future in futures:
        with pytest.raises(CheckpointError):
            future.result(timeout=30)
    engine.close()
    assert len(loads) <= 2  # one per batch; the four may arrive as two batches at most


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
        assert engine.submit([5], GREEDY).result(timeout=30).version == "old"
        gc.unfreeze()
        active["version"] = ("new", new)
        assert engine.submit([5], GREEDY).result(timeout=30).version == "new"
        assert gc.get_freeze_count() == 0
    finally:
        engine.close()
        gc.unfreeze()
