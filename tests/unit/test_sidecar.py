"""Sidecar metadata: schema validation with line numbers, a bounded cost (no anchors or aliases,
size and depth limits), pseudonyms that are not names, and public texts that quote no value."""

import datetime as dt
from pathlib import Path

import pytest

from preserve.core.errors import SidecarError
from preserve.intake import sidecar


def test_full_sidecar() -> None:
    s = sidecar.parse(
        "title: Bumming in Beijing\noriginal_title: 流浪北京\ndirector: [A, B]\nyear: 1990\n"
        "access: {level: embargoed, until: 2030-01-01}\ncontributor_id: contrib-7\n"
    )
    assert s.original_title == "流浪北京" and s.directors == ("A", "B") and s.year == 1990
    assert s.access.level == "embargoed" and s.access.until == dt.date(2030, 1, 1)


def test_malformed_yaml_reports_line() -> None:
    with pytest.raises(SidecarError, match="line 2"):
        sidecar.parse("title: ok\n  bad: [unclosed\n")


def test_schema_errors_report_lines() -> None:
    with pytest.raises(SidecarError) as err:
        sidecar.parse("title: x\nyear: nineteen\naccess: public\nfiles: ../../x\ncontributor_id: Real Name\n")
    msg = str(err.value)
    assert (
        "line 2: year" in msg and "line 3: access" in msg and "line 4: files" in msg and "line 5: contributor_id" in msg
    )


def test_empty_sidecar_is_defaults() -> None:
    assert sidecar.parse("") == sidecar.Sidecar()


@pytest.mark.parametrize(
    "text",
    [
        "files: ../../x\n",
        "poster: [cover.jpg, /etc/passwd]\n",
        "title: ../../x\n",
        "extra: {cover: 'C:\\\\Users\\\\x.jpg'}\n",
    ],
)
def test_paths_leaving_the_submission_are_refused_with_their_line(text: str) -> None:
    with pytest.raises(SidecarError, match="line 1: .*path outside the submission"):
        sidecar.parse(text)


def test_free_text_with_slashes_is_not_a_path() -> None:
    assert sidecar.parse("title: AC/DC\nsynopsis: back/../forth and 1/2\n").title == "AC/DC"


# -- a bounded cost (issue 18) -----------------------------------------------------------------------
def _alias_bomb() -> str:
    """The billion laughs: nine levels of nine aliases each stand for 9**9 (387 million) strings."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(30)
def test_an_alias_bomb_is_refused_at_once_with_its_line(tmp_path: Path) -> None:
    text = _alias_bomb()
    assert len(text.encode()) < 754
    bomb = tmp_path / "metadata.yaml"
    bomb.write_text(text, encoding="utf-8")
    with pytest.raises(SidecarError) as err:
        sidecar.load(bomb)
    assert "line 1" in str(err.value) and "anchor" in str(err.value)
    assert "anchor" in err.value.advice and "alias" in err.value.advice
    assert "line 1" in err.value.public


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("title: T\nrights: &r all rights\n", "line 2", "anchor"),
        ("title: T\nx: y\nrights: *r\n", "line 3", "alias"),  # an alias without an anchor, too
        ("title: T\nbase: &b {level: open}\naccess:\n  <<: *b\n", "line 2", "anchor"),  # merge keys need one
    ],
)
def test_anchors_and_aliases_are_refused_with_their_line(text: str, line: str, what: str) -> None:
    with pytest.raises(SidecarError) as err:
        sidecar.parse(text)
    assert line in str(err.value) and what in str(err.value)


@pytest.mark.timeout(30)
def test_deep_nesting_is_refused_with_its_line() -> None:
    flow = "title: T\nrights: " + "[" * 50_000 + "]" * 50_000 + "\n"  # would also overflow the recursion
    with pytest.raises(SidecarError, match=r"line 2, column \d+: nested more than 8 levels deep"):
        sidecar.parse(flow, rules=sidecar.Rules(max_bytes=1 << 20))
    block = "title: T\nnotes:\n" + "".join("  " * i + "- \n" for i in range(1, 12))
    with pytest.raises(SidecarError, match=r"line \d+, column \d+: nested more than 8 levels deep"):
        sidecar.parse(block)
    assert sidecar.parse("access: {level: embargoed, until: 2030-01-01}\n").access.level == "embargoed"
    with pytest.raises(SidecarError, match="nested more than 2 levels"):
        sidecar.parse("director: [[A]]\n", rules=sidecar.Rules(max_depth=2))


def test_an_oversize_sidecar_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    big = tmp_path / "film.mov.yaml"
    big.write_bytes(b"title: T\n" + b"synopsis: " + b"x" * 70_000 + b"\n")
    with pytest.raises(SidecarError) as err:
        sidecar.load(big)
    assert "larger than the limit of 65536 bytes" in str(err.value) and "at line 2" in str(err.value)
    assert "sidecar_max_bytes" in err.value.advice
    assert sidecar.load(big, rules=sidecar.Rules(max_bytes=1 << 20)).title == "T"  # the limit is a setting
    with pytest.raises(SidecarError, match="larger than the limit"):
        sidecar.parse("title: " + "长" * 30_000 + "\n")  # counted in bytes (3 per character), not characters


def test_not_utf8_and_impossible_values_are_sidecar_errors_with_a_line() -> None:
    with pytest.raises(SidecarError, match=r"not UTF-8 text \(line 2\)"):
        sidecar.read(b"title: T\nsynopsis: caf\xe9\n")
    with pytest.raises(SidecarError, match="line 1.*cannot be read"):
        sidecar.parse("year: 2030-02-31\n")  # YAML's timestamp, but no such day
    with pytest.raises(SidecarError, match="line 2.*cannot be read"):
        sidecar.parse("title: T\nyear: " + "9" * 5000 + "\n")  # past Python's int-from-text limit


def test_legitimate_sidecars_still_pass() -> None:
    s = sidecar.parse(
        "title: Bumming in Beijing\n"
        "original_title: 流浪北京：最后的梦想者\n"
        "director:\n  - 吴文光\n  - Wu Wenguang\n"
        "year: 1990\nlanguage: zh\n"
        "synopsis: |\n  五个艺术家在北京的生活。\n  Five artists in Beijing, 1988–1990.\n"
        "rights: © the filmmaker\n"
        "access: {level: embargoed, until: 2030-01-01}\n"
        "contributor_id: PSN-0042\n"
    )
    assert s.original_title == "流浪北京：最后的梦想者" and s.directors == ("吴文光", "Wu Wenguang")
    assert s.synopsis.startswith("五个艺术家") and s.contributor_id == "PSN-0042"
    assert s.access.until == dt.date(2030, 1, 1)
    assert sidecar.parse("\ufefftitle: 北京\n").title == "北京"  # a byte-order mark, as Windows editors write


# -- what leaves the local report -----------------------------------------------------------------
def test_the_public_text_of_a_sidecar_error_quotes_no_value() -> None:
    planted = ("zhangsan", "Zhang Sanfeng", "Kunming", "Wujiaba", "secret_key")
    text = (
        "title: Night Train\n"
        "poster: /home/zhangsan/Desktop/poster.jpg\n"
        "year: Zhang Sanfeng\n"
        "synopsis: ../../Kunming/Wujiaba\n"
        "secret_key: x\n"
    )
    with pytest.raises(SidecarError) as err:
        sidecar.parse(text)
    full, public = str(err.value), err.value.public
    assert all(p in full for p in planted)  # the archivist's report says what to fix
    assert not any(p in public for p in planted)
    assert "line 2 (an unknown field)" in public and "line 3 (year)" in public and "line 4 (synopsis)" in public
    assert "REPORT.txt" in public
    with pytest.raises(SidecarError) as err:
        sidecar.parse("title: T\nrights: !!python/name:Kunming.Wujiaba ''\n")  # PyYAML's problem quotes the tag
    assert "Kunming" in str(err.value) and "Kunming" not in err.value.public and "line 2" in err.value.public


# -- pseudonyms ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("pseudonym", ["PSN-0042", "PSN-7", "AB-12345678", "contrib-42", "contrib-0001", "psn-0042"])
def test_archive_assigned_pseudonyms_are_accepted(pseudonym: str) -> None:
    assert sidecar.parse(f"contributor_id: {pseudonym}\n").contributor_id == pseudonym


@pytest.mark.parametrize(
    "name",
    [
        "ZhangSan",  # a pinyin name, run together
        "zhangsan",
        "zhang-san-wukan",  # name-like separators
        "zhang_san",
        "zhang.san",
        "Zhang San",
        "Wang-Xiaoshuai",
        "zhangsan-1990",  # a name with a year: the series code is at most 7 letters
        "张三",  # Chinese characters
        "張三-0042",
        "zhang.san@example.org",  # an e-mail address
        "PSN-0042x",
        "PSN0042",
        "P-0042",
        "-9876",
        "ABC-",
        "1234",
    ],
)
def test_names_and_addresses_are_refused_as_pseudonyms_without_quoting_them(name: str) -> None:
    with pytest.raises(SidecarError) as err:
        sidecar.parse(f"title: T\ncontributor_id: '{name}'\n")
    assert "line 2: contributor_id: must be a pseudonym the archive assigned, like PSN-0042" in str(err.value)
    assert name not in str(err.value) and name not in err.value.public  # not even in the local report


def test_the_pseudonym_pattern_is_a_setting(tmp_path: Path) -> None:
    from preserve import config
    from preserve.core.errors import ConfigError

    settings = config.load(config.DEFAULT_CONFIG, env={}, overrides={"ingest": {"pseudonym_pattern": "X[0-9]{4}"}})
    rules = sidecar.Rules.of(settings.ingest)
    assert sidecar.parse("contributor_id: X0042\n", rules=rules).contributor_id == "X0042"
    with pytest.raises(SidecarError, match=r"of the form X\[0-9\]\{4\}") as err:
        sidecar.parse("contributor_id: PSN-0042\n", rules=rules)
    assert "PSN-0042" not in str(err.value)
    default = config.load(config.DEFAULT_CONFIG, env={})
    assert sidecar.Rules.of(default.ingest) == sidecar.DEFAULT_RULES  # preserve.toml says what the code does
    with pytest.raises(ConfigError):
        config.load(config.DEFAULT_CONFIG, env={}, overrides={"ingest": {"pseudonym_pattern": "[unclosed"}})
