"""The reverse-dictionary task on WordNet: what a query is, what a document is, and how related two synsets are.

- Query: a synset's definition with the synset's own lemmas masked (a gloss such as "grind with a sandblast" would
  otherwise hand the answer over).
- Document: title = the synset's lemmas; summary = its example sentences, its hypernyms' lemmas and its
  derivationally related forms — never its own gloss, which is the query.
- Grade of document d for the query of synset q (the highest applicable rule wins):

  | grade | relation of d to q                                                                                |
  |-------|---------------------------------------------------------------------------------------------------|
  | 4     | d is q                                                                                            |
  | 3     | direct hypernym / hyponym (instance ones too), verb group (WordNet's "similar" for verbs)         |
  | 2     | sibling under a parent with ≤ SMALL_FANOUT children; derivational link; part/member/substance     |
  |       | meronym or holonym; entailment; cause                                                             |
  | 1     | sibling under a larger parent; two hops up or down; domain (topic, region, usage); also-see;      |
  |       | antonym                                                                                           |
  | 0     | none of the above: the negatives (other senses of the same lemma, BM25 look-alikes, random)       |
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from disranker.data.wordnet import Synset

MASK = "___"
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_SUFFIXES = ("s", "es", "ed", "d", "ing", "er", "ers")
_MIN_STEM = 5  # shorter shared prefixes are chance ("dog" / "dogma")
# A parent with more children than this (e.g. "person" with ~400 hyponyms) makes its children barely related.
SMALL_FANOUT = 30
_MAX_HYPERNYM_LEMMAS = 3  # "canine, canid" says enough; long synonym lists drown the example sentences
_MAX_DERIVED = 4

_DIRECT = {"@": "hypernym", "@i": "hypernym", "~": "hyponym", "~i": "hyponym", "$": "verb_group"}
_CLOSE = {
    "+": "derivation",
    "%p": "meronym",
    "%m": "meronym",
    "%s": "meronym",
    "#p": "holonym",
    "#m": "holonym",
    "#s": "holonym",
    "*": "entailment",
    ">": "cause",
}
_LOOSE = {
    ";c": "domain",
    "-c": "domain",
    ";r": "domain",
    "-r": "domain",
    ";u": "domain",
    "-u": "domain",
    "^": "also_see",
    "!": "antonym",
}
_UP = ("@", "@i")
_DOWN = ("~", "~i")


@dataclass(frozen=True)
class Relation:
    grade: int
    source: str  # which rule gave the grade; reported per label in stats.json


def document_title(synset: Synset) -> str:
    return ", ".join(synset.lemmas)


def document_summary(synset: Synset, synsets: dict[str, Synset]) -> str:
    """Examples, then "kind of: <hypernym lemmas>", then "related: <derived forms>" — never the synset's gloss."""
    parts = [f'"{example}".' for example in synset.examples]
    parents = [synsets[k] for k in synset.pointers.get("@", []) + synset.pointers.get("@i", [])]
    if parents:
        names = "; ".join(", ".join(p.lemmas[:_MAX_HYPERNYM_LEMMAS]) for p in parents)
        label = "instance of" if "@i" in synset.pointers else "kind of"
        parts.append(f"{label}: {names}.")
    derived = _unique(synsets[k].lemmas[0] for k in synset.pointers.get("+", []))
    derived = [d for d in derived if d.lower() not in {lemma.lower() for lemma in synset.lemmas}][:_MAX_DERIVED]
    if derived:
        parts.append(f"related: {', '.join(derived)}.")
    if not parts:  # a root with no example ("entity"): name its kinds, or any neighbour, rather than leave it empty
        neighbours = _pointers(synset, _DOWN) or [k for keys in synset.pointers.values() for k in keys]
        names = _unique(synsets[k].lemmas[0] for k in neighbours)[:_MAX_DERIVED]
        parts.append(f"{'kinds' if _pointers(synset, _DOWN) else 'related'}: {', '.join(names)}." if names else "")
    return " ".join(parts)


def masked_query(synset: Synset) -> str:
    """The definition with the synset's lemmas, and words sharing their stem, replaced by ``MASK``.

    "grind with a sandblast" → "grind with a ___"; for the lemma "chiropractor", "chiropractic" is masked too, since
    a stem shared with the answer gives it away just as well."""
    text = synset.definition
    for phrase in sorted((lemma for lemma in synset.lemmas if " " in lemma), key=len, reverse=True):
        if phrase.lower() in text.lower():  # rare: compile a pattern only when the phrase occurs
            text = re.sub(r"\b" + re.escape(phrase) + r"s?\b", MASK, text, flags=re.IGNORECASE)
    words = [lemma.lower() for lemma in synset.lemmas if " " not in lemma]
    return _WORD.sub(lambda m: MASK if any(_shares_stem(m.group(0).lower(), w) for w in words) else m.group(0), text)


def _shares_stem(word: str, lemma: str) -> bool:
    if word == lemma or word in {lemma + suffix for suffix in _SUFFIXES}:
        return True
    return len(os.path.commonprefix([word, lemma])) >= max(_MIN_STEM, len(lemma) - 2)


def informative_words(query: str) -> int:
    """How many real words a masked query still has (a query of one word and a mask teaches nothing)."""
    return sum(1 for word in re.findall(r"[A-Za-z]{2,}", query))


def relations(key: str, synsets: dict[str, Synset], fanout: dict[str, int]) -> dict[str, Relation]:
    """Every synset related to ``key`` with its grade (see the module table); ``key`` itself is not included."""
    synset = synsets[key]
    found: dict[str, Relation] = {}

    def offer(other: str, grade: int, source: str) -> None:
        if other != key and (other not in found or found[other].grade < grade):
            found[other] = Relation(grade, source)

    for symbol, source in _LOOSE.items():
        for other in synset.pointers.get(symbol, []):
            offer(other, 1, source)
    for parent in _pointers(synset, _UP):
        for grandparent in _pointers(synsets[parent], _UP):
            offer(grandparent, 1, "two_hops")
        for sibling in _pointers(synsets[parent], _DOWN):
            offer(sibling, 2 if fanout[parent] <= SMALL_FANOUT else 1, "sibling")
    for child in _pointers(synset, _DOWN):
        for grandchild in _pointers(synsets[child], _DOWN):
            offer(grandchild, 1, "two_hops")
    for symbol, source in _CLOSE.items():
        for other in synset.pointers.get(symbol, []):
            offer(other, 2, source)
    for symbol, source in _DIRECT.items():
        for other in synset.pointers.get(symbol, []):
            offer(other, 3, source)
    return found


def has_close_relation(synset: Synset) -> bool:
    """Whether the synset has a grade ≥ 2 neighbour (siblings need a parent, which is already a grade-3 link)."""
    return any(symbol in synset.pointers for symbol in (*_DIRECT, *_CLOSE))


def children_count(synsets: dict[str, Synset]) -> dict[str, int]:
    """Hyponyms (instance ones too) per synset: the fan-out that lowers a sibling's grade."""
    return {key: len(_pointers(s, _DOWN)) for key, s in synsets.items()}


def _pointers(synset: Synset, symbols: tuple[str, ...]) -> list[str]:
    return [k for symbol in symbols for k in synset.pointers.get(symbol, [])]


def _unique(items) -> list[str]:
    return list(dict.fromkeys(items))
