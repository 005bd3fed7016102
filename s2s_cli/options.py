"""Shared CLI helpers: decoding presets and error exits."""

from __future__ import annotations

from typing import Any, NoReturn

import typer

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


def decode_config_from_options(name: str, meta: dict[str, Any], **overrides: Any) -> DecodeConfig:
    if name not in PRESETS:
        raise ValueError(f"strategy must be one of {', '.join(PRESETS)}, got {name!r}")
    tuned = dict(meta.get("decode", {}))
    for key in ("strategy", "diversity"):
        tuned.pop(key, None)
    settings = {**tuned, **PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}
    if settings.get("strategy") != "beam":
        settings.pop("beam_size", None)
        settings["n_best"] = settings.get("n_best", 1)
    return DecodeConfig.from_dict(settings)


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)
