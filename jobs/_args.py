"""The one argument shape every job takes: ``--config FILE`` then ``key.sub=value`` overrides."""

from __future__ import annotations

import argparse


def parse(argv: list[str] | None, description: str) -> tuple[str | None, list[str]]:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", "-c", help="YAML config of the stage (see jobs/configs/)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. corpus.size=tiny")
    args = parser.parse_args(argv)
    return args.config, args.overrides
