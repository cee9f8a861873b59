"""The IIIF manifest and the page of an AIP's access copies after ingest: written again wherever
the copies go (`set-access` moves them, `embargo-release` publishes them, copies are made again
after a withdrawal), because the manifest's ids name the location it is served from. The page
names its files relatively and goes as it is. Side effects: object store reads and writes at the
access locations, ffprobe on a downloaded proxy when no manifest was ever made, files under the
scratch directory given.

Where a manifest exists it is read back (`iiif.presentation_of`) and written for the new place
(`package.write_documents`): nothing about the film is looked up again. Where none exists (the
copies were held under embargo, or were made before manifests existed) the presentation is made
from the proxy, the catalog's title and the preserved sidecar, as the ingest makes it."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from preserve import tools
from preserve.access import iiif, package, policy, subtitles
from preserve.access.presentation import (
    KIND_MANIFEST,
    KIND_PAGE,
    KIND_POSTER,
    KIND_PROXY,
    KIND_SHEET,
    KIND_TRACK,
    UNDETERMINED,
    Presentation,
    TextTrack,
    TrackRef,
    normal_language,
)
from preserve.catalog import AccessCopy, AipView, Catalog, FileView
from preserve.config import Settings
from preserve.core import redact
from preserve.core.errors import ConfigError, PreserveError, StorageError, ToolError, VerificationError
from preserve.core.fs import private_dir
from preserve.core.model import AccessLevel, Agent, Event, EventType, Outcome
from preserve.fixity.digest import digest_file
from preserve.intake import sidecar
from preserve.storage import ObjectStore, open_store
from preserve.storage.base import object_key

log = logging.getLogger(__name__)

#: the documents written from a presentation (never copied from one location to another as bytes)
DOCUMENT_KINDS = frozenset({KIND_MANIFEST, KIND_PAGE})

#: downloads one payload file of the AIP into a path, verified; returns the replica's name
Download = Callable[[Settings, AipView, FileView, Path], str]


def download_payload(settings: Settings, aip: AipView, f: FileView, dest: Path) -> str:
    """One payload file, as the AIP's newest version has it, from the first replica (verified ones
    first, in config order) whose copy matches the catalog's SHA-256; the replica's name."""
    order = [t.name for t in settings.targets]
    replicas = sorted(
        (r for r in aip.replicas if r.target in order),
        key=lambda r: (r.status != "verified", order.index(r.target)),
    )
    # the member as the newest version has it (an amend writes a changed sidecar under a new key)
    newest = max(aip.versions, key=lambda v: v.number, default=None)
    key = (newest.members.get(f.path) if newest is not None else None) or object_key(aip.id, f.path)
    problems: list[str] = []
    for r in replicas:
        if not any(o.key == key for o in r.objects):
            continue
        try:
            with open_store(settings, settings.target(r.target)) as store:
                if store.get_file(key, dest) == f.sha256:
                    return r.target
                problems.append(f"{r.target}: SHA-256 differs from the catalog's")
        except StorageError as exc:
            problems.append(f"{r.target}: {exc}")
    dest.unlink(missing_ok=True)
    raise VerificationError(
        f"{f.path}: no replica has a copy that verifies now ({'; '.join(problems) or 'none'})",
        advice="Run `preserve audit --aip ID` to see the state of each replica.",
    )


def media_copies(copies: Sequence[AccessCopy]) -> list[AccessCopy]:
    """The copies that are moved as bytes: everything but the manifest and the page."""
    return [c for c in copies if c.kind not in DOCUMENT_KINDS]


def track_of(copy: AccessCopy, local: Path | str) -> TextTrack:
    """A stored text track as the presentation names it: its language from its access name
    (``subtitles-1.zh-Hans.vtt``), its label from that language."""
    parts = Path(copy.key).name.split(".")
    language = parts[1] if len(parts) == 3 else UNDETERMINED
    return TextTrack(Path(local), language, subtitles.label_of(language), 0)


def hidden_values(meta: sidecar.Sidecar | None) -> list[str]:
    """What the documents must not carry: directors not credited publicly, the contributor's pseudonym."""
    if meta is None:
        return []
    return [v for v in (meta.contributor_id, *(() if meta.credits_public else meta.directors)) if v]


def preserved_sidecar(settings: Settings, aip: AipView, scratch: Path, download: Download) -> sidecar.Sidecar | None:
    """The AIP's sidecar as preserved (None when it has none or it cannot be read now)."""
    for f in aip.files:
        if f.role == "sidecar" and f.path.endswith((".yaml", ".yml")):
            local = scratch / "sidecar.yaml"
            try:
                download(settings, aip, f, local)
                return sidecar.load(local)
            except PreserveError:  # not readable now (a replica down, a sidecar refused)
                continue
            finally:
                local.unlink(missing_ok=True)
    return None


def write_again(
    settings: Settings,
    aip: AipView,
    level: AccessLevel,
    store: ObjectStore,
    placed: Sequence[AccessCopy],
    scratch: Path,
    *,
    download: Download,
    events: list[Event],
    made: Path | None = None,
) -> list[AccessCopy]:
    """The manifest and the page of the copies ``placed`` at ``store`` (the location of ``level``),
    written, checked and stored there; [] for a level that has none (embargoed), or when there is
    no proxy. The proxy's duration and size come from the AIP's recorded manifest when it has one
    and the copies were not ``made`` again (then from that local proxy; else from the proxy
    downloaded from ``store``); what the documents say of the film always comes from the preserved
    sidecar as it is now (`described`: credits only when it marks them public), and their tracks
    are the tracks ``placed``. A
    document that fails its check is a `fail` event and is not stored (PrivacyError is not
    raised: the copies themselves are fine). Raises StorageError when a location fails."""
    proxy = next((c for c in placed if c.kind == KIND_PROXY), None)
    if not policy.presented(level) or proxy is None:
        return []
    meta = preserved_sidecar(settings, aip, scratch, download)
    p = _recorded(settings, aip, scratch) if made is None else None
    if p is None:
        local = made or scratch / "proxy-for-presentation.mp4"
        if made is None and store.get_file(proxy.key, local) != proxy.sha256:
            raise StorageError(f"access copy {proxy.key} does not match its recorded SHA-256")
        try:
            p = package.presentation(aip.id, local, poster=_poster(store, placed, scratch))
        except ToolError as exc:
            log.warning("no manifest for %s: %s", aip.id, redact.describe(exc))
            return []
        finally:
            if made is None:
                local.unlink(missing_ok=True)
    p = described(p, aip, meta, placed)
    base = policy.folder_url(settings, level, proxy.uri)
    out = scratch / "documents"
    out.mkdir(parents=True, exist_ok=True)
    try:
        written = package.write_documents(p, base, out, forbidden=hidden_values(meta))
    except PreserveError as exc:
        events.append(
            Event(
                EventType.METADATA_MODIFICATION,
                Outcome.FAIL,
                tools.preserve_agent(),
                f"{redact.describe(exc)}; the access copies are stored without a IIIF manifest and a page",
            )
        )
        return []
    stored: list[AccessCopy] = []
    for kind, path in zip((KIND_MANIFEST, KIND_PAGE), written, strict=True):
        d = digest_file(path, ("sha256",))
        key = f"{aip.id}/{path.name}"
        store.put_file(key, path, sha256=d.values["sha256"], size=d.size)
        stored.append(AccessCopy(kind, store.name, key, store.uri(key), d.size, d.values["sha256"]))
    events.append(
        Event(
            EventType.CREATION,
            Outcome.PASS,
            tools.python_agent("iiif-prezi3"),
            f"IIIF Presentation 3 manifest (ids under {base}) and the page written again for the access copies "
            f"at {store.name}; validated and checked against what they may say",
            extra={"base": base},
        )
    )
    return stored


def described(
    p: Presentation, aip: AipView, meta: sidecar.Sidecar | None, placed: Sequence[AccessCopy]
) -> Presentation:
    """``p`` with what it says of the film taken from the preserved sidecar as it is now (title,
    original title and its language, year; the directors only when the sidecar marks the credits
    public, so credits taken back never come back from an older manifest; none without a readable
    sidecar), and with the copies that are really ``placed`` (tracks, poster, contact sheet)."""
    language = normal_language(meta.language) if meta is not None and meta.language else None
    tracks = [track_of(c, Path(c.key).name) for c in placed if c.kind == KIND_TRACK]
    return dataclasses.replace(
        p,
        title=(meta.title if meta is not None else p.title) or aip.title,
        original_title=meta.original_title if meta is not None else p.original_title,
        original_language=language or p.original_language,
        year=meta.year if meta is not None else p.year,
        credits=tuple(d for d in meta.directors if d) if meta is not None and meta.credits_public else (),
        poster=p.poster if any(c.kind == KIND_POSTER for c in placed) else None,
        contact_sheet=any(c.kind == KIND_SHEET for c in placed),
        tracks=tuple(TrackRef(t.path.name, t.language, t.label) for t in tracks),
    )


def _withdrawal_not_undone(settings: Settings, catalog: Catalog, aip_id: str) -> None:
    """What a refresh stored could not be removed again while a withdrawal began: when the film is
    being withdrawn (or already is), its access locations are swept again, and a sweep that does
    not verify empty makes the withdrawal pending again, with its alert (`withdraw.reopen`), so
    housekeeping finishes it."""
    from preserve.operations import withdraw

    now = catalog.get_aip(aip_id)
    if now is None:
        return
    pending = [c for c in catalog.access_changes(aip_id, pending_only=True) if c.is_withdrawal]
    if now.access_level is not AccessLevel.DARK and not pending:
        return  # an access change, not a withdrawal: it sweeps the other locations itself
    sweeps = withdraw.sweep_access(settings, now)
    if not all(s.ok for s in sweeps):
        withdraw.reopen(settings, catalog, aip_id, sweeps)


def _recorded(settings: Settings, aip: AipView, scratch: Path) -> Presentation | None:
    """The presentation of the AIP's recorded manifest, read from where it is stored (None when
    it has none, or none of its places gives it back intact)."""
    for copy in aip.access:
        if copy.kind != KIND_MANIFEST:
            continue
        local = scratch / "recorded-manifest.json"
        try:
            with open_store(settings, policy.target(settings, copy.target)) as store:
                if store.get_file(copy.key, local) != copy.sha256:
                    continue
            return iiif.presentation_of(local.read_bytes())[0]
        except (PreserveError, ValueError) as exc:
            log.warning("manifest of %s not read back: %s", aip.id, redact.describe(exc))
        finally:
            local.unlink(missing_ok=True)
    return None


def _poster(store: ObjectStore, placed: Sequence[AccessCopy], scratch: Path) -> Path | None:
    poster = next((c for c in placed if c.kind == KIND_POSTER), None)
    if poster is None:
        return None
    local = scratch / "poster-for-presentation.jpg"
    return local if store.get_file(poster.key, local) == poster.sha256 else None


def refresh(settings: Settings, catalog: Catalog, aip_id: str, meta: sidecar.Sidecar, *, operator: Agent) -> str:
    """The manifest and the page written again where they are stored, from a changed sidecar (an
    amend: a new title, year, or credits made public or private again): the recorded manifest is
    read back, its descriptive values replaced by the sidecar's, checked, and stored in place of
    the old ones (every version of those deleted first: a versioned bucket would otherwise keep
    the names one took back). Nothing when the AIP has no manifest, or its publication is withheld
    (a withdrawal or a change being carried out: nothing may republish it); what was stored is
    removed again when a withdrawal began meanwhile. Returns what it did, in words. Raises
    StorageError when a location fails, PrivacyError when the new documents fail their check
    (the old ones are then left as they were)."""
    aip = catalog.get_aip(aip_id)
    if aip is None:
        raise ConfigError(f"no AIP {aip_id!r} in the catalog")
    documents = [c for c in aip.access if c.kind in DOCUMENT_KINDS]
    manifest = next((c for c in documents if c.kind == KIND_MANIFEST), None)
    if manifest is None:
        return "no IIIF manifest or page to write again"
    if catalog.publication_withheld(aip.id):
        return "the manifest and the page are not written again: the film is being withdrawn or its access changed"
    scratch = private_dir(settings.var_dir / "access-work" / f"{aip.id}-refresh")
    try:
        p = _recorded(settings, aip, scratch)
        if p is None:
            raise StorageError(f"the IIIF manifest of {aip.id} cannot be read back from {manifest.target}")
        new = described(p, aip, meta, aip.access)
        base = policy.folder_url(settings, aip.access_level, manifest.uri)
        written = package.write_documents(new, base, scratch, forbidden=hidden_values(meta))
        location = policy.target(settings, manifest.target)
        stored: list[AccessCopy] = []
        with open_store(settings, location) as store:
            for kind, path in zip((KIND_MANIFEST, KIND_PAGE), written, strict=True):
                d = digest_file(path, ("sha256",))
                key = f"{aip.id}/{path.name}"
                store.delete(key)  # every version: the old names must not stay fetchable
                store.put_file(key, path, sha256=d.values["sha256"], size=d.size)
                stored.append(AccessCopy(kind, location.name, key, store.uri(key), d.size, d.values["sha256"]))
            event = Event(
                EventType.METADATA_MODIFICATION,
                Outcome.PASS,
                operator,
                "IIIF manifest and page written again from the amended sidecar ("
                + ("credits named, as the sidecar allows" if new.credits else "no person named")
                + f"); every earlier version of them deleted from {location.name}",
                extra={"base": base},
            )
            if not catalog.replace_documents(
                aip.id,
                stored,
                kinds=sorted(DOCUMENT_KINDS),
                expect_level=aip.access_level,
                expect_target=location.name,
                events=[event],
            ):
                # a withdrawal or an access change began meanwhile: what was just stored must not
                # stay (the change in progress sweeps this location too, and a withdrawal verifies
                # that nothing is left; a failure here is raised, so the amend tells it)
                try:
                    for c in stored:
                        store.delete(c.key)
                except StorageError:
                    _withdrawal_not_undone(settings, catalog, aip.id)
                    raise
                return (
                    "not written again: a withdrawal or an access change began meanwhile (what was stored is removed)"
                )
        return f"IIIF manifest and page written again at {location.name}"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
