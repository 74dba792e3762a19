"""``python -m jobs.evaluate_models``: the old name of ``jobs.compare`` (issue 17, one name per stage), kept for
one release so that job submissions written before the rename still run."""

from __future__ import annotations

import sys

from jobs import compare


def main(argv: list[str] | None = None) -> None:
    note = "jobs.evaluate_models is deprecated and goes in the next release: use python -m jobs.compare"
    print(note, file=sys.stderr)
    compare.main(argv)


if __name__ == "__main__":
    main()
