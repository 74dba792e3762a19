"""What every command shares: the ``--config`` option, trailing overrides, and strict config loading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from disranker.config import ConfigError, load_config

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config of the stage.")]
Overrides = Annotated[list[str] | None, typer.Argument(help="Overrides such as size=tiny or corpus.seed=7.")]


def load_stage_config(cls, config: Path | None, overrides: list[str] | None, **shortcuts):
    # Text options are quoted so YAML keeps them as typed: `--out "run #2"` is not cut at '#', `--model yes` not a bool.
    extra = [
        f"{key}={json.dumps(value, ensure_ascii=False) if isinstance(value, str) else value}"
        for key, value in shortcuts.items()
        if value is not None
    ]
    try:
        return load_config(cls, config, [*(overrides or []), *extra])
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from exc
