"""Plain aligned text tables for people reading a terminal (the CLI's listings, the demo's summary).
Pure: builds a string, prints nothing, needs no third-party package (so it stays fast to import)."""

from __future__ import annotations

from collections.abc import Sequence

#: one cell: anything with a useful str(); None is shown as an empty cell
Cell = object


def table(headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> str:
    """A header line, a rule of dashes, then one line per row; columns padded to their widest cell
    and separated by two spaces, trailing blanks trimmed."""
    cells = [[str(h) for h in headers]] + [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *(line(r) for r in cells[1:])])
