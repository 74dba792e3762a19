"""``python -m jobs.label_pool``: the old name of ``jobs.label`` (issue 17, one name per stage), kept for
one release so that job submissions written before the rename still run."""

from __future__ import annotations

import sys

from jobs import label


def main(argv: list[str] | None = None) -> None:
    note = "jobs.label_pool is deprecated and goes in the next release: use python -m jobs.label"
    print(note, file=sys.stderr)
    label.main(argv)


if __name__ == "__main__":
    main()
