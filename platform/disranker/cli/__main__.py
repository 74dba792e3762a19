"""``python -m disranker.cli`` (what the Makefile calls before the console script is on PATH)."""

from disranker.cli import app

app()
