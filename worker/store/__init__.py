"""The dialogue store: the worker is its only writer (docs/architecture.md)."""

from worker.store.records import Exchange, GenerationInfo, StoredReply, storable_text
from worker.store.store import DialogueStore

__all__ = ["DialogueStore", "Exchange", "GenerationInfo", "StoredReply", "storable_text"]
