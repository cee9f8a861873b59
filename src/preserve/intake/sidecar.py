"""The optional metadata sidecar (metadata.yaml, or <file>.yaml): parsed safely and at a bounded
cost, validated against a small schema, and reported with line numbers. Pure: reads the one file
it is given.

Bounded cost: a sidecar is a few fields of text, so a document over ``max_bytes``, nested deeper
than ``max_depth``, or using YAML anchors and aliases (with which 754 bytes can stand for billions
of values) is refused before anything walks it. Every error has two texts: the complete one, for
the local quarantine report, quoting the values that are wrong; and the public one (lines and
field names only), because a value can name a person or a place."""

from __future__ import annotations

import codecs
import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from preserve.access.presentation import normal_language
from preserve.config import IngestSettings
from preserve.core.errors import LOCAL_REPORT_HINT, SidecarError

ACCESS_LEVELS = ("open", "restricted", "embargoed", "dark")
FIELDS = (
    "title",
    "original_title",
    "director",
    "year",
    "language",
    "synopsis",
    "rights",
    "access",
    "contributor_id",
    "credits_public",
    "subtitles",
)
#: codecs Python knows that no subtitle file is written in
_NOT_TEXT_CODECS = frozenset({"undefined", "punycode", "idna", "raw_unicode_escape", "unicode_escape"})
#: subtitle files one sidecar may describe (a film has a few; more is not a sidecar's job)
MAX_SUBTITLE_NOTES = 200
_DEFAULTS = IngestSettings()  # the [ingest] defaults are the one place these numbers are set
#: a sidecar is a few lines of text; a long synopsis belongs in a document of the submission
MAX_SIDECAR_BYTES = _DEFAULTS.sidecar_max_bytes
#: the mapping of fields is level 1, `access: {level, until}` and `director: [...]` level 2
MAX_SIDECAR_DEPTH = _DEFAULTS.sidecar_max_depth
#: an archive-assigned code: a short series code of letters, a dash, the archive's number
#: (PSN-0042, contrib-42). Words alone (ZhangSan), names with separators (zhang-san-wukan,
#: zhang.san, zhang_san), spaces, e-mail addresses and other scripts are refused.
PSEUDONYM_PATTERN = _DEFAULTS.pseudonym_pattern
PSEUDONYM_HINT = (
    "a pseudonym the archive assigned, like PSN-0042 or contrib-42: 2 to 7 letters, a dash and up to 8 digits "
    "(a name, a word or an e-mail address is not a pseudonym)"
)

#: how many problems the local report lists, and how many lines the public text names
MAX_LISTED_PROBLEMS, MAX_TOLD_PROBLEMS = 100, 10

#: the level of a submission that makes no access decision, unless [access] default_level says
#: otherwise: private (copies made, nothing public)
DEFAULT_LEVEL = "restricted"


@dataclass(frozen=True)
class Rules:
    """The limits a sidecar is read within, and the shape of a pseudonym ([ingest] settings)."""

    max_bytes: int = MAX_SIDECAR_BYTES
    max_depth: int = MAX_SIDECAR_DEPTH
    pseudonym_pattern: str = PSEUDONYM_PATTERN

    @classmethod
    def of(cls, ingest: IngestSettings) -> Rules:
        return cls(ingest.sidecar_max_bytes, ingest.sidecar_max_depth, ingest.pseudonym_pattern)

    @property
    def pseudonym_hint(self) -> str:
        if self.pseudonym_pattern == PSEUDONYM_PATTERN:
            return PSEUDONYM_HINT
        return f"a pseudonym the archive assigned, of the form {self.pseudonym_pattern} (a regular expression)"

    def is_pseudonym(self, value: str) -> bool:
        return re.fullmatch(self.pseudonym_pattern, value) is not None


DEFAULT_RULES = Rules()


@dataclass(frozen=True)
class Access:
    level: str = DEFAULT_LEVEL
    until: dt.date | None = None  # for embargoed
    #: False when the sidecar said nothing and ``level`` is the archive's default
    decided: bool = False


@dataclass(frozen=True)
class SubtitleNote:
    """What the sidecar says of one subtitle file of the submission (``subtitles:``): its language
    (a BCP 47 tag) and, for a file whose encoding cannot be told from its bytes, its encoding."""

    name: str  # as written in the sidecar: a path relative to the submission folder, NFC
    language: str = ""
    encoding: str = ""


@dataclass(frozen=True)
class Sidecar:
    title: str = ""
    original_title: str = ""
    directors: tuple[str, ...] = ()
    year: int | None = None
    language: str = ""
    synopsis: str = ""
    rights: str = ""
    access: Access = field(default_factory=Access)
    contributor_id: str = ""
    #: people's names (the directors) may appear in the public access files (the IIIF manifest,
    #: the page) only when the sidecar says so; the default names no one
    credits_public: bool = False
    subtitles: tuple[SubtitleNote, ...] = ()

    def subtitle_note(self, payload_path: str) -> SubtitleNote | None:
        """The sidecar's note on the subtitle file at ``payload_path`` (``objects/<name>`` or
        ``data/objects/<name>``; a note may also name the file alone, when that is unambiguous)."""
        rel = unicodedata.normalize("NFC", payload_path.removeprefix("data/").removeprefix("objects/"))
        exact = [n for n in self.subtitles if n.name == rel]
        if exact:
            return exact[0]
        base = rel.rsplit("/", 1)[-1]
        by_name = [n for n in self.subtitles if "/" not in n.name and n.name == base]
        return by_name[0] if len(by_name) == 1 else None


# -- reading YAML at a bounded cost ----------------------------------------------------------------
class _Refused(yaml.MarkedYAMLError):
    """A construct a sidecar may not use (an anchor, an alias, too deep a nesting): the problem is
    ours, and quotes nothing of the document."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses anchors and aliases (so nothing is shared, and the
    document is as big as it looks) and nesting deeper than ``max_depth``, as it composes."""

    def __init__(self, text: str, max_depth: int) -> None:
        super().__init__(text)
        self.max_depth = max_depth
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            raise _Refused("an alias (`*name`) is not accepted in a sidecar", event.start_mark)
        if getattr(event, "anchor", None) is not None:
            raise _Refused("an anchor (`&name`) is not accepted in a sidecar", event.start_mark)
        nests = isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent))
        if nests:
            self.depth += 1
            if self.depth > self.max_depth:
                raise _Refused(f"nested more than {self.max_depth} levels deep", event.start_mark)
        try:
            return super().compose_node(parent, index)
        finally:
            if nests:
                self.depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """A value Python cannot hold (the 30th of February, an integer of 5,000 digits, an empty
        `!!timestamp`, on which PyYAML itself trips) is a YAML error at its line, not a crash."""
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # whatever PyYAML's constructors raise, told at its line
            raise yaml.constructor.ConstructorError(
                None, None, f"a value that cannot be read ({type(exc).__name__})", node.start_mark
            ) from exc


def _document(text: str, rules: Rules) -> tuple[yaml.Node | None, Any]:
    """The composed root node and the constructed value of a one-document YAML text."""
    loader = _Loader(text, rules.max_depth)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        try:
            return root, loader.construct_document(root)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # as in _Loader.construct_object, for what runs outside it
            raise yaml.constructor.ConstructorError(
                None, None, f"a value that cannot be read ({type(exc).__name__})", root.start_mark
            ) from exc
    finally:
        loader.dispose()


def _line(node: yaml.Node | None) -> str:
    return f"line {node.start_mark.line + 1}" if node is not None else "top"


def _refuse(full: str, public: str, advice: str | None = None) -> SidecarError:
    return SidecarError(full, public=f"{public}; {LOCAL_REPORT_HINT}", advice=advice)


# -- the schema ------------------------------------------------------------------------------------
def parse(
    text: str, source: str = "metadata.yaml", *, default_level: str = DEFAULT_LEVEL, rules: Rules = DEFAULT_RULES
) -> Sidecar:
    """Validate and convert. Raises SidecarError listing every problem with its line number.
    Without an `access:` field the submission gets ``default_level`` (not decided by anyone)."""
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) > rules.max_bytes:
        raise _too_big(source, encoded, rules)
    try:
        root, data = _document(text, rules)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        if isinstance(exc, _Refused):
            raise _refuse(
                f"{source}: {where}: {exc.problem}",
                f"{source}: {where}: {exc.problem}",
                advice="Write every value out in full, as plain fields (no `&anchor`, no `*alias`, no deep "
                "nesting: see the README's sidecar example), then retry.",
            ) from None
        # PyYAML's problem can quote the document (a tag, a token): the full text is for the report only
        problem = getattr(exc, "problem", None) or str(exc)
        raise _refuse(
            f"{source}: not valid YAML at {where}: {problem}", f"{source}: not valid YAML at {where}"
        ) from None
    if root is None:
        return Sidecar(access=Access(default_level))
    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        message = f"{source}: {_line(root)}: expected a mapping of fields ({', '.join(FIELDS)})"
        raise _refuse(message, message)
    nodes = {k.value: v for k, v in root.value if isinstance(k, yaml.ScalarNode)}
    problems: list[tuple[str, str, str]] = []  # (line, field as it may be told, what is wrong)

    def bad(key: str, msg: str) -> None:
        problems.append((_line(nodes.get(key)), key, msg))

    for key in data:
        if key not in FIELDS:
            bad(str(key), f"unknown field (allowed: {', '.join(FIELDS)})")
    for key, value in data.items():
        for path in _path_like(value):
            bad(
                str(key),
                f"{path!r} is a path outside the submission; a sidecar cannot point at files, "
                "least of all outside the folder it came in",
            )

    def text_field(key: str) -> str:
        v = data.get(key, "")
        if v is None:
            return ""
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            bad(key, "must be text")
            return ""
        s = str(v).strip()
        if "\0" in s:
            bad(key, "contains a NUL character")
        return s

    title = text_field("title")
    original_title = text_field("original_title")
    language = text_field("language")
    synopsis = text_field("synopsis")
    rights = text_field("rights")
    contributor_id = text_field("contributor_id")
    if contributor_id and not rules.is_pseudonym(contributor_id):
        # never quoted, not even in the local report: a refused pseudonym is probably a real name
        bad("contributor_id", f"must be {rules.pseudonym_hint}")

    directors_raw = data.get("director", [])
    directors: tuple[str, ...] = ()
    if isinstance(directors_raw, str):
        directors = (directors_raw.strip(),)
    elif isinstance(directors_raw, list) and all(isinstance(d, str) for d in directors_raw):
        directors = tuple(d.strip() for d in directors_raw)
    elif directors_raw not in (None, []):
        bad("director", "must be a name or a list of names")

    year = data.get("year")
    if year is not None and (isinstance(year, bool) or not isinstance(year, int) or not 1888 <= year <= 2100):
        bad("year", f"must be a year between 1888 and 2100, got {year!r}")
        year = None

    access = Access(default_level)
    raw_access = data.get("access", None)
    if raw_access is None:
        raw_access = default_level  # no decision: the archive's default, recorded as such below
    if isinstance(raw_access, str):
        level, until = raw_access.strip(), None
    elif isinstance(raw_access, dict):
        level, until = str(raw_access.get("level", "")), raw_access.get("until")
    else:
        level, until = "", None
    if level not in ACCESS_LEVELS:
        bad("access", f"must be one of {', '.join(ACCESS_LEVELS)} (embargoed needs `until: YYYY-MM-DD`)")
    elif level == "embargoed":
        if isinstance(until, str):
            try:
                until = dt.date.fromisoformat(until)
            except ValueError:
                until = None
        if not isinstance(until, dt.date):
            bad("access", "embargoed needs `until:` with a date (YYYY-MM-DD)")
        else:
            access = Access(level, until if not isinstance(until, dt.datetime) else until.date(), decided=True)
    else:
        access = Access(level, decided=data.get("access") is not None)

    credits_public = data.get("credits_public", False)
    if credits_public is None:
        credits_public = False
    if not isinstance(credits_public, bool):
        bad("credits_public", "must be true or false (whether people's names may appear in the public access files)")
        credits_public = False
    subtitles = _subtitle_notes(data.get("subtitles"), lambda msg: bad("subtitles", msg))

    if problems:
        # a field's name is told only when it is one of ours: an unknown key can be anything
        in_order = sorted(problems, key=lambda p: int(p[0].removeprefix("line ")) if p[0] != "top" else 0)
        told = list(dict.fromkeys(f"{w} ({k if k in FIELDS else 'an unknown field'})" for w, k, _ in in_order))
        full = [f"{where}: {key}: {msg}" for where, key, msg in problems]
        raise _refuse(
            f"{source} is invalid:\n  " + "\n  ".join(_at_most(full, MAX_LISTED_PROBLEMS)),
            f"{source} is invalid at " + ", ".join(_at_most(told, MAX_TOLD_PROBLEMS)),
        )
    return Sidecar(
        title=title,
        original_title=original_title,
        directors=directors,
        year=year,
        language=language,
        synopsis=synopsis,
        rights=rights,
        access=access,
        contributor_id=contributor_id,
        credits_public=credits_public,
        subtitles=subtitles,
    )


def _subtitle_notes(raw: Any, bad: Any) -> tuple[SubtitleNote, ...]:
    """``subtitles:`` — a mapping of subtitle file name to its language (``film.srt: zh-Hans``) or
    to ``{language: ..., encoding: ...}``. Problems are told by ``bad`` (never quoting a name)."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        bad("must map each subtitle file's name to its language, or to {language: ..., encoding: ...}")
        return ()
    if len(raw) > MAX_SUBTITLE_NOTES:
        bad(f"names more than {MAX_SUBTITLE_NOTES} subtitle files")
        return ()
    notes: list[SubtitleNote] = []
    for number, (key, value) in enumerate(raw.items(), start=1):
        if not isinstance(key, str) or not key.strip() or "\0" in key:
            bad(f"entry {number}: the key must be a file name")
            continue
        name = unicodedata.normalize("NFC", key.strip()).removeprefix("./")
        language, encoding = "", ""
        if isinstance(value, str):
            language = value.strip()
        elif isinstance(value, dict) and set(value) <= {"language", "encoding"}:
            language = str(value.get("language") or "").strip()
            encoding = str(value.get("encoding") or "").strip()
        else:
            bad(f"entry {number}: must be a language tag, or {{language: ..., encoding: ...}}")
            continue
        if language:
            tag = normal_language(language)
            if tag is None:
                bad(f"entry {number}: the language must be a BCP 47 tag such as en, zh, zh-Hans, zh-Hant, yue")
                continue
            language = tag
        if encoding:
            try:
                info = codecs.lookup(encoding)
            except LookupError:
                info = None
            if info is None or not getattr(info, "_is_text_encoding", True) or info.name in _NOT_TEXT_CODECS:
                bad(f"entry {number}: unknown encoding (use a name such as gb18030, big5, utf-16, utf-8)")
                continue
            encoding = info.name
        notes.append(SubtitleNote(name, language, encoding))
    return tuple(notes)


def _at_most(items: list[str], n: int) -> list[str]:
    return items if len(items) <= n else [*items[:n], f"and {len(items) - n} more"]


_ESCAPING_PATH = re.compile(r"^(?:\.\./|/|~/|[A-Za-z]:[\\/]|\.\.\\)|(?:^|[/\\])\.\.(?:[/\\]|$)")


def _path_like(value: Any) -> list[str]:
    """Values that look like paths leaving the submission (`../../x`, `/etc/passwd`, `C:\\x`), at
    any depth of the YAML (a tree: anchors and aliases were refused, so each value is seen once)."""
    if isinstance(value, str):
        v = value.strip()
        return [v] if " " not in v and _ESCAPING_PATH.search(v) else []
    if isinstance(value, dict):
        return [p for v in value.values() for p in _path_like(v)]
    if isinstance(value, list):
        return [p for v in value for p in _path_like(v)]
    return []


def _too_big(source: str, head: bytes, rules: Rules) -> SidecarError:
    line = head[: rules.max_bytes].count(b"\n") + 1
    message = (
        f"{source} is larger than the limit of {rules.max_bytes} bytes for a metadata sidecar "
        f"(it passes the limit at line {line})"
    )
    return _refuse(
        message,
        message,
        advice="A sidecar holds a few fields of text: shorten it (a long synopsis or notes belong in a document "
        "file of the submission), or raise [ingest] sidecar_max_bytes, then retry.",
    )


def read(
    data: bytes, source: str = "metadata.yaml", *, default_level: str = DEFAULT_LEVEL, rules: Rules = DEFAULT_RULES
) -> Sidecar:
    """The sidecar in ``data`` (the file's bytes): a Sidecar, or SidecarError, for any bytes."""
    if len(data) > rules.max_bytes:
        raise _too_big(source, data, rules)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        message = f"{source} is not UTF-8 text (line {line})"
        raise _refuse(message, message, advice="Save the sidecar as UTF-8 (any script is fine) and retry.") from None
    return parse(text, source, default_level=default_level, rules=rules)


def load(path: Path | None, *, default_level: str = DEFAULT_LEVEL, rules: Rules = DEFAULT_RULES) -> Sidecar:
    """The sidecar at ``path`` (None: the submission has none, so it gets ``default_level``). Reads
    at most ``rules.max_bytes`` + 1 bytes of it."""
    if path is None:
        return Sidecar(access=Access(default_level))
    with path.open("rb") as fh:
        data = fh.read(rules.max_bytes + 1)
    return read(data, path.name, default_level=default_level, rules=rules)
