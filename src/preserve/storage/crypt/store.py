"""The encrypted view of a target: an ObjectStore over another one (S3 or filesystem) that
encrypts every object with age while it is uploaded, decrypts while it is read, and hides names.
Callers use the same keys as on a plaintext target; the target holds only opaque names, the
AIP's wrapped key and its encrypted name index. Side effects: those of the store it wraps; reads
the target's identity file (named by the environment) when a key must be opened.

On the target, under each AIP (see `names`):

    <aip>/key.age     the AIP's own age identity, age-encrypted to the target's recipients; never
                      under Object Lock, so destroying it stays possible (a deaccession)
    <aip>/index.age   opaque name -> member and plaintext size, age-encrypted to the AIP key
    <aip>/<opaque>    each object, age-encrypted to the AIP key

Writing a new AIP needs only the recipients (public keys): an ingest keeps the key it made in
memory while it goes on writing (its uploads and journal; `remembering_keys`). Reading anything,
or adding to an AIP later, needs one of the target's identities (KeyUnavailable says which
variable).
The ciphertext is deterministic for a given AIP key, name and plaintext digest, so a killed
multipart upload resumes with the parts already stored."""

from __future__ import annotations

import builtins
import contextlib
import contextvars
import hashlib
import io
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from preserve.catalog.records import AipKeyRecord
from preserve.config import TargetSettings
from preserve.core.errors import DecryptionFailed, KeyUnavailable, ObjectMissing, StorageError, VerificationError
from preserve.core.model import utcnow
from preserve.storage.base import (
    CHUNK_SIZE,
    ObjectInfo,
    ObjectStore,
    Purge,
    Source,
    StoredForm,
    check_key,
    check_prefix,
    read_small,
    write_chunks,
)
from preserve.storage.crypt import age, names
from preserve.storage.crypt.keys import AipKey, read_identities, unwrap, wrap

log = logging.getLogger(__name__)

#: far above a key object (a few hundred bytes); a bigger one is not ours
KEY_OBJECT_LIMIT = 64 << 10
#: bound of a name index read whole (about 100 bytes per object)
INDEX_LIMIT = 64 << 20


#: the keys made during one ingest, by the address of their key object: its early and late
#: uploads and its journal flush each open a store of their own, and need no identity to go on
#: writing an AIP whose key they made. Memory only, and only inside `remembering_keys` (outside,
#: None: a long-running worker does not keep every key it ever made); a key is used only while
#: its key object on the target is still byte for byte the one made with it
_MADE: contextvars.ContextVar[dict[str, tuple[AipKey, bytes]] | None] = contextvars.ContextVar(
    "preserve_made_keys", default=None
)
_MADE_LOCK = threading.Lock()


@contextlib.contextmanager
def remembering_keys() -> Iterator[None]:
    """Within this block (one ingest, and the threads it starts with a copy of its context), a
    key an encrypted store makes is remembered, so the block's later stores write with it
    without the target's identity; forgotten at the end of the block."""
    if _MADE.get() is not None:  # already inside one (a back-fill and the journal after it)
        yield
        return
    token = _MADE.set({})
    try:
        yield
    finally:
        _MADE.reset(token)


def bytes_source(data: bytes, label: str) -> Source:
    """A small object held in memory, as a Source."""
    return Source(label=label, size=len(data), open=lambda: io.BytesIO(data), sha256=hashlib.sha256(data).hexdigest())


def aip_of(key: str) -> str:
    """The AIP id a key lies under (its first segment); StorageError for a key outside any AIP."""
    aip, sep, rest = key.partition("/")
    if not sep or not rest:
        raise StorageError(f"an encrypted target keeps only objects under an AIP, not {key!r}")
    return aip


class EncryptedStore:
    """An ObjectStore that age-encrypts into, and decrypts from, ``inner`` (see the module)."""

    def __init__(self, inner: ObjectStore, target: TargetSettings, identity_file: Path | None) -> None:
        self.name = inner.name
        self.raw = inner  # the target as it is: opaque names and ciphertext (keyless audits read it)
        self.target = target
        self._identity_file = identity_file
        self._identities: list[str] | None = None
        self._lock = threading.RLock()
        self._keys: dict[str, AipKey] = {}
        self._wrapped: dict[str, bytes] = {}
        self._index: dict[str, dict[str, tuple[str, int]]] = {}
        self._made: set[str] = set()  # AIPs whose key object this store (or its ingest) made
        self._leftovers: set[str] = set()  # AIPs whose prefix may hold a swept attempt's locked leftovers

    # -- context -------------------------------------------------------------------------------
    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> EncryptedStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- keys ----------------------------------------------------------------------------------
    def identities(self) -> list[str]:
        """The target's identities from the file its variable names; KeyUnavailable naming the
        variable when none is configured."""
        if self._identities is None:
            if self._identity_file is None:
                raise KeyUnavailable(
                    f"target {self.name!r} is encrypted and no identity is configured for it: set "
                    f"{self.target.identity_env_name()} to a file holding one of its age identities"
                )
            self._identities = read_identities(self._identity_file)
        return self._identities

    @property
    def has_identity(self) -> bool:
        return self._identity_file is not None

    def key_object_key(self, aip_id: str) -> str:
        return f"{aip_id}/{names.KEY_OBJECT}"

    def index_key(self, aip_id: str) -> str:
        return f"{aip_id}/{names.INDEX_OBJECT}"

    def read_key_object(self, aip_id: str) -> bytes | None:
        """The AIP's key object as the target holds it (None when there is none)."""
        try:
            if self.raw.head(self.key_object_key(aip_id)) is None:
                return None
            return read_small(self.raw, self.key_object_key(aip_id), KEY_OBJECT_LIMIT)
        except ObjectMissing:
            return None

    def key_for(self, aip_id: str, *, create: bool = False) -> AipKey:
        """The AIP's key on this target: opened from its key object with the target's identity,
        or, with ``create`` inside `remembering_keys` (an ingest, a back-fill) and no key object
        there, made now and its key object written (wrapped to the target's recipients). Only
        those make keys: elsewhere a missing key object is put back from the catalog (the audit),
        never replaced by a new key. KeyUnavailable otherwise."""
        with self._lock:
            if aip_id in self._keys:
                return self._keys[aip_id]
            blob = self.read_key_object(aip_id)
            address = self.raw.uri(self.key_object_key(aip_id))
            registry = _MADE.get()
            with _MADE_LOCK:
                made = registry.get(address) if registry is not None else None
            if made is not None and blob == made[1]:
                self._keys[aip_id], self._wrapped[aip_id] = made
                self._made.add(aip_id)
                return made[0]
            if blob is None:
                if not create or registry is None:
                    raise KeyUnavailable(
                        f"target {self.name!r} holds no key object for AIP {aip_id}"
                        + ("" if not create else " (only an ingest or a back-fill makes one)")
                    )
                if aip_id not in self._leftovers and next(iter(self.raw.list(f"{aip_id}/")), None) is not None:
                    raise KeyUnavailable(
                        f"target {self.name!r} holds objects of AIP {aip_id} but not its key object: "
                        "put it back from the catalog or the escrow copy before writing more"
                    )
                key = AipKey.generate()
                blob = wrap(key, self.target.age_recipients)
                self._put_unlocked(self.key_object_key(aip_id), blob, "key object")
                with _MADE_LOCK:
                    registry[address] = (key, blob)
                self._made.add(aip_id)
                log.info(
                    "made a key for AIP %s on %s, wrapped to %d recipient(s)",
                    aip_id,
                    self.name,
                    len(self.target.age_recipients),
                )
            else:
                try:
                    key = unwrap(blob, self.identities())
                except DecryptionFailed as exc:
                    raise KeyUnavailable(f"the key object of AIP {aip_id} on {self.name!r} is damaged: {exc}") from exc
            self._keys[aip_id] = key
            self._wrapped[aip_id] = blob
            return key

    def accept_leftovers(self, aip_id: str) -> None:
        """What is left under the AIP's prefix (ciphertext Object Lock keeps after a sweep of an
        attempt that was never recorded, its key object gone) may stay: a new key can be made."""
        with self._lock:
            self._leftovers.add(aip_id)

    def _put_unlocked(self, key: str, blob: bytes, what: str) -> ObjectInfo:
        """A key object or name index: written without retention, and refused if the bucket locks
        it anyway (a default retention): a locked key object could never be destroyed."""
        info = self.raw.put_source(key, bytes_source(blob, what), retain=False)
        if info.lock_mode:
            raise StorageError(
                f"target {self.name!r}: the bucket put its default Object Lock retention ({info.lock_mode}) "
                f"on the {what} of an encrypted AIP; a locked key could never be destroyed",
                advice="Remove the bucket's default retention (preserve sets retention on each object itself), "
                "then retry; the locked object stays until its retention ends.",
            )
        return info

    def key_record(self, aip_id: str) -> AipKeyRecord | None:
        """The catalog's record of the AIP's key on this target, once this store made or opened it.
        ``recipients`` are the ones it was wrapped to when this store (or its ingest) made the
        key object; for a key object only opened they cannot be read off it: () (unknown), so
        `preserve keys rewrap` wraps it to the configured ones."""
        with self._lock:
            key, blob = self._keys.get(aip_id), self._wrapped.get(aip_id)
            made = aip_id in self._made
        if key is None or blob is None:
            return None
        now = utcnow()
        return AipKeyRecord(
            aip_id=aip_id,
            target=self.name,
            recipient=key.recipient,
            wrapped=blob,
            sha256=hashlib.sha256(blob).hexdigest(),
            recipients=tuple(self.target.age_recipients) if made else (),
            created_at=now,
            verified_at=now,
        )

    def put_key_object(self, aip_id: str, blob: bytes) -> ObjectInfo:
        """Write the AIP's key object (a repair from the catalog, or a rewrap), without retention."""
        info = self._put_unlocked(self.key_object_key(aip_id), blob, "key object")
        with self._lock:
            self._wrapped[aip_id] = blob
        return info

    def rewrap(self, aip_id: str, recipients: Sequence[str]) -> bytes:
        """Wrap the AIP's key to ``recipients`` and replace its key object (the films are not
        touched); returns the new key object."""
        key = self.key_for(aip_id)
        blob = wrap(key, list(recipients))
        self.put_key_object(aip_id, blob)
        with self._lock:
            self._made.add(aip_id)  # wrapped to these recipients here
        return blob

    def destroy_key(self, aip_id: str, *, bypass_governance: bool = False) -> list[Purge]:
        """Delete every version of the AIP's key object and name index from the target: what is
        left there of the AIP can no longer be read by anyone (a deaccession of locked copies)."""
        self.forget(aip_id)
        return [
            self.raw.purge(self.key_object_key(aip_id), bypass_governance=bypass_governance),
            self.raw.purge(self.index_key(aip_id), bypass_governance=bypass_governance),
        ]

    def forget(self, aip_id: str) -> None:
        """Drop what this store holds in memory about the AIP (its objects were removed raw)."""
        registry = _MADE.get()
        if registry is not None:
            with _MADE_LOCK:
                registry.pop(self.raw.uri(self.key_object_key(aip_id)), None)
        with self._lock:
            self._keys.pop(aip_id, None)
            self._wrapped.pop(aip_id, None)
            self._index.pop(aip_id, None)
            self._made.discard(aip_id)

    # -- names ---------------------------------------------------------------------------------
    def physical(self, key: str) -> str:
        """The opaque key the target holds for ``key``."""
        check_key(key)
        aip = aip_of(key)
        return _hidden(self.key_for(aip), aip, key)

    def _entries(self, aip_id: str, key: AipKey) -> dict[str, tuple[str, int]]:
        """The AIP's name index (opaque -> member, plaintext size), from a listing of the target."""
        if aip_id not in self._index:
            found: dict[str, tuple[str, int]] = {}
            for info in self.raw.list(f"{aip_id}/"):
                if names.is_opaque(aip_id, info.key):
                    try:
                        logical = names.reveal(key, aip_id, info.key)
                    except DecryptionFailed:  # a swept attempt's locked leftover, under a key now gone
                        continue
                    found[info.key] = (logical.removeprefix(f"{aip_id}/"), _plain_size(info.size))
            self._index[aip_id] = found
        return self._index[aip_id]

    def _write_index(self, aip_id: str, key: AipKey) -> None:
        # the index names objects as they sit in the AIP's folder (how a person reads it)
        doc = names.index_document({k.removeprefix(f"{aip_id}/"): v for k, v in self._entries(aip_id, key).items()})
        seed = key.object_seed(self.index_key(aip_id), hashlib.sha256(doc).hexdigest())
        data = age.encrypt_bytes(doc, key.public, seed)
        self._put_unlocked(self.index_key(aip_id), data, "name index")

    def _reveal(self, info: ObjectInfo) -> ObjectInfo | None:
        aip = info.key.partition("/")[0]
        if not names.is_opaque(aip, info.key):
            return None  # the key object, the index, or something preserve did not write
        try:
            logical = names.reveal(self.key_for(aip), aip, info.key)
        except DecryptionFailed:
            return None  # not under this key: a swept attempt's locked leftover (the raw store shows it)
        return replace(
            info,
            key=logical,
            size=0 if info.delete_marker else _plain_size(info.size),
            sha256=None,
            stored=StoredForm(info.key, info.size, info.sha256 or ""),
        )

    # -- the ObjectStore protocol --------------------------------------------------------------
    def uri(self, key: str) -> str:
        """The object's address as stored (its opaque name once the AIP's key is open here;
        else the AIP's prefix): never a file name."""
        aip = aip_of(check_key(key))
        with self._lock:
            have = self._keys.get(aip)
        if have is not None:
            return self.raw.uri(_hidden(have, aip, key))
        return self.prefix_uri(aip)

    def prefix_uri(self, aip_id: str) -> str:
        """The AIP's prefix on the target."""
        return self.raw.uri(self.key_object_key(aip_id)).removesuffix(names.KEY_OBJECT)

    def check_reachable(self) -> None:
        self.raw.check_reachable()

    def put_file(self, key: str, path: Path, *, sha256: str, size: int) -> ObjectInfo:
        return self.put_source(key, Source.of_file(path, sha256=sha256, size=size))

    def put_source(self, key: str, source: Source, *, retain: bool = True) -> ObjectInfo:
        """Encrypt while uploading (no temporary copy): the plaintext is verified against
        ``source.sha256`` as it is read, the ciphertext's digest is computed as it is sent and
        verified by the server, and both are returned (``sha256``, ``stored.sha256``)."""
        check_key(key)
        aip = aip_of(key)
        if source.sha256 is None:
            raise StorageError(f"{key}: an encrypted target needs the plaintext's SHA-256 before it is sent")
        plain_sha = source.sha256.lower()
        akey = self.key_for(aip, create=True)
        phys = _hidden(akey, aip, key)

        def opened() -> age.Encryptor:
            return self._encrypting_stream(key, source)

        cipher = Source(label=source.label, size=age.ciphertext_size(source.size), open=opened, sha256=None)
        info = self.raw.put_source(phys, cipher, retain=retain)
        if info.sha256 is None:
            raise StorageError(f"{self.name}: the store did not report the digest of what it stored")
        with self._lock:
            self._entries(aip, akey)[phys] = (key.removeprefix(f"{aip}/"), source.size)
            self._write_index(aip, akey)
        return replace(
            info, key=key, size=source.size, sha256=plain_sha, stored=StoredForm(phys, info.size, info.sha256)
        )

    def _encrypting_stream(self, key: str, source: Source) -> age.Encryptor:
        """The ciphertext of ``source`` as a stream (opened afresh for each attempt of a put)."""
        if source.sha256 is None:
            raise StorageError(f"{key}: an encrypted target needs the plaintext's SHA-256 before it is sent")
        plain_sha = source.sha256.lower()
        akey = self.key_for(aip_of(key))
        seed = akey.object_seed(key, plain_sha)
        stream = source.open()
        stamp = _file_stamp(stream)
        if stamp is None:  # bytes in memory: they cannot change
            return age.Encryptor(stream, akey.public, seed, source.size, plain_sha, label=source.label)
        # A file: the keystream also depends on its size and mtime, and encryption stops at the
        # first sign of a change, so bytes that differ from an earlier attempt's are never sent
        # under that attempt's keystream (the digest check alone comes only at the end); an
        # unchanged file encrypts to the same bytes again, so an interrupted upload resumes
        own = age.derive(seed, f"source {stamp[0]} {stamp[1]}", 32)
        return age.Encryptor(
            _Unchanged(stream, stamp, source.label), akey.public, own, source.size, plain_sha, label=source.label
        )

    def head(self, key: str) -> ObjectInfo | None:
        """Size is the plaintext's (from the ciphertext's; -1 if no age file can have that size);
        ``sha256`` None (only decrypting can vouch for it); ``stored`` the ciphertext's."""
        phys = self.physical(key)
        info = self.raw.head(phys)
        if info is None:
            return None
        return replace(
            info,
            key=key,
            size=_plain_size(info.size),
            sha256=None,
            stored=StoredForm(phys, info.size, info.sha256 or ""),
        )

    def read_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The plaintext, decrypted as it streams (DecryptionFailed at the first damaged chunk)."""
        phys = self.physical(key)
        akey = self.key_for(aip_of(key))
        return age.decrypt_chunks(self.raw.read_chunks(phys, chunk_size), akey.secret)

    def get_file(self, key: str, dest: Path) -> str:
        """Decrypt to dest (a temporary name beside it, then rename); the plaintext's SHA-256."""
        return write_chunks(Path(dest), self.read_chunks(key))

    def _listed(self, prefix: str, versions: bool) -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        scan = f"{prefix.partition('/')[0]}/" if "/" in prefix else prefix
        listing = self.raw.list_versions(scan) if versions else self.raw.list(scan)
        group: builtins.list[ObjectInfo] = []
        current = ""
        for info in listing:
            aip = info.key.partition("/")[0]
            if aip != current:
                yield from sorted(group, key=lambda i: i.key.encode("utf-8"))
                group, current = [], aip
            shown = self._reveal(info)
            if shown is not None and shown.key.startswith(prefix):
                group.append(shown)
        yield from sorted(group, key=lambda i: i.key.encode("utf-8"))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects under the prefix by their real keys (each AIP's names revealed with its key:
        KeyUnavailable without the target's identity); key objects and indexes are not listed."""
        return self._listed(prefix, versions=False)

    def list_versions(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self._listed(prefix, versions=True)

    def delete(self, key: str) -> None:
        phys = self.physical(key)
        self.raw.delete(phys)
        aip = aip_of(key)
        with self._lock:
            akey = self.key_for(aip)
            self._entries(aip, akey).pop(phys, None)
            self._write_index(aip, akey)

    def purge(self, key: str, *, bypass_governance: bool = False) -> Purge:
        phys = self.physical(key)
        done = self.raw.purge(phys, bypass_governance=bypass_governance)
        with self._lock:
            entries = self._index.get(aip_of(key))
            if entries is not None and not done.retained:
                entries.pop(phys, None)
        return replace(done, key=key)


def _hidden(key: AipKey, aip_id: str, logical: str) -> str:
    """`names.hide`, its refusal (a name too long for an opaque key) as a StorageError."""
    try:
        return names.hide(key, aip_id, logical)
    except ValueError as exc:
        # the name itself is never quoted: this message reaches logs, the catalog and alerts
        raise StorageError(f"cannot store an object of AIP {aip_id} on an encrypted target: {exc}") from exc


def _file_stamp(stream: BinaryIO) -> tuple[int, int, int] | None:
    """(size, mtime_ns, ctime_ns) of an open file; None for a stream that is not a file."""
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


class _Unchanged(io.RawIOBase, BinaryIO):
    """A file read for encryption that fails (VerificationError) as soon as it is seen to change
    (size, mtime or ctime), before the bytes of that read are encrypted."""

    def __init__(self, f: BinaryIO, stamp: tuple[int, int, int], label: str) -> None:
        super().__init__()
        self._f, self._stamp, self._label = f, stamp, label

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        data = self._f.read(-1 if n is None else n)
        if _file_stamp(self._f) != self._stamp:
            raise VerificationError(
                f"source {self._label} changed while it was being encrypted; nothing more of it is sent"
            )
        return data

    def close(self) -> None:
        try:
            self._f.close()
        finally:
            super().close()


def _plain_size(cipher_size: int) -> int:
    try:
        return age.plaintext_size(cipher_size)
    except ValueError:
        return -1


def as_stored(store: ObjectStore) -> ObjectStore:
    """The target as it holds its objects: an encrypted store's ``raw`` (opaque names and
    ciphertext, readable without any key), any other store itself."""
    return store.raw if isinstance(store, EncryptedStore) else store
