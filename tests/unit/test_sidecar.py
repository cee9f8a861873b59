"""Sidecar metadata: schema validation with line numbers."""

import datetime as dt

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
