"""A canary version answering a share of chats beside the active one: the split, the
registry's states, the routing through the engine, a restart, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from s2s_cli.main import app
from s2s_contract.settings import Settings
from s2s_contract.tasks import ReplyRequest
from s2s_core import Tokenizer, save_checkpoint
from s2s_core.checkpoint import weights_digest
from tests.conftest import tiny_model
from worker.runtime import serving_engine
from worker.service import ReplyService, in_canary
from worker.store import DialogueStore
from worker.store.models import Generation, Turn

runner = CliRunner()


def test_the_split_is_sticky_and_close_to_the_share() -> None:
    chats = range(-5_000, 5_000)  # groups have negative ids
    for share in (1, 10, 50):
        inside = [c for c in chats if in_canary(c, share)]
        assert abs(len(inside) / len(chats) - share / 100) < 0.01, share
        assert inside == [c for c in chats if in_canary(c, share)]  # same every time
    # Growing the share keeps every chat that was in: conversations do not switch back.
    assert {c for c in chats if in_canary(c, 10)} <= {c for c in chats if in_canary(c, 20)}


def two_versions(tmp_path: Path, tokenizer: Tokenizer) -> tuple[Path, Path]:
    active = save_checkpoint(tmp_path / "active", tiny_model(tokenizer.vocab_size), tokenizer, {})
    canary = save_checkpoint(
        tmp_path / "canary", tiny_model(tokenizer.vocab_size, cell="gru"), tokenizer, {}
    )
    return active, canary


def register(store: DialogueStore, *folders: Path) -> list[str]:
    ids = []
    for folder in folders:
        version = weights_digest(folder)
        store.registry.register_model(version, str(folder), {})
        ids.append(version)
    return ids


def test_the_registry_keeps_one_canary_until_promoted_or_retired(
    store: DialogueStore, tmp_path: Path, tiny_tokenizer: Tokenizer
) -> None:
    active, canary = register(store, *two_versions(tmp_path, tiny_tokenizer))
    store.registry.promote(active)
    with pytest.raises(ValueError, match="active version already"):
        store.registry.start_canary(active, 10)
    with pytest.raises(ValueError, match="1 to 99"):
        store.registry.start_canary(canary, 100)
    store.registry.start_canary(canary, 10)
    assert store.registry.canary() == (canary, str(tmp_path / "canary"), 10)
    store.registry.start_canary(canary, 25)  # a new share
    assert store.registry.canary() is not None and store.registry.canary()[2] == 25  # type: ignore[index]
    store.registry.promote(canary)
    assert store.registry.canary() is None and store.registry.active_model()[0] == canary  # type: ignore[index]
    store.registry.start_canary(active, 5)
    store.registry.retire(active)
    assert store.registry.canary() is None


def test_canary_chats_are_answered_by_the_canary_and_the_rest_by_the_active(
    store: DialogueStore, tmp_path: Path, tiny_tokenizer: Tokenizer
) -> None:
    """Through the engine as workers build it; a new engine (a worker restarted) serves the
    same split from the registry."""
    active, canary = register(store, *two_versions(tmp_path, tiny_tokenizer))
    store.registry.promote(active)
    store.registry.start_canary(canary, 30)
    settings = Settings(model_dir=tmp_path / "none", device="cpu")
    for restart in range(2):
        engine = serving_engine(store, settings)
        service = ReplyService(store, engine, publisher=None)
        chats = range(1000 * restart, 1000 * restart + 40)
        service.reply_batch(
            [ReplyRequest(chat_id=c, user_id=c, message_id=1, text="hello") for c in chats]
        )
        engine.close()
        versions = _versions_by_chat(store, chats)
        assert versions == {c: canary if in_canary(c, 30) else active for c in chats}
        assert set(versions.values()) == {active, canary}


def _versions_by_chat(store: DialogueStore, chats: range) -> dict[int, str]:
    """The version that wrote each chat's reply."""
    with store.sessions() as s:
        rows = s.execute(
            select(Turn.chat_id, Generation.model_version)
            .join(Generation, Generation.turn_id == Turn.id)
            .where(Turn.chat_id.in_(list(chats)))
        ).all()
    return {chat: str(version) for chat, version in rows}


def test_models_canary_command(
    database_url: str, store: DialogueStore, tmp_path: Path, tiny_tokenizer: Tokenizer
) -> None:
    active, canary = register(store, *two_versions(tmp_path, tiny_tokenizer))
    store.registry.promote(active)
    env = {"DATABASE_URL": database_url}
    started = runner.invoke(app, ["models", "canary", canary[:10], "--share", "10"], env=env)
    assert started.exit_code == 0 and started.stdout.strip() == canary, started.output
    listed = json.loads(runner.invoke(app, ["models", "list"], env=env).stdout)
    assert {m["id"]: (m["status"], m["canary_share"]) for m in listed}[canary] == ("canary", 10)
    for bad, message in ((["--share", "0"], "share"), (["--share", "120"], "share")):
        result = runner.invoke(app, ["models", "canary", canary[:10], *bad], env=env)
        assert result.exit_code == 2 and message in result.output
    same = runner.invoke(app, ["models", "canary", active[:10]], env=env)
    assert same.exit_code == 2 and "active version already" in same.output
