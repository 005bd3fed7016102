"""Shared CLI helpers: decoding presets and error exits."""

from __future__ import annotations

import re
import shlex
import unicodedata
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from s2s_contract.styles import Style

if TYPE_CHECKING:  # torch stays out of commands that never decode (the bot image has none)
    from s2s_contract.settings import Settings
    from s2s_core.decoding import DecodeConfig

# Named strategies map onto DecodeConfig; a checkpoint's own tuned settings
# (metrics.json "decode") fill in what the command line does not set.
PRESETS: dict[str, dict[str, Any]] = {
    "greedy": {"strategy": "greedy"},
    "beam": {"strategy": "beam"},
    "sibling": {"strategy": "beam", "diversity": "sibling"},
    "hamming": {"strategy": "beam", "diversity": "hamming"},
    "sample": {"strategy": "sample", "top_p": 0.9},
}


STYLES = tuple(Style)  # the product's reply styles (s2s_contract.styles)


def _device(value: str) -> str:
    """A device torch understands: a usage error here, not a torch traceback later."""
    if value in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", value):
        return value
    raise typer.BadParameter(f"{value!r} (auto, cpu, cuda, cuda:N)")


# Every command's --device: the same choices, and DEVICE as the workers read it.
Device = Annotated[
    str,
    typer.Option(
        envvar="DEVICE", callback=_device, help="auto (cuda when available) | cpu | cuda | cuda:N"
    ),
]


def decode_config_from_options(name: str, meta: dict[str, Any], **overrides: Any) -> DecodeConfig:
    from s2s_core.decoding import DecodeConfig

    if name in STYLES and not overrides:
        from worker.replies import decode_config

        return decode_config(name, meta.get("decode"))
    if name not in PRESETS:
        # The styles are whole presets of their own, offered where nothing overrides them.
        names = ", ".join([*PRESETS] if overrides else [*PRESETS, *STYLES])
        raise ValueError(f"strategy must be one of {names}, got {name!r}")
    tuned = dict(meta.get("decode", {}))
    for key in ("strategy", "diversity"):
        tuned.pop(key, None)
    settings = {**tuned, **PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}
    if settings.get("strategy") != "beam":
        settings.pop("beam_size", None)
        settings["n_best"] = settings.get("n_best", 1)
    return DecodeConfig.from_dict(settings)


def command_line(ctx: typer.Context) -> str:
    """The command as a user would retype it: every option that differs from its default."""
    parts = [f"s2s {ctx.info_name}"]
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if value == param.default or value is None:
            continue
        flag = "--" + (param.name or "").replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + flag[2:])
        else:
            parts.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(parts)


def one_line(text: str) -> str:
    """Control characters and line separators become spaces, so one output stays one line
    (a byte-level model can emit any character, newlines included)."""
    return "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text)


def settings_or_exit() -> Settings:
    """The settings, or a one-line exit naming each invalid variable (never its value)."""
    from s2s_contract.settings import ConfigError, load_settings

    try:
        return load_settings()
    except ConfigError as exc:
        fail(str(exc))


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def moment(value: str | None, option: str) -> datetime | None:
    """An ISO date or date-time option; without a zone, UTC. A bad one is a usage error."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option} must be an ISO date or time (2026-11-28, 2026-11-28T12:00), got {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
