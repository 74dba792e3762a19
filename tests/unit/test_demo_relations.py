"""Queries, documents and grades of the reverse-dictionary task, on a hand-made synset graph."""

from __future__ import annotations

from disranker.data.demo_relations import (
    MASK,
    SMALL_FANOUT,
    children_count,
    document_summary,
    document_title,
    has_close_relation,
    masked_query,
    relations,
)
from disranker.data.wordnet import Synset


def synset(key, lemmas, definition="a thing", examples=(), **pointers):
    symbols = {"hyper": "@", "hypo": "~", "part": "%p", "domain": ";c", "derived": "+", "antonym": "!"}
    return Synset(
        key,
        "n",
        list(lemmas),
        definition,
        list(examples),
        {symbols[name]: list(keys) for name, keys in pointers.items()},
    )


def graph():
    many = [f"kid{i}" for i in range(SMALL_FANOUT + 5)]
    nodes = [
        synset("root", ["entity"], hypo=["animal", "crowd"]),
        synset("animal", ["animal"], hyper=["root"], hypo=["dog", "cat"]),
        synset(
            "dog",
            ["dog", "domestic dog"],
            "a barking domestic animal",
            ["the dog barked"],
            hyper=["animal"],
            hypo=["puppy"],
            part=["tail"],
            domain=["zoology"],
            derived=["doggy"],
        ),
        synset("cat", ["cat"], hyper=["animal"]),
        synset("puppy", ["puppy"], hyper=["dog"], hypo=["pup_baby"]),
        synset("pup_baby", ["newborn pup"], hyper=["puppy"]),
        synset("tail", ["tail"]),
        synset("zoology", ["zoology"]),
        synset("doggy", ["doggy"]),
        synset("crowd", ["crowd"], hyper=["root"], hypo=many),
        *[synset(k, [k], hyper=["crowd"]) for k in many],
    ]
    return {s.key: s for s in nodes}


def test_grades_follow_the_relation_table():
    synsets = graph()
    found = relations("dog", synsets, children_count(synsets))
    grades = {key: (r.grade, r.source) for key, r in found.items()}
    assert grades == {
        "animal": (3, "hypernym"),
        "puppy": (3, "hyponym"),
        "cat": (2, "sibling"),
        "tail": (2, "meronym"),
        "doggy": (2, "derivation"),
        "root": (1, "two_hops"),
        "pup_baby": (1, "two_hops"),
        "zoology": (1, "domain"),
    }


def test_sibling_under_a_large_parent_is_only_grade_1():
    synsets = graph()
    found = relations("kid0", synsets, children_count(synsets))
    assert found["kid1"].grade == 1 and found["kid1"].source == "sibling"
    assert found["crowd"].grade == 3


def test_highest_grade_wins_when_two_relations_apply():
    synsets = graph()
    synsets["dog"].pointers["!"] = ["animal"]  # antonym (grade 1) and hypernym (grade 3) at once
    assert relations("dog", synsets, children_count(synsets))["animal"].grade == 3


def test_query_masks_lemmas_phrases_and_shared_stems():
    assert masked_query(synset("s", ["sandblast"], "grind with a sandblast")) == f"grind with a {MASK}"
    assert masked_query(synset("c", ["chiropractor"], "a therapist who practices chiropractic")) == (
        f"a therapist who practices {MASK}"
    )
    assert masked_query(synset("d", ["domestic dog", "dog"], "a Domestic dog; dogs bark")) == f"a {MASK}; {MASK} bark"
    assert masked_query(synset("g", ["dog"], "not a dogma")) == "not a dogma"  # a 3-letter prefix is chance


def test_document_never_contains_its_gloss_but_has_examples_hypernyms_and_derived_forms():
    synsets = graph()
    dog = synsets["dog"]
    summary = document_summary(dog, synsets)
    assert document_title(dog) == "dog, domestic dog"
    assert dog.definition not in summary
    assert summary == '"the dog barked". kind of: animal. related: doggy.'


def test_close_relation_needs_a_grade_2_or_3_pointer():
    synsets = graph()
    assert has_close_relation(synsets["dog"])
    assert not has_close_relation(synsets["tail"])
