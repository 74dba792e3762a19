"""``python -m jobs.distill_student``: the old name of ``jobs.distill`` (issue 17, one name per stage), kept for
one release so that job submissions written before the rename still run."""

from __future__ import annotations

import sys

from jobs import distill


def main(argv: list[str] | None = None) -> None:
    note = "jobs.distill_student is deprecated and goes in the next release: use python -m jobs.distill"
    print(note, file=sys.stderr)
    distill.main(argv)


if __name__ == "__main__":
    main()
