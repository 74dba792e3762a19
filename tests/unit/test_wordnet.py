"""The WordNet database reader on a hand-written excerpt in WordNet's own line format."""

from __future__ import annotations

import pytest

from disranker.data import wordnet
from disranker.data.wordnet import find_wordnet_dir, read_synsets, split_gloss

LICENCE = "  1 This software and database is being provided to you, the LICENSEE, by  \n"
NOUNS = (
    LICENCE
    + "00001740 03 n 01 entity 0 001 ~ 00001930 n 0000 | that which is perceived or known  \n"
    + "00001930 03 n 02 dog 0 domestic_dog 1 004 @ 00001740 n 0000 + 00000100 v 0101 "
    '%p 00002000 n 0000 \\ 00009999 a 0000 | a member of the genus Canis; "the dog barked all night"; "a good dog"  \n'
    + "00002000 05 n 01 flag 0 001 #p 00001930 n 0000 | a conspicuously marked or shaped tail  \n"
)
VERBS = LICENCE + "00000100 29 v 01 dog 1 001 + 00001930 n 0101 01 + 02 00 | go after with the intent to catch  \n"


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "data.noun").write_text(NOUNS)
    (tmp_path / "data.verb").write_text(VERBS)
    return tmp_path


def test_synsets_are_keyed_by_sense_key_of_first_lemma(folder):
    synsets = read_synsets(folder)
    assert sorted(synsets) == ["dog%1:03:00", "dog%2:29:01", "entity%1:03:00", "flag%1:05:00"]
    dog = synsets["dog%1:03:00"]
    assert dog.pos == "n"
    assert dog.lemmas == ["dog", "domestic dog"]
    assert dog.definition == "a member of the genus Canis"
    assert dog.examples == ["the dog barked all night", "a good dog"]


def test_pointers_resolve_to_sense_keys_and_drop_adjectives(folder):
    dog = read_synsets(folder)["dog%1:03:00"]
    assert dog.pointers == {"@": ["entity%1:03:00"], "+": ["dog%2:29:01"], "%p": ["flag%1:05:00"]}
    assert read_synsets(folder)["dog%2:29:01"].pointers == {"+": ["dog%1:03:00"]}


def test_split_gloss_keeps_multi_part_definitions_together():
    assert split_gloss('a tool; used for cutting; "she cut it"; "cut!"') == (
        "a tool; used for cutting",
        ["she cut it", "cut!"],
    )
    assert split_gloss("no examples here") == ("no examples here", [])


def test_wrong_synset_type_in_file_is_an_error(tmp_path):
    (tmp_path / "data.noun").write_text("00000100 29 v 01 run 0 000 | move fast  \n")
    (tmp_path / "data.verb").write_text("")
    with pytest.raises(ValueError, match="type 'v' inside the 'n' file"):
        read_synsets(tmp_path)


def test_missing_wordnet_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("WORDNET_DIR", raising=False)
    monkeypatch.setattr(wordnet, "DEBIAN_DIR", tmp_path / "debian")
    monkeypatch.setattr(wordnet, "CACHE_DIR", tmp_path / "cache")
    with pytest.raises(wordnet.WordNetNotFound) as error:
        find_wordnet_dir(tmp_path / "explicit")
    message = str(error.value)
    assert "apt-get install wordnet-base" in message
    assert "disranker data fetch-wordnet" in message
    assert str(tmp_path / "explicit") in message


def test_wordnet_dir_env_variable_is_used(folder, monkeypatch):
    monkeypatch.setenv("WORDNET_DIR", str(folder))
    assert find_wordnet_dir() == folder
