"""The one argument shape every job takes: ``--config FILE`` then ``key.sub=value`` overrides."""

from __future__ import annotations

import argparse


def _parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", "-c", help="YAML config of the stage (see jobs/configs/)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. corpus.size=tiny")
    return parser


def parse(argv: list[str] | None, description: str) -> tuple[str | None, list[str]]:
    args = _parser(description).parse_args(argv)
    return args.config, args.overrides


def parse_with_size(
    argv: list[str] | None, description: str, sizes: tuple[str, ...]
) -> tuple[str | None, list[str], str | None]:
    """``parse`` plus ``--size``, a named config (the pipeline's tiny and demo runs)."""
    parser = _parser(description)
    parser.add_argument("--size", choices=sizes, help="a named config instead of --config")
    args = parser.parse_args(argv)
    return args.config, args.overrides, args.size
