"""Keywords as people write them (``keyword_list.py``), and the places that keep them.

The one syntax every door reads (a request, the page, the CLI, ``KEYWORDS``), the
``KEYWORDS`` / ``KEYWORDS_BOOST`` / ``KEYWORDS_MAX_BOOST`` settings, how the core merges the
server's list with a request's, and how a durable job stores its keywords (``jobs.options``).
The HTTP answers to a bad list are in ``tests/test_keywords_api.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gigaam_api.config import DEFAULT_KEYWORDS_BOOST, SettingsError, load_settings
from gigaam_api.jobs.model import JobOptions, JobSpeakers
from gigaam_api.keyword_list import (
    MAX_KEYWORD_CHARS,
    MAX_KEYWORDS,
    KeywordListError,
    format_entry,
    parse_entries,
    parse_entry,
    split_entries,
)
from gigaam_api.model.keywords import DEFAULT_BOOST, Keyword
from gigaam_api.service.keywords import keywords_of, merged, specs_of


def settings(**overrides: Any) -> Any:
    return load_settings(_env_file=None, model="v3_ctc", models_dir="/nonexistent", **overrides)


# -- the syntax ------------------------------------------------------------------------------


def test_entries_are_separated_by_commas_and_line_breaks() -> None:
    assert split_entries(["Сбербанк, ВТБ\nАльфа-Банк\r\n", " ", "Тинькофф,,"]) == [
        "Сбербанк",
        "ВТБ",
        "Альфа-Банк",
        "Тинькофф",
    ]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("Сбербанк", ("Сбербанк", None)),
        ("  Иван   Петров  ", ("Иван Петров", None)),
        ("Сбербанк:3", ("Сбербанк", 3.0)),
        ("Сбербанк : 2.5", ("Сбербанк", 2.5)),
        ("Иван Петров:1e-1", ("Иван Петров", 0.1)),
        ("е\u0308лка", ("ёлка", None)),  # composed (NFC): the model's ё
    ],
)
def test_a_phrase_and_its_boost(entry: str, expected: tuple[str, float | None]) -> None:
    assert parse_entry(entry) == expected


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ("Сбербанк:", "must be a number"),
        ("Сбербанк:x", "must be a number"),
        ("Сбербанк:inf", "must be a number"),
        ("Сбербанк:" + "1" * 30, "must be a number"),
        ("Сбербанк:0", "above 0"),
        ("Сбербанк:-2", "above 0"),
        (":2", "no phrase"),
        ("а" * (MAX_KEYWORD_CHARS + 1), f"longer than {MAX_KEYWORD_CHARS}"),
        ("Сбер\u200bбанк", "control"),  # a zero-width space: looks like one word, is not
        ("Сбер\x00банк", "control"),
    ],
)
def test_what_cannot_be_read_is_an_error_naming_the_entry(entry: str, needle: str) -> None:
    with pytest.raises(KeywordListError) as caught:
        parse_entry(entry)
    assert needle in caught.value.message


def test_the_maximum_boost_is_inclusive() -> None:
    assert parse_entry("Сбербанк:6", max_boost=6.0) == ("Сбербанк", 6.0)
    with pytest.raises(KeywordListError, match="KEYWORDS_MAX_BOOST"):
        parse_entry("Сбербанк:6.01", max_boost=6.0)


def test_a_phrase_at_the_length_limit_is_accepted() -> None:
    assert parse_entry("а" * MAX_KEYWORD_CHARS) == ("а" * MAX_KEYWORD_CHARS, None)


def test_a_repeated_phrase_is_kept_once_with_its_last_boost() -> None:
    listed = parse_entries(["Сбербанк:2, ВТБ", "сбербанк", "СБЕРБАНК:5"])
    assert listed == [("Сбербанк", 5.0), ("ВТБ", None)]


def test_at_most_the_maximum_number_of_phrases() -> None:
    phrases = [f"слово{i}" for i in range(MAX_KEYWORDS)]
    assert len(parse_entries(phrases)) == MAX_KEYWORDS
    assert len(parse_entries([*phrases, phrases[0].upper()])) == MAX_KEYWORDS  # a repeat
    with pytest.raises(KeywordListError, match=str(MAX_KEYWORDS)):
        parse_entries([*phrases, "ещё"])


@pytest.mark.parametrize("spec", [("Сбербанк", None), ("Иван Петров", 2.5), ("ВТБ", 10.0)])
def test_an_entry_written_back_reads_the_same(spec: tuple[str, float | None]) -> None:
    assert parse_entry(format_entry(*spec)) == spec


# -- the settings ----------------------------------------------------------------------------


def test_keywords_setting_as_a_list() -> None:
    read = settings(keywords=" Сбербанк:3 ,ВТБ\nАльфа  Банк ")
    assert read.keywords == ["Сбербанк:3", "ВТБ", "Альфа Банк"]
    assert read.keyword_specs == [("Сбербанк", 3.0), ("ВТБ", None), ("Альфа Банк", None)]
    assert settings().keyword_specs == []


def test_keywords_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYWORDS", "Сбербанк, ВТБ:2")
    monkeypatch.setenv("KEYWORDS_BOOST", "3")
    read = load_settings(_env_file=None, models_dir="/nonexistent")
    assert read.keyword_specs == [("Сбербанк", None), ("ВТБ", 2.0)]
    assert read.keywords_boost == 3.0


def test_keywords_setting_as_a_file(tmp_path: Path) -> None:
    listing = tmp_path / "keywords.txt"
    listing.write_text("# banks\nСбербанк:3\n\n  # not this\nВТБ, Альфа-Банк\n", "utf-8")
    assert settings(keywords=str(listing)).keyword_specs == [
        ("Сбербанк", 3.0),
        ("ВТБ", None),
        ("Альфа-Банк", None),
    ]


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"keywords": "./missing-keywords.txt"}, "cannot read the keyword file"),
        ({"keywords": "Сбербанк:abc"}, "KEYWORDS: Keyword 'Сбербанк'"),
        ({"keywords": "Сбербанк:20"}, "KEYWORDS_MAX_BOOST"),
        ({"keywords": ",".join(f"к{i}" for i in range(MAX_KEYWORDS + 1))}, "At most 100"),
        ({"keywords_boost": 12}, "KEYWORDS_BOOST (12) must not be above KEYWORDS_MAX_BOOST"),
        ({"keywords_boost": 0}, "KEYWORDS_BOOST"),
        ({"keywords_max_boost": 1000}, "KEYWORDS_MAX_BOOST"),
    ],
)
def test_a_bad_keyword_setting_stops_start_up_naming_it(
    overrides: dict[str, Any], needle: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        settings(**overrides)
    assert needle in str(caught.value)


def test_the_default_boost_is_the_engines() -> None:
    """``KEYWORDS_BOOST``'s default lives in ``config.py`` (which may not import the model):
    it must stay the engine's own default."""
    assert DEFAULT_KEYWORDS_BOOST == DEFAULT_BOOST
    assert settings().keywords_boost == DEFAULT_BOOST


# -- the core: merging -----------------------------------------------------------------------


def test_the_request_adds_to_the_server_list_and_may_reboost_its_phrases() -> None:
    server = keywords_of([("Сбербанк", None), ("ВТБ", 3.0)])
    request = keywords_of([("втб", 1.0), ("Тинькофф", None), ("сбербанк", None)])
    assert merged(server, request) == (
        Keyword("Сбербанк", None),
        Keyword("ВТБ", 1.0),
        Keyword("Тинькофф", None),
    )
    assert merged((), ()) == ()
    assert specs_of(merged(server, ())) == (("Сбербанк", None), ("ВТБ", 3.0))


# -- a job's stored keywords -----------------------------------------------------------------


def test_a_jobs_keywords_survive_the_store() -> None:
    options = JobOptions(
        language="ru",
        speakers=JobSpeakers(num_speakers=2),
        keywords=(("Сбербанк", None), ("Иван Петров", 2.5)),
    )
    data = options.to_json()
    assert data["keywords"] == [
        {"phrase": "Сбербанк", "boost": None},
        {"phrase": "Иван Петров", "boost": 2.5},
    ]
    assert JobOptions.from_json(data) == options
    assert "keywords" not in JobOptions(language="ru").to_json()  # rows as before


def test_stored_keywords_an_older_or_newer_server_wrote_still_load() -> None:
    assert JobOptions.from_json({"language": "ru"}).keywords == ()
    odd = {"keywords": [{"phrase": "ВТБ", "boost": 2}, {"phrase": 5}, "x", {"phrase": "А"}]}
    assert JobOptions.from_json(odd).keywords == (("ВТБ", 2.0), ("А", None))
    assert JobOptions.from_json({"keywords": [{"phrase": "Б", "boost": True}]}).keywords == (
        ("Б", None),
    )
    assert JobOptions.from_json({"keywords": "ВТБ"}).keywords == ()
