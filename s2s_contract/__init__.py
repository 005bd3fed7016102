"""The light contract shared by bot and worker: settings now, task names and payload
schemas as the service grows. No torch, no SQL, no Telegram here."""

from s2s_contract.settings import Settings, get_settings

__all__ = ["Settings", "get_settings"]
