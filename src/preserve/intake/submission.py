"""What a submission is: a top-level file or folder in the ingest folder, its files under safe
NFC names, its optional sidecar, and the refusal of anything unsafe (links, special files,
hostile or over-long names). Side effects: reads directory entries and file metadata only;
never opens, changes or follows anything in the source."""

from __future__ import annotations

import fnmatch
import os
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from preserve.core.errors import SubmissionError, UnsafeSubmission
from preserve.core.model import Role

#: system and partial files that are never part of a submission (recorded as ignored)
IGNORED_PATTERNS = (
    ".DS_Store",
    "Thumbs.db",
    "desktop.ini",
    "._*",
    "*.part",
    "*.crdownload",
    "~$*",
    ".~lock.*",
    "*.tmp",
)
READY_MARKER = "READY"
#: files beside a single-file submission that belong to it (`film.mov.yaml`, `film.mov.md5`, ...)
COMPANION_SUFFIXES = (".yaml", ".yml", ".md5", ".sha1", ".sha256", ".sha512")
FOLDER_SIDECAR = "metadata.yaml"
MAX_COMPONENT_BYTES = 255
#: S3 allows 1024-byte keys; keep room for the target prefix, AIP id and "data/objects/"
MAX_RELPATH_BYTES = 1024 - 200

VIDEO_EXT = {
    ".mov",
    ".mp4",
    ".m4v",
    ".mkv",
    ".avi",
    ".mxf",
    ".mts",
    ".m2ts",
    ".ts",
    ".mpg",
    ".mpeg",
    ".vob",
    ".dv",
    ".webm",
    ".wmv",
    ".flv",
    ".3gp",
    ".ogv",
    ".y4m",
    ".nut",
    ".rm",
    ".rmvb",
    ".mod",
    ".tod",
}
AUDIO_EXT = {".wav", ".aif", ".aiff", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".wma", ".ac3", ".caf"}
SUBTITLE_EXT = {".srt", ".ass", ".ssa", ".vtt", ".sub", ".idx", ".scc", ".stl", ".ttml", ".dfxp"}
IMAGE_EXT = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".dpx", ".exr", ".heic"}
DOCUMENT_EXT = {".pdf", ".txt", ".doc", ".docx", ".odt", ".rtf", ".md", ".csv", ".xls", ".xlsx", ".pages"}
SIDECAR_EXT = {".yaml", ".yml", ".md5", ".sha1", ".sha256", ".sha512"}


@dataclass(frozen=True)
class SourceFile:
    """One file of a submission, as found on disk."""

    path: Path  # where it is now (never modified)
    rel: str  # NFC, POSIX, relative to the submission root (for a single file: its name)
    size: int
    role: Role
    original_name_bytes: bytes | None = None  # the on-disk bytes, when NFC changed them


@dataclass(frozen=True)
class Submission:
    name: str  # the top-level entry's name, NFC
    path: Path
    is_dir: bool
    files: tuple[SourceFile, ...]
    ignored: tuple[str, ...] = ()
    sidecar: Path | None = None  # metadata.yaml inside, or <file>.yaml next to a single file

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def companions(self) -> tuple[Path, ...]:
        """Entries beside a single-file submission that travel with it (its sidecar, checksum
        files and `<name>.READY` marker), so done/ and failed/ receive them too."""
        return () if self.is_dir else companions_of(self.path)

    @property
    def sidecar_files(self) -> tuple[Path, ...]:
        """The companions that are preserved with the file (everything but the READY marker)."""
        marker = ready_marker_for(self.path)
        return tuple(p for p in self.companions if p != marker)


def printable(text: str) -> str:
    """Text safe to print, store in the catalog and write as UTF-8: bytes of a name that are not
    UTF-8 (kept by Python as surrogates) become \\xNN escapes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def key_for(path: Path) -> str:
    """The catalog's name for a submission: NFC, and printable even when the on-disk name is not
    valid UTF-8 (such a submission is quarantined, but must still be reported)."""
    raw = os.fsencode(Path(path).name)
    return unicodedata.normalize("NFC", raw.decode("utf-8", errors="backslashreplace"))


def is_ignored(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pat) for pat in IGNORED_PATTERNS)


def sibling_sidecars(path: Path) -> list[Path]:
    """Files that belong to a single-file submission: film.mov.yaml, film.mov.md5, ..."""
    return [path.with_name(path.name + ext) for ext in COMPANION_SUFFIXES]


def companions_of(path: Path) -> tuple[Path, ...]:
    """The companions of a single file that exist now (nothing for a folder)."""
    if os.path.isdir(path) and not os.path.islink(path):
        return ()
    return tuple(p for p in (*sibling_sidecars(path), ready_marker_for(path)) if os.path.lexists(p))


def ready_marker_for(path: Path) -> Path:
    """`film.mov.READY` beside a single file, or `READY` inside a folder: "the copy is complete"."""
    return (
        path / READY_MARKER
        if path.is_dir() and not path.is_symlink()
        else path.with_name(f"{path.name}.{READY_MARKER}")
    )


def companion_of(name: str) -> str | None:
    """For `film.mov.yaml` / `film.mov.md5` / `film.mov.READY`: the name of the file it belongs to."""
    for ext in (*COMPANION_SUFFIXES, f".{READY_MARKER}"):
        if name.endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)]
    return None


def role_for(name: str) -> Role:
    ext = PurePosixPath(name).suffix.lower()
    for exts, role in (
        (VIDEO_EXT, Role.VIDEO),
        (AUDIO_EXT, Role.AUDIO),
        (SUBTITLE_EXT, Role.SUBTITLE),
        (IMAGE_EXT, Role.IMAGE),
        (DOCUMENT_EXT, Role.DOCUMENT),
        (SIDECAR_EXT, Role.SIDECAR),
    ):
        if ext in exts:
            return role
    return Role.OTHER


def safe_name(raw: bytes, where: str) -> tuple[str, bytes | None]:
    """Decode an on-disk name: UTF-8, NFC, within the byte limit. Returns the name and the
    original bytes when normalisation changed them. A leading '-', spaces, quotes, any script and
    emoji are kept (never passed to a tool as options, no shell anywhere). Control characters
    (newline, tab, ...) are kept too: percent-encoded in bag manifests (RFC 8493) and in object
    keys (storage.base.object_key), so the name comes back exactly as it arrived."""
    where = printable(where)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"{where}: the name {raw!r} is not valid UTF-8 and cannot be stored without guessing"
        raise UnsafeSubmission(
            message, advice="Rename the file with a UTF-8 name (any script is fine) and retry.", public=message
        ) from exc
    nfc = unicodedata.normalize("NFC", text)
    if "\0" in nfc or nfc in (".", ".."):
        raise UnsafeSubmission(f"{where}: hostile name {nfc!r}", public=f"{where}: hostile name {nfc!r}")
    if len(nfc.encode("utf-8")) > MAX_COMPONENT_BYTES:
        message = (
            f"{where}: the name {nfc[:40]!r}... is {len(nfc.encode('utf-8'))} bytes long; the limit is "
            f"{MAX_COMPONENT_BYTES} bytes per name"
        )
        raise UnsafeSubmission(
            message,
            advice="Shorten the file name (the limit counts bytes: a Chinese character takes 3) and retry.",
            public=message,
        )
    return nfc, (raw if nfc.encode("utf-8") != raw else None)


def _check_entry(path: Path, st: os.stat_result, where: str, root: Path | None = None) -> None:
    """Refuse what is not a plain file or folder. ``root``: the submission folder ``path`` is in
    (None for a top-level entry), to tell a link to a file of the submission from one leaving it."""
    where = printable(where)
    if stat.S_ISLNK(st.st_mode):
        target = printable(os.fsdecode(os.readlink(path)))
        public = f"{where} is {link_wording(path, root)}; links are never followed"
        raise UnsafeSubmission(
            # the target is a path on the sender's machine ("/home/<name>/<place>/..."): it stays in
            # the local report, for the archivist, and is never told anywhere else
            f"{where} is {link_wording(path, root)} (to {target!r}); links are never followed",
            advice="Replace the link with the real file and retry.",
            public=public,
        )
    if stat.S_ISDIR(st.st_mode):
        return
    if not stat.S_ISREG(st.st_mode):
        message = f"{where} is not a regular file (device, pipe or socket)"
        raise UnsafeSubmission(message, public=message)
    if st.st_nlink > 1:
        message = f"{where} is hard-linked ({st.st_nlink} links); it could change behind our back"
        raise UnsafeSubmission(
            message, advice="Copy the file (instead of linking it) into the ingest folder and retry.", public=message
        )
    if not os.access(path, os.R_OK):
        message = f"{where} cannot be read (permission denied)"
        raise SubmissionError(message, advice="Make the file readable by the ingest user and retry.", public=message)


def link_wording(link: Path, root: Path | None) -> str:
    """How a symbolic link is told beyond the local report: by where it points relative to the
    submission, never by its target."""
    if root is not None:
        target = os.path.abspath(os.path.join(os.path.dirname(link), os.readlink(link)))
        top = os.path.abspath(root)
        if target != top and os.path.commonpath([target, top]) == top:
            return "a symbolic link to another entry of the submission"
    return "a symbolic link pointing outside the submission"


def _unreadable_folder(exc: OSError) -> None:
    """os.walk would silently skip a folder it cannot list: a submission must never lose files."""
    message = f"the folder {exc.filename!r} cannot be read: {exc.strerror}"
    raise SubmissionError(
        message, advice="Make the folder readable by the ingest user and retry.", public=message
    ) from exc


def scan(path: Path) -> Submission:
    """Describe a submission without touching its contents. Raises UnsafeSubmission or
    SubmissionError for anything that must be quarantined."""
    path = Path(path)
    name, _ = safe_name(os.fsencode(path.name), path.name)
    try:
        top = os.lstat(path)
    except FileNotFoundError as exc:
        raise SubmissionError(f"{path} does not exist", public=f"{path} does not exist") from exc
    _check_entry(path, top, name)
    files: list[SourceFile] = []
    ignored: list[str] = []
    if stat.S_ISDIR(top.st_mode):
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False, onerror=_unreadable_folder):
            dirnames.sort()
            base = Path(dirpath)
            rel_dir = base.relative_to(path)
            for d in list(dirnames):
                st = os.lstat(base / d)
                _check_entry(base / d, st, f"{name}/{rel_dir / d}", path)
            for fname in sorted(filenames):
                full = base / fname
                where = f"{name}/{(rel_dir / fname).as_posix()}"
                if is_ignored(fname) or (rel_dir == Path(".") and fname == READY_MARKER):
                    ignored.append(where)
                    continue
                st = os.lstat(full)
                _check_entry(full, st, where, path)
                parts, originals = [], False
                for comp in (*rel_dir.parts, fname):
                    nfc, orig = safe_name(os.fsencode(comp), where)
                    parts.append(nfc)
                    originals = originals or orig is not None
                rel = "/".join(parts)
                _check_rel(rel, where)
                files.append(
                    SourceFile(
                        path=full,
                        rel=rel,
                        size=st.st_size,
                        role=role_for(rel),
                        original_name_bytes=os.fsencode(full.relative_to(path)) if originals else None,
                    )
                )
        sidecar = path / FOLDER_SIDECAR if (path / FOLDER_SIDECAR).is_file() else None
    else:
        _check_rel(name, name)
        _, orig = safe_name(os.fsencode(path.name), name)
        files.append(SourceFile(path=path, rel=name, size=top.st_size, role=role_for(name), original_name_bytes=orig))
        sidecar = next((p for p in sibling_sidecars(path)[:2] if p.is_file()), None)
        for extra in (*sibling_sidecars(path), ready_marker_for(path)):
            if os.path.lexists(extra):
                _check_entry(extra, os.lstat(extra), extra.name)
    if not files:
        raise SubmissionError(
            f"{name} holds no files",
            advice="Put the film's files in the folder and retry.",
            public=f"{name} holds no files",
        )
    empty = [f.rel for f in files if f.size == 0]
    if empty:
        message = f"{name}: empty (zero-byte) file(s): {', '.join(empty[:5])}; the copy was probably interrupted"
        raise SubmissionError(message, advice="Copy the file(s) again and retry.", public=message)
    seen: dict[str, str] = {}
    for f in files:
        key = f.rel.casefold()
        if key in seen:
            message = (
                f"{name}: {f.rel!r} and {seen[key]!r} differ only in case or Unicode "
                "normalisation and would collide on some storage"
            )
            raise UnsafeSubmission(message, public=message)
        seen[key] = f.rel
    return Submission(
        name=name,
        path=path,
        is_dir=stat.S_ISDIR(top.st_mode),
        files=tuple(files),
        ignored=tuple(ignored),
        sidecar=sidecar,
    )


def _check_rel(rel: str, where: str) -> None:
    if len(rel.encode("utf-8")) > MAX_RELPATH_BYTES:
        message = (
            f"{where}: path is {len(rel.encode('utf-8'))} bytes; the storage key limit "
            f"leaves {MAX_RELPATH_BYTES} bytes for it"
        )
        raise UnsafeSubmission(message, public=message)
