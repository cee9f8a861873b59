"""Sizes for people."""

from preserve.core.units import human_bytes


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (999, 1000, 3_900_000, 2.5e12)] == ["999 B", "1.0 KB", "3.9 MB", "2.5 TB"]
