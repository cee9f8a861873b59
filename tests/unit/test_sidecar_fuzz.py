"""The sidecar parser on arbitrary input (hypothesis): any bytes give a Sidecar or a SidecarError
with a line (or position) in it, never another exception, and never a hang."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from preserve.core.errors import SidecarError
from preserve.intake import sidecar

#: YAML's structural characters, keys of the schema and a few values, so that generated documents
#: get past the first character often enough to reach the composer, the constructor and the schema
_PIECES = st.sampled_from(
    [
        *sidecar.FIELDS,
        ":",
        ": ",
        "\n",
        "  ",
        "- ",
        "[",
        "]",
        "{",
        "}",
        ",",
        "&a ",
        "*a",
        "<<: ",
        "!!",
        "!!python/name:x ",
        "!!binary ",
        "!!timestamp ",
        "? ",
        "---\n",
        "...\n",
        "|\n",
        ">\n",
        "'",
        '"',
        "#",
        "%YAML 1.1\n",
        "2030-02-31",
        "2030-01-01",
        "1990",
        "9" * 5000,
        "1e999",
        ".nan",
        "~",
        "embargoed",
        "level",
        "until",
        "PSN-0042",
        "../../x",
        "/home/u/x",
        "流浪北京",
        "\t",
        "\x00",
        "\ufeff",
        "\udc80",
    ]
)
_YAMLISH = st.lists(_PIECES, max_size=60).map("".join)


def _check(data: bytes) -> None:
    try:
        result = sidecar.read(data)
    except SidecarError as exc:
        assert exc.public and "REPORT.txt" in exc.public
        return
    assert isinstance(result, sidecar.Sidecar)


@pytest.mark.timeout(120)
@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_any_bytes_give_a_sidecar_or_a_sidecar_error(data: bytes) -> None:
    _check(data)


@pytest.mark.timeout(120)
@settings(max_examples=1500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(_YAMLISH)
def test_any_yaml_like_text_gives_a_sidecar_or_a_sidecar_error(text: str) -> None:
    _check(text.encode("utf-8", "surrogateescape"))
